"""The step benchmark: the training step, its matmul bound and the input pipeline, side by side.

    bin/benchmark --output=benchmark.json          # the full benchmark (minutes)
    bin/benchmark --output=b.json --quick          # a tiny setting (seconds)

`run(settings)` measures, side by side in one process (`measure_steps`):

- the student step with replay (`LifelongVAE.train_step`; k = J - 1 = 9
  distributions seen, so 115 of 128 rows are the teacher's) and a plain VAE
  step (the same networks, no teacher), each for every combination of XLA
  (`jit_compile`) and `steps_per_execution`, plus the student at k = 1 and the
  default student step with decoder distillation off (`replay_overhead`: the
  student's step time over the plain VAE's with the default objective and without
  the distillation, side by side);
- the step's matmuls, timed alone with `tf.matmul` at the step's shapes: the
  matmul-bound rate (flops.step_plan counts the FLOPs of the step that runs, the
  distillation's decoder rows included);
- the input pipeline alone (`streams.as_dataset`, as training builds it);
- the same steps and matmuls in each other precision of `settings.precisions`
  (config.precision, e.g. mixed_bfloat16), and the conv plain VAE step in every
  one of them, float32 included (`precision` in the result, with the CPU's
  bf16/AMX flags).

Every measurement is a burst of `steps` steps (bursts.py; the variants and
their bursts: step_bursts.py); the bursts of all variants take turns for
`rounds` rounds, and the reported rate is the median over rounds (measuring.py;
the numbers from the bursts: step_results.py). Ratios (student vs plain VAE, student vs
matmul bound) are the medians of the per-round ratios, so a load change on a
shared machine hits both sides of a ratio alike. The step is timed by calling
Keras' compiled train function directly (what `fit` runs per step, without
fit's callbacks); the interval benchmark times everything.

With `profile_steps`, `run` also profiles the student step
(profile.profile_step). Then the interval benchmark
(interval.measure_intervals): `lifelong.run` on the first two
intervals of the stream (the second with a teacher) with bounded steps, once
per variant, each in a fresh Python process so that its peak memory is its
own; with `quick` they run in this process (peak memory then includes the
step benchmark's).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tempfile
import time

from tf_lifelong.benchmarks import bursts, interval, measuring, profile, step_bursts, step_results
from tf_lifelong.benchmarks.settings import Settings  # Also tf_lifelong.benchmarks.steps.Settings.

REQUIRED_KEYS = (
  "lgm_examples_per_sec",
  "plain_vae_examples_per_sec",
  "matmul_bound_examples_per_sec",
  "pipeline_examples_per_sec",
  "lgm_over_plain_step_time",
  "replay_overhead",
  "lgm_fraction_of_matmul_bound",
  "pipeline_over_plain_vae",
  "pipeline_over_lgm_batches",
  "flops_per_example",
  "matmul_gflops_per_sec",
  "step_variants",
  "precision",
  "interval",
)
"""Keys every benchmark JSON has (the tests check them)."""


def measure_steps(settings: Settings, split, image_shape, log=print) -> dict:
  """The step, matmul and pipeline measurements (one process, interleaved rounds).

  Builds every burst (step_bursts.py), times them in `settings.rounds`
  interleaved rounds and returns their numbers (step_results.py).
  """
  variants = step_bursts.StepVariants.of(settings)
  timed, lgm = step_bursts.variant_bursts(settings, variants, split, image_shape, log)
  if settings.student_k1:
    timed.append(step_bursts.k1_burst(settings, variants, split, image_shape))
  timed.append(step_bursts.no_distillation_burst(settings, variants, split, image_shape))
  if settings.compare_keras_adam:
    timed += step_bursts.keras_adam_bursts(settings, variants, split, image_shape)
  timed += step_bursts.precision_bursts(settings, variants, split, image_shape, log)
  if settings.precision_conv:
    timed += step_bursts.conv_bursts(settings, variants, log)
  synthetic_rows = lgm.synthetic_batch_size(settings.batch_size)
  plans = step_bursts.matmul_plans(settings, variants, image_shape, synthetic_rows)
  timed += step_bursts.matmul_bursts(settings, variants, plans[0], plans[2])
  timed += step_bursts.pipeline_bursts(settings, split, lgm.real_batch_size(settings.batch_size))

  log(f"timing {len(timed)} bursts x {settings.rounds} rounds")
  load_before = measuring.load_average()
  measuring.round_robin(timed, settings.rounds)
  load_after = measuring.load_average()
  log("timed")
  result = step_results.results(timed, variants, settings, plans, synthetic_rows)
  result["load_average"] = {"before": load_before, "after": load_after}
  result["threads"] = _threads()
  return result


def _threads() -> dict:
  """TensorFlow's op thread pools (0: as many as cores)."""
  import tensorflow as tf  # noqa: PLC0415

  return {
    "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
    "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
  }


def run(settings: Settings, log=print) -> dict:
  """Runs the whole benchmark; returns the JSON-able result (see REQUIRED_KEYS)."""
  from tf_lifelong import runtime  # noqa: PLC0415
  from tf_lifelong.data import streams  # noqa: PLC0415

  start = time.perf_counter()
  config = settings.base_config()
  runtime.configure(config)
  import keras  # noqa: PLC0415
  import tensorflow as tf  # noqa: PLC0415

  stream = streams.build_stream(config)
  first = stream.intervals[0].distribution
  result = {
    "settings": {
      k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(settings).items()
    },
    "machine": {
      "cpus": os.cpu_count(),
      "processor": platform.processor(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "keras": keras.__version__,
      "cpu": measuring.cpu_info(),
    },
    "data": {
      "dataset": settings.dataset,
      "distribution": first.name,
      "train_examples": len(first.train),
      "image_shape": list(stream.image_shape),
    },
  }
  result.update(measure_steps(settings, first.train, stream.image_shape, log))
  if settings.profile_steps > 0:
    log(f"profiling {settings.profile_steps} student steps")
    config = settings.base_config()
    lgm, _ = bursts.students(config, stream.image_shape, settings.num_categories)
    data = bursts.real_rows(first.train, lgm.real_batch_size(settings.batch_size), settings.seed)
    with tempfile.TemporaryDirectory(prefix="tf_lifelong_profile_") as logdir:
      result["profile"] = profile.profile_step(lgm, data, settings.profile_steps, logdir)
  result["interval"] = (
    interval.measure_intervals(settings, log) if settings.interval_variants else {}
  )
  result["estimated_run"] = {
    variant: interval.estimate_run(result["interval"], result, variant=variant)
    for variant in result["interval"]
  }
  result["estimated_default_run"] = result["estimated_run"].get("default")
  result["peak_rss_mb_this_process"] = measuring.peak_rss_mb()
  result["benchmark_seconds"] = time.perf_counter() - start
  return result


def write(result: dict, path: str) -> None:
  """Writes a benchmark result (this module's or the scaling benchmark's) as JSON to `path`."""
  from tf_lifelong.state import artifacts  # noqa: PLC0415

  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  artifacts.write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")
