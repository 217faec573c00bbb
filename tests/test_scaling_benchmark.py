"""bin/benchmark --devices: the scaling benchmark on a tiny setting, and its one-line errors.

The quick run starts three TensorFlow processes (default; mirrored over 1 and 2
logical CPUs) and takes about 40 s on an idle 2-core machine, longer when loaded.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from tests import paths, train_helpers
from tf_lifelong.benchmarks import scaling

BENCHMARK = os.path.join(paths.REPO, "bin", "benchmark")


def _run(*args, timeout=600):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (paths.REPO, env.get("PYTHONPATH")) if p)
  return subprocess.run(
    [sys.executable, BENCHMARK, *args],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=env,
    check=False,
  )


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  output = str(tmp_path_factory.mktemp("scaling") / "scaling.json")
  done = _run(
    "--quick",
    "--devices=1,2",
    f"--output={output}",
    "--dataset=mnist",
    f"--data_dir={paths.DATA_ROOT}",
  )
  assert done.returncode == 0, done.stderr[-3000:]
  with open(output) as f:
    return json.load(f), done.stderr


def test_every_run_has_every_key_with_positive_finite_numbers(quick):
  result, stderr = quick
  for key in scaling.REQUIRED_KEYS:
    assert key in result, key
  assert result["order"] == ["default", "mirrored_1", "mirrored_2", "mirrored_2_weak"]
  for name in result["order"]:
    run = result["runs"][name]
    for key in scaling.RUN_KEYS:
      assert key in run, (name, key)
      value = run[key]
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert math.isfinite(value) and value > 0, (name, key, value)
  assert len(result["load_average"]["before"]) == 3
  assert result["command"].startswith("bin/benchmark --quick --devices=1,2")
  assert "mirrored_2_weak" in stderr and "Traceback" not in stderr


def test_replicas_and_batches(quick):
  result, _ = quick
  runs = result["runs"]
  assert result["device_kind"] == "CPU" or result["machine"]["gpus"]
  assert [runs[n]["replicas"] for n in result["order"]] == [1, 1, 2, 2]
  assert runs["default"]["strategy"] == "default"
  assert runs["default"]["speedup_vs_default"] == 1.0
  assert runs["mirrored_2"]["global_batch"] == 32  # --quick's batch, split over 2.
  assert runs["mirrored_2"]["per_replica_batch"] == 16
  assert runs["mirrored_2_weak"]["global_batch"] == 64
  assert runs["mirrored_2"]["real_rows"] + runs["mirrored_2"]["synthetic_rows"] == 32
  assert len(runs["mirrored_2"]["device_names"]) == 2


@pytest.mark.parametrize(
  "devices, message",
  [
    ("0", "--devices takes device counts of at least 1 (as in --devices=1,2), not '0'"),
    ("x,2", "--devices takes device counts of at least 1 (as in --devices=1,2), not 'x'"),
    ("1,512", "--devices asks for 512 CPU devices, but this machine has "),
  ],
)
def test_bad_devices_give_one_line(tmp_path, devices, message):
  done = train_helpers.run_tool(
    "benchmark", f"--devices={devices}", f"--output={tmp_path / 'out.json'}"
  )
  assert done.returncode == 2 and len(done.lines) == 1, done.lines
  assert done.lines[0].startswith(f"benchmark: error: {message}"), done.lines
  if devices != "1,512":  # counting the machine's devices needs TensorFlow; parsing does not
    assert not done.tensorflow
  assert not os.path.exists(tmp_path / "out.json")


def test_parse_and_check_devices():
  assert scaling.parse_devices("2,1,2") == (1, 2)
  assert scaling.parse_devices(["1", " 4"]) == (1, 4)
  with pytest.raises(scaling.DevicesError, match="does not split evenly"):
    scaling.check_devices((1, 3), "GPU", 8, 128)
  with pytest.raises(scaling.DevicesError, match="this machine has 2 GPU"):
    scaling.check_devices((1, 4), "GPU", 2, 128)
  specs = scaling.plan((1, 2), "GPU", 128, weak=True)
  assert [s["replicas"] for s in specs] == [1, 1, 2]
  assert [r["global_batch"] for r in specs[2]["runs"]] == [128, 256, 128]
