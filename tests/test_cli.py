"""bin/train as a user meets it: --help, and one-line errors for bad input."""

import json
import os
import subprocess
import sys

import pytest

from tests import paths, train_helpers

TRAIN = os.path.join(paths.REPO, "bin", "train")


def _train(*args, timeout=120):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run(
    [sys.executable, TRAIN, *args], capture_output=True, text=True, timeout=timeout, env=env
  )


def test_help_explains_every_run_flag():
  result = _train("--help")
  assert result.returncode == 0, result.stderr
  out = result.stdout
  for flag in (
    "--dataset",
    "--data_dir",
    "--workdir",
    "--order",
    "--num_intervals",
    "--angles",
    "--strategy",
    "--arch",
    "--batch_size",
    "--learning_rate",
    "--continuous_dim",
    "--consistency_weight",
    "--mi_weight",
    "--consistency_kl",
    "--patience",
    "--eval_every",
    "--max_steps_per_interval",
    "--lr_plateau_decays",
    "--lr_plateau_factor",
    "--tau0",
    "--tau_rate",
    "--tau_min",
    "--seed",
  ):
    assert flag + ":" in out or f"--[no]{flag[2:]}:" in out, flag
  assert "fashion_mnist" in out and "svhn_mnist" in out


TRY_HELP = "Try --help."
"""The second line absl's flag parser adds to a malformed or unknown flag's error."""


@pytest.mark.parametrize(
  "args,lines",
  [
    (["--bogus=1"], ["train: error: Unknown command line flag 'bogus'", TRY_HELP]),
    (
      ["--dataset=cifar"],
      [
        "train: error: unknown dataset 'cifar'; choose one of fashion_mnist, mnist, "
        "rotated_mnist, svhn_mnist, fashion_mnist_mnist, folder:PATH, npz:PATH, npy:PATH or "
        "tfds:NAME"
      ],
    ),
    (
      ["--strategy=tpu"],
      [
        "train: error: flag --strategy=tpu: value should be one of "
        "<default|one_device|mirrored|multi_worker>",
        TRY_HELP,
      ],
    ),
    (["--batch_size=0"], ["train: error: batch_size must be at least 1, got 0"]),
    (["--patience=0"], ["train: error: patience must be at least 1, got 0"]),
    (
      ["--consistency_weight=-1"],
      ["train: error: consistency_weight must not be negative, got -1.0"],
    ),
    (["--order=1,x"], ["train: error: --order must be comma-separated integers, got '1,x'"]),
    (["--lr_plateau_factor=1.5"], ["train: error: lr_plateau_factor must be in (0, 1), got 1.5"]),
  ],
)
def test_bad_flags_give_one_line_and_exit_2(args, lines, tmp_path):
  """One line (a flag absl cannot parse adds "Try --help."), exit 2, before TensorFlow."""
  done = train_helpers.run_tool("train", *args, f"--workdir={tmp_path}")
  assert (done.returncode, done.lines, done.tensorflow) == (2, lines, False)


def test_schedule_flags_reach_the_config():
  code = (
    "import sys; sys.path.insert(0, sys.argv[1]);"
    "from absl import flags; from tf_lifelong.cli import flags as f;"
    "f.define_run_flags(); flags.FLAGS(['train'] + sys.argv[2:]);"
    "print(f.config_from_flags().to_json())"
  )
  args = ["--tau0=0.9", "--tau_rate=3e-4", "--lr_plateau_decays=2", "--lr_plateau_factor=0.25"]
  result = subprocess.run(
    [sys.executable, "-c", code, paths.REPO, *args], capture_output=True, text=True, timeout=60
  )
  assert result.returncode == 0, result.stderr
  config = json.loads(result.stdout)
  assert (config["tau0"], config["tau_rate"]) == (0.9, 3e-4)
  assert (config["lr_plateau_decays"], config["lr_plateau_factor"]) == (2, 0.25)


def test_missing_data_is_one_line(tmp_path):
  result = _train("--dataset=mnist", f"--data_dir={tmp_path}", f"--workdir={tmp_path}/w")
  assert result.returncode == 2
  assert "Traceback" not in result.stderr
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and "--data_dir" in lines[0], result.stderr


def test_order_naming_an_unknown_distribution(tmp_path):
  done = train_helpers.run_tool(
    "train",
    "--dataset=mnist",
    f"--data_dir={paths.DATA_ROOT}",
    "--order=3,12",
    f"--workdir={tmp_path}/w",
  )
  assert done.returncode == 2
  assert done.lines == [
    "train: error: order names distribution 12, but mnist has ids 0, 1, 2, 3, 4, 5, 6, 7, 8, "
    "9 (10 distributions); fix --order"
  ]


# ------------------------------------------------- a workdir that holds a run
def _fake_run(folder, finished: bool, **config) -> str:
  """A workdir as a run leaves it (config.json, metrics.jsonl, latest.json), no weights."""
  import json

  from tf_lifelong import config as config_lib

  os.makedirs(os.path.join(folder, "checkpoints"))
  with open(os.path.join(folder, "config.json"), "w") as f:
    f.write(config_lib.Config(dataset="mnist", seed=3, **config).to_json())
  with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps({"interval": i}) + "\n" for i in range(3))
  record = {
    "checkpoint": "interval-002",
    "phase": "end",
    "interval": 2,
    "seen": [0, 1, 2],
    "global_step": 90,
    "num_categories": 3,
    "teacher_num_categories": 3,
    "num_seen": 3,
    "arch": "mlp",
    "image_shape": [28, 28, 1],
    "finished": finished,
  }
  with open(os.path.join(folder, "checkpoints", "latest.json"), "w") as f:
    json.dump(record, f)
  return str(folder)


def test_help_explains_the_resume_flags():
  out = _train("--help").stdout
  assert "--checkpoint_every:" in out and "--[no]overwrite:" in out
  assert "resumes the run there" in " ".join(out.split())


def test_a_finished_run_is_answered_without_tensorflow(tmp_path):
  """`bin/train --workdir=W` on a finished run: exit 0 at once, TensorFlow never imported."""
  workdir = _fake_run(tmp_path / "w", finished=True)
  code = (
    "import sys; from tf_lifelong.cli import train\n"
    f"sys.argv = ['train', '--workdir={workdir}']\n"
    "try:\n  train.entry()\nexcept SystemExit as e:\n  print('exit', e.code)\n"
    "print('tensorflow' in sys.modules)"
  )
  result = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=paths.REPO
  )
  assert result.stdout.splitlines() == [
    f"{workdir} holds a finished run (3 intervals, exported to {workdir}/export); nothing "
    "to do (--overwrite runs it again)",
    "exit None",
    "False",
  ], result.stderr


def test_resume_refusals_need_no_tensorflow(tmp_path):
  workdir = _fake_run(tmp_path / "w", finished=False)
  result = train_helpers.run_tool("train", f"--workdir={workdir}", "--seed=9", "--patience=7")
  assert (result.returncode, result.tensorflow) == (2, False)
  assert result.lines == [
    f"train: error: {workdir} holds a run with another configuration (patience: 5 there, 7 "
    "here, seed: 3 there, 9 here); run with its settings to resume it, choose another "
    "--workdir, pass --continue to append this data to its model, or pass --overwrite to "
    "start afresh"
  ]
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write("{not json")
  result = train_helpers.run_tool("train", f"--workdir={workdir}")
  assert (result.returncode, result.tensorflow) == (2, False)
  lines = result.lines
  assert len(lines) == 1 and lines[0].startswith(
    f"train: error: {workdir}/config.json: configuration is not valid JSON"
  ), lines
  assert lines[0].endswith("pass --overwrite to start afresh")
