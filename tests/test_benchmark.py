"""bin/benchmark on a tiny setting (every key written, numbers positive and finite), the
FLOP count of the step (docs/performance.md), float32 and bfloat16 side by side, and the child
processes the benchmarks run.

The quick run takes about 50 s on an idle 2-core machine: eleven compiled steps
(two with XLA; two in bfloat16; two conv; the default student without decoder distillation)
and three one-interval lifelong runs (one with XLA).
"""

import json
import math
import os
import subprocess
import sys

import pytest

from tests import paths
from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks import child_process, flops, measuring, steps

BENCHMARK = os.path.join(paths.REPO, "bin", "benchmark")


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (paths.REPO, env.get("PYTHONPATH")) if p)
  # A quick run's numbers mean nothing; XLA at optimisation level 0 compiles in half the time.
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()
  return env


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
  output = str(tmp_path_factory.mktemp("benchmark") / "out" / "benchmark.json")
  done = subprocess.run(
    [
      sys.executable,
      BENCHMARK,
      "--quick",
      f"--output={output}",
      "--dataset=mnist",
      f"--data_dir={paths.DATA_ROOT}",
    ],
    capture_output=True,
    text=True,
    timeout=600,
    env=_env(),
    check=False,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  with open(output) as f:
    return json.load(f), done.stderr


def _numbers(value, path=""):
  """(path, number) for every int/float (not bool) inside `value`."""
  if isinstance(value, dict):
    for k, v in value.items():
      yield from _numbers(v, f"{path}/{k}")
  elif isinstance(value, list):
    for i, v in enumerate(value):
      yield from _numbers(v, f"{path}/{i}")
  elif isinstance(value, (int, float)) and not isinstance(value, bool):
    yield path, value


def test_writes_every_key_with_positive_finite_numbers(quick):
  result, _ = quick
  for key in steps.REQUIRED_KEYS:
    assert key in result, key
  checked = {
    key: result[key]
    for key in (
      *steps.REQUIRED_KEYS,
      "estimated_run",
      "benchmark_seconds",
    )
  }
  numbers = list(_numbers(checked))
  assert len(numbers) > 40
  for path, value in numbers:
    assert math.isfinite(value) and value > 0, (path, value)


def test_measures_xla_and_steps_per_execution(quick):
  result, _ = quick
  variants = result["step_variants"]
  assert {(v["jit_compile"], v["steps_per_execution"]) for v in variants.values()} >= {
    (False, 1),
    (True, 1),
    (False, 2),
  }
  assert set(result["interval"]) == {"default", "spe1", "xla"}
  assert result["interval"]["xla"]["jit_compile"] is True
  assert result["interval"]["spe1"]["steps_per_execution"] == 1
  assert (
    result["interval"]["default"]["steps_per_execution"] == config_lib.Config().steps_per_execution
  )
  for run in result["interval"].values():
    assert run["intervals"] and run["intervals"][0]["steps"] > 0
    assert run["peak_rss_mb"] > 100  # TensorFlow alone takes more.


def test_command_and_summary(quick):
  result, stderr = quick
  assert result["command"].startswith("bin/benchmark --quick")
  assert "matmul bound" in stderr and "Traceback" not in stderr
  assert result["flops"]["synthetic_rows"] + result["flops"]["real_rows"] == 32
  assert "pytorch_reference_rows_per_sec" not in result  # nothing not measured in this run


def test_replay_overhead_with_and_without_distillation_side_by_side(quick):
  result, stderr = quick
  for clock in (result["replay_overhead"], result["cpu_time"]["replay_overhead"]):
    assert clock["decoder_distillation"] == config_lib.Config().decoder_distillation
    for key in ("default_objective", "without_distillation", "distillation_step_time"):
      assert math.isfinite(clock[key]) and clock[key] > 0, key
  overhead = result["replay_overhead"]
  assert overhead["default_objective"] == result["lgm_over_plain_step_time"]
  # The bound of each step is its own: the distilled decoder rows add FLOPs.
  with_rows = result["flops"]["lgm"]["per_step"]
  assert with_rows > result["flops"]["lgm_without_distillation"]["per_step"]
  assert result["flops_per_example"] == result["flops"]["lgm"]["per_example"]
  assert "without decoder distillation" in stderr


def test_flop_count_by_hand():
  d, w, j, f, b, syn, jt = 6, 4, 3, 2, 5, 3, 2
  plan = flops.matmul_step_plan(d, w, j, f, b, syn, jt)
  student = (
    2 * b * d * w * 2  # encoder layer 1: forward + kernel grad
    + 6 * b * w * w  # encoder layer 2: forward + 2 grads
    + 6 * b * w * (j + 2 * f)  # latent projection
    + 6 * b * (j + f) * w
    + 6 * b * w * w
    + 6 * b * w * d
  )  # decoder
  teacher = (
    2 * syn * ((jt + f) * w + w * w + w * d)  # decoder, synthetic rows
    + 2 * syn * (d * w + w * w + w * (jt + 2 * f))
  )  # encoder, synthetic rows
  summary = flops.flop_summary(plan, b)
  assert summary["per_step"] == student + teacher
  assert summary["per_example_by_part"] == {"student": student / b, "teacher": teacher / b}
  plain = flops.matmul_step_plan(d, w, j, f, b, 0, None)
  assert flops.flop_summary(plain, b)["per_step"] == student
  # Decoder distillation: the student's decoder also runs, forward and backward, on the
  # synthetic rows' latents.
  distilled = flops.matmul_step_plan(d, w, j, f, b, syn, jt, distilled_rows=syn)
  decoder_rows = 6 * syn * (j + f) * w + 6 * syn * w * w + 6 * syn * w * d
  assert flops.flop_summary(distilled, b)["per_step"] == student + teacher + decoder_rows


def test_the_flop_plan_follows_the_objective_that_runs():
  """flops.step_plan counts the step a config trains: distillation on, the count grows."""
  import dataclasses

  config = config_lib.Config(batch_size=16, hidden_units=8, continuous_dim=3)
  assert config.decoder_distillation > 0  # the default objective distils
  off = dataclasses.replace(config, decoder_distillation=0.0)
  on_plan, off_plan = flops.step_plan(config, 20, 4, 6), flops.step_plan(off, 20, 4, 6)
  rows = {m.name: m.m for m in on_plan if m.name.startswith("decoder/") and "forward" in m.name}
  assert set(rows.values()) == {16 + 6}  # B + the synthetic rows
  on, off_sum = flops.flop_summary(on_plan, 16), flops.flop_summary(off_plan, 16)
  assert on["per_step"] > off_sum["per_step"]
  assert on["per_example_by_part"]["teacher"] == off_sum["per_example_by_part"]["teacher"]
  assert off_plan == flops.matmul_step_plan(20, 8, 4, 3, 16, 6, 3)
  # Without a teacher nothing is distilled: the plain VAE's plan either way.
  assert flops.step_plan(config, 20, 4, 0) == flops.step_plan(off, 20, 4, 0)


def test_child_process_returns_the_json_result():
  # builtins.dict(payload): the payload back, through a fresh Python process.
  payload = {"a": [1, 2.5, None], "b": "text"}
  assert child_process.run_json_child("builtins", "dict", payload) == payload


def test_child_process_failure_carries_its_stderr():
  with pytest.raises(RuntimeError, match="the test child failed") as raised:
    child_process.run_json_child(
      "tf_lifelong.no_such_module", "f", {}, description="the test child"
    )
  assert "ModuleNotFoundError" in str(raised.value)


def _proc_cpuinfo() -> dict | None:
  """The first processor's model name and CPU_FLAGS, read apart from measuring.cpu_info."""
  if not os.path.exists("/proc/cpuinfo"):
    assert not sys.platform.startswith("linux")
    return None
  lines = open("/proc/cpuinfo").read().splitlines()
  model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
  flags = next(line.split(":", 1)[1].split() for line in lines if line.startswith("flags"))
  return {"model_name": model, "flags": {f: f in flags for f in measuring.CPU_FLAGS}}


def test_cpu_info_reads_the_first_processor(tmp_path):
  path = tmp_path / "cpuinfo"
  path.write_text(
    "processor\t: 0\nmodel name\t: Chip A\nflags\t\t: fpu avx512f amx_tile\n\n"
    "processor\t: 1\nmodel name\t: Chip B\nflags\t\t: fpu avx512_bf16\n"
  )
  flags = dict.fromkeys(measuring.CPU_FLAGS, False) | {"avx512f": True, "amx_tile": True}
  assert measuring.cpu_info(str(path)) == {"model_name": "Chip A", "flags": flags}
  assert measuring.cpu_info(str(tmp_path / "absent")) is None


def test_reports_float32_and_bfloat16_side_by_side(quick):
  result, stderr = quick
  precision = result["precision"]
  assert precision["precisions"] == ["float32", "mixed_bfloat16"]
  for name in precision["precisions"]:
    for clock in (precision[name], precision["cpu_time"][name]):
      for key in (
        "lgm_examples_per_sec",
        "plain_vae_examples_per_sec",
        "matmul_gflops_per_sec",
        "lgm_rate_over_float32",
        "matmul_rate_over_float32",
        "conv_plain_vae_rate_over_float32",
      ):
        assert math.isfinite(clock[key]) and clock[key] > 0, (name, key)
  assert precision["float32"]["matmul_rate_over_float32"] == 1.0
  cpu = result["machine"]["cpu"]
  assert cpu == _proc_cpuinfo()  # what this machine's /proc/cpuinfo says, read here
  assert precision["cpu"] == cpu
  assert "mixed_bfloat16: student" in stderr
