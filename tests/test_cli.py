"""bin/train as a user meets it: --help, and one-line errors for bad input."""

import os
import subprocess
import sys

import pytest

from tests import paths

TRAIN = os.path.join(paths.REPO, "bin", "train")


def _train(*args, timeout=120):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, TRAIN, *args], capture_output=True, text=True,
                        timeout=timeout, env=env)


def test_help_explains_every_run_flag():
  out = _train("--help").stdout
  for flag in ("--dataset", "--data_dir", "--workdir", "--order", "--num_intervals",
               "--angles", "--strategy", "--arch", "--batch_size", "--learning_rate",
               "--continuous_dim", "--consistency_weight", "--mi_weight", "--consistency_kl",
               "--patience", "--eval_every", "--max_steps_per_interval", "--seed"):
    assert flag + ":" in out or f"--[no]{flag[2:]}:" in out, flag
  assert "fashion_mnist" in out and "svhn_mnist" in out


@pytest.mark.parametrize("args,words", [
    (["--bogus=1"], "Unknown command line flag 'bogus'"),
    (["--dataset=cifar"], "unknown dataset 'cifar'"),
    (["--strategy=tpu"], "strategy"),
    (["--batch_size=0"], "batch_size must be at least 1"),
    (["--patience=0"], "patience must be at least 1"),
    (["--consistency_weight=-1"], "consistency_weight must not be negative"),
    (["--order=1,x"], "--order must be comma-separated integers"),
])
def test_bad_flags_give_one_line_and_exit_2(args, words, tmp_path):
  result = _train(*args, f"--workdir={tmp_path}")
  assert result.returncode != 0
  assert words in result.stderr
  assert "Traceback" not in result.stderr


def test_missing_data_is_one_line(tmp_path):
  result = _train("--dataset=mnist", f"--data_dir={tmp_path}", f"--workdir={tmp_path}/w")
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and "--data_dir" in lines[0], result.stderr


def test_order_naming_an_unknown_distribution(tmp_path):
  result = _train("--dataset=mnist", f"--data_dir={paths.DATA_ROOT}", "--order=3,12",
                  f"--workdir={tmp_path}/w")
  assert result.returncode == 2 and "12" in result.stderr and "Traceback" not in result.stderr
