"""The interval benchmark: wall time and peak memory of `lifelong.run` over one or two intervals.

`measure_intervals` runs `lifelong.run` on the first intervals of the stream
(the second with a teacher) with bounded steps, once per variant (config
defaults, XLA, steps_per_execution 1 or more; `interval_config`), each in a
fresh Python process so that its peak memory is its own (`peak_rss_mb`);
without `Settings.interval_subprocess` they run in this process. Each run
reports per interval where the time went (`run_interval`), and
`estimate_run` scales the measured intervals to a whole run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time

from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks import child_process
from tf_lifelong.benchmarks.measuring import peak_rss_mb
from tf_lifelong.benchmarks.settings import Settings


def interval_config(settings: Settings, variant: str) -> config_lib.Config:
  """The config of one interval-benchmark run: the first two intervals of the stream."""
  overrides = {
    "default": {},
    "xla": {"jit_compile": True},
    "spe1": {"steps_per_execution": 1},
    "spe": {"steps_per_execution": settings.steps_per_execution},
    "xla_spe": {"jit_compile": True, "steps_per_execution": settings.steps_per_execution},
  }
  if variant not in overrides:
    raise ValueError(f"unknown interval variant {variant!r}; choose from {', '.join(overrides)}")
  return dataclasses.replace(
    config_lib.Config(
      dataset=settings.dataset,
      data_dir=settings.data_dir,
      num_intervals=settings.interval_count,
      max_steps_per_interval=settings.interval_steps,
      eval_every=settings.eval_every,
      eval_examples=settings.eval_examples,
      validation_synthetic_examples=settings.validation_synthetic_examples,
      threads=settings.threads,
      seed=settings.seed,
    ),
    **overrides[variant],
  )


class _TrainingTimer:
  """While active, times each `training.train_interval` call of a run and its validations.

  lifelong.run calls training.train_interval(student, interval, config,
  validation, ...); the wrapper times the call and the `validation` callable
  it passes. What remains of an interval's wall time is the hand-over, the
  evaluation on the test sets and the records (metrics, images, checkpoint).
  """

  def __enter__(self):
    from tf_lifelong.train import training  # noqa: PLC0415

    self.module, self.original, self.records = training, training.train_interval, []

    def timed(student, interval, config, validation, *args, **kwargs):
      record = {"validation_seconds": 0.0, "validations": 0}

      def timed_validation():
        start = time.perf_counter()
        try:
          return validation()
        finally:
          record["validation_seconds"] += time.perf_counter() - start
          record["validations"] += 1

      start = time.perf_counter()
      try:
        return self.original(student, interval, config, timed_validation, *args, **kwargs)
      finally:
        record["train_interval_seconds"] = time.perf_counter() - start
        self.records.append(record)

    training.train_interval = timed
    return self

  def __exit__(self, *exc):
    self.module.train_interval = self.original


def run_interval(config: config_lib.Config) -> dict:
  """lifelong.run of `config` in a temporary workdir; wall times and peak memory (this process).

  Per interval: its wall time (lifelong's row), steps, and where the time
  went: `fit_seconds` (training steps, fit and its callback, without the
  validations), `validation_seconds` (the early-stopping evaluations) and
  `other_seconds` (hand-over, test-set evaluation, records).
  """
  from tf_lifelong.train import lifelong  # noqa: PLC0415

  start = time.perf_counter()
  cpu = time.process_time()
  with (
    tempfile.TemporaryDirectory(prefix="tf_lifelong_benchmark_") as workdir,
    open(os.devnull, "w") as quiet,
    _TrainingTimer() as timer,
  ):
    rows = lifelong.run(config, workdir, out=quiet)
  wall = time.perf_counter() - start
  intervals = []
  for row, record in zip(rows, timer.records):
    steps, seconds = int(row["steps"]), float(row["wall_seconds"])
    fit = record["train_interval_seconds"] - record["validation_seconds"]
    intervals.append(
      {
        "steps": steps,
        "wall_seconds": seconds,
        "seconds_per_1000_steps": 1000 * seconds / max(1, steps),
        "fit_seconds": fit,
        "fit_steps_per_sec": steps / fit if fit > 0 else math.nan,
        "validation_seconds": record["validation_seconds"],
        "validations": record["validations"],
        "other_seconds": max(0.0, seconds - record["train_interval_seconds"]),
        "stopped_early": bool(row["stopped_early"]),
      }
    )
  return {
    "jit_compile": config.jit_compile,
    "steps_per_execution": config.steps_per_execution,
    "max_steps_per_interval": config.max_steps_per_interval,
    "intervals": intervals,
    "run_wall_seconds": wall,
    "run_cpu_seconds": time.process_time() - cpu,
    "peak_rss_mb": peak_rss_mb(),
  }


def interval_child(payload: dict) -> dict:
  """`run_interval` in a fresh process (child_process.serve): payload {"config": Config dict}.

  The result also has `import_seconds`, the time to import TensorFlow, which
  the run's own times leave out.
  """
  start = time.perf_counter()
  config = config_lib.Config.from_dict(payload["config"])
  import tensorflow  # noqa: F401, PLC0415 - timed separately from the run.

  import_seconds = time.perf_counter() - start
  result = run_interval(config)
  result["import_seconds"] = import_seconds
  return result


def run_interval_in_subprocess(config: config_lib.Config) -> dict:
  """`run_interval(config)` in a fresh Python process: its peak memory is its own."""
  return child_process.run_json_child(
    "tf_lifelong.benchmarks.interval",
    "interval_child",
    {"config": config.to_dict()},
    env={"TF_CPP_MIN_LOG_LEVEL": "3"},
    description="the interval benchmark process",
  )


def measure_intervals(settings: Settings, log=print) -> dict:
  """Runs the interval benchmark of every variant in `settings.interval_variants`.

  Returns:
    {variant: run_interval's result, with `in_subprocess`}.
  """
  out = {}
  for variant in settings.interval_variants:
    config = interval_config(settings, variant)
    where = "subprocess" if settings.interval_subprocess else "in process"
    log(f"interval benchmark: {variant} ({where})")
    out[variant] = (
      run_interval_in_subprocess(config) if settings.interval_subprocess else run_interval(config)
    )
    out[variant]["in_subprocess"] = settings.interval_subprocess
  return out


def estimate_run(
  intervals: dict, steps: dict, num_intervals: int = 10, variant: str = "default"
) -> dict | None:
  """Wall time of a `num_intervals`-interval run, from one interval-benchmark variant.

  The first interval (no teacher) counts once. The second (k = 1) stands for
  each later one, its whole wall time scaled by the step-time ratio of the
  student at k = 9 to k = 1 (more replay rows per batch); the evaluations do
  not grow with k, so this over-counts. With only one interval measured, it
  stands for the later ones scaled by the student (k = 9) to plain VAE step
  time ratio. `worst_case_seconds` also scales every interval to its step
  budget, as if none stopped early.
  """
  default = intervals.get(variant)
  if not default or not default["intervals"]:
    return None
  measured = default["intervals"]
  first = measured[0]
  if len(measured) > 1:
    later, scale, basis = measured[1], steps.get("lgm_k9_over_k1_step_time"), "k9_over_k1"
  else:
    later, scale, basis = first, steps.get("lgm_over_plain_step_time"), "lgm_over_plain"
  if scale is None or not math.isfinite(scale):
    scale, basis = 1.0, "unscaled"
  budget = default["max_steps_per_interval"]
  return {
    "num_intervals": num_intervals,
    "seconds": first["wall_seconds"] + (num_intervals - 1) * later["wall_seconds"] * scale,
    "worst_case_seconds": (
      first["seconds_per_1000_steps"] * budget / 1000
      + (num_intervals - 1) * later["seconds_per_1000_steps"] * budget / 1000 * scale
    ),
    "from_steps": [i["steps"] for i in measured],
    "step_time_scale": scale,
    "scale_basis": basis,
  }
