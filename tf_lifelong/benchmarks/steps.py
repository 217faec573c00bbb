"""The step benchmark: the training step, its matmul bound and the input pipeline, side by side.

    bin/benchmark --output=benchmark.json          # the full benchmark (minutes)
    bin/benchmark --output=b.json --quick          # a tiny setting (seconds)

`run(settings)` measures, side by side in one process (`measure_steps`):

- the student step with replay (`LifelongVAE.train_step`; k = J - 1 = 9
  distributions seen, so 115 of 128 rows are the teacher's) and a plain VAE
  step (the same networks, no teacher), each for every combination of XLA
  (`jit_compile`) and `steps_per_execution`, plus the student at k = 1;
- the step's matmuls, timed alone with `tf.matmul` at the step's shapes: the
  matmul-bound rate (flops.matmul_step_plan counts the step's FLOPs);
- the input pipeline alone (`streams.as_dataset`, as training builds it);
- the same steps and matmuls in each other precision of `settings.precisions`
  (config.precision, e.g. mixed_bfloat16), and the conv plain VAE step in every
  one of them, float32 included (`precision` in the result, with the CPU's
  bf16/AMX flags).

Every measurement is a burst of `steps` steps (bursts.py); the bursts of
all variants take turns for `rounds` rounds, and the reported rate is the
median over rounds (measuring.py). Ratios (student vs plain VAE, student vs
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

import contextlib
import dataclasses
import json
import os
import platform
import tempfile
import time

import numpy as np

from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks import bursts, interval, measuring, profile
from tf_lifelong.benchmarks.flops import flop_summary, matmul_step_plan
from tf_lifelong.benchmarks.settings import Settings  # Also tf_lifelong.benchmarks.steps.Settings.

PYTORCH_REFERENCE_ROWS_PER_SEC = (4450.0, 4950.0)
"""The authors' PyTorch code, student with teacher, dense, batch 128, 2 threads, on
this kind of machine (../shared/docs/stack-notes.md); a reference, not measured here."""

REQUIRED_KEYS = (
  "lgm_examples_per_sec",
  "plain_vae_examples_per_sec",
  "matmul_bound_examples_per_sec",
  "pipeline_examples_per_sec",
  "lgm_over_plain_step_time",
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


@contextlib.contextmanager
def _keras_adam():
  """Within: steps traced use Keras' own Adam update (fused_adam.ENABLED off)."""
  from tf_lifelong.model import fused_adam  # noqa: PLC0415

  saved, fused_adam.ENABLED = fused_adam.ENABLED, False
  try:
    yield
  finally:
    fused_adam.ENABLED = saved


def _variant_name(jit: bool, spe: int) -> str:
  return f"xla={'on' if jit else 'off'},spe={spe}"


CONV_IMAGE_SHAPE = (32, 32, 3)
"""The conv step's images (svhn_mnist, fashion_mnist_mnist)."""


def other_precisions(settings: Settings) -> tuple[str, ...]:
  """settings.precisions without float32 (always timed, the reference), each once."""
  return tuple(dict.fromkeys(p for p in settings.precisions if p != "float32"))


def _burst_name(kind: str, variant: str, precision: str) -> str:
  return f"{kind}/{variant}" if precision == "float32" else f"{kind}/{variant}/{precision}"


def measure_steps(settings: Settings, split, image_shape, log=print) -> dict:
  """The step, matmul and pipeline measurements (one process, interleaved rounds)."""
  import keras  # noqa: PLC0415
  import tensorflow as tf  # noqa: PLC0415

  defaults = config_lib.Config()
  default_variant = (bool(defaults.jit_compile), int(defaults.steps_per_execution))
  combos = {(False, 1), (True, 1), (False, settings.steps_per_execution), default_variant}
  if settings.xla_with_spe:
    combos.add((True, settings.steps_per_execution))
  combos = sorted(combos)
  b = settings.batch_size
  steps = settings.steps

  def train_burst(name: str, model, real_batch: int) -> measuring.Burst:
    """`steps` steps of `model`, its batches with `real_batch` rows of the training data."""
    data = bursts.real_rows(split, real_batch, settings.seed)
    return bursts.train_burst(name, model, data, steps)

  models = {}
  timed = []
  for jit, spe in combos:
    config = settings.base_config(jit_compile=jit, steps_per_execution=spe)
    lgm, plain = bursts.students(config, image_shape, settings.num_categories)
    models[(jit, spe)] = (lgm, plain)
    name = _variant_name(jit, spe)
    log(f"compiling the steps of {name}")
    timed.append(train_burst(f"lgm/{name}", lgm, lgm.real_batch_size(b)))
    timed.append(train_burst(f"plain/{name}", plain, b))
  default_config = settings.base_config(
    jit_compile=default_variant[0], steps_per_execution=default_variant[1]
  )
  if settings.student_k1:
    # The student at k = 1 (the second interval): to scale the interval benchmark.
    lgm_k1, _ = bursts.students(default_config, image_shape, 2)
    timed.append(train_burst("lgm_k1/default", lgm_k1, lgm_k1.real_batch_size(b)))
  if settings.compare_keras_adam:
    lgm_ref, plain_ref = bursts.students(default_config, image_shape, settings.num_categories)
    with _keras_adam():
      timed.append(train_burst("lgm_keras_adam/default", lgm_ref, lgm_ref.real_batch_size(b)))
      timed.append(train_burst("plain_keras_adam/default", plain_ref, b))

  precisions = other_precisions(settings)
  precision_combos = sorted(
    {default_variant, *([(True, settings.steps_per_execution)] if settings.xla_with_spe else [])}
  )
  for precision in precisions:
    for jit, spe in precision_combos:
      config = settings.base_config(jit_compile=jit, steps_per_execution=spe, precision=precision)
      lgm_p, plain_p = bursts.students(config, image_shape, settings.num_categories)
      name = _variant_name(jit, spe)
      log(f"compiling the steps of {name} in {precision}")
      timed.append(
        train_burst(_burst_name("lgm", name, precision), lgm_p, lgm_p.real_batch_size(b))
      )
      timed.append(train_burst(_burst_name("plain", name, precision), plain_p, b))
  if settings.precision_conv:
    from tf_lifelong.model import student as student_lib  # noqa: PLC0415

    for precision in ("float32", *precisions):
      config = dataclasses.replace(
        default_config, arch="conv", conv_filters=settings.conv_filters, precision=precision
      )
      log(f"compiling the conv step in {precision}")
      conv = student_lib.new_student(config, CONV_IMAGE_SHAPE, 2)
      images = bursts.random_images(CONV_IMAGE_SHAPE, b, settings.seed)
      timed.append(bursts.train_burst(f"conv_plain/{precision}", conv, images, settings.conv_steps))

  lgm = models[default_variant][0]
  n_syn = lgm.synthetic_batch_size(b)
  pixels = int(np.prod(image_shape))
  plan = matmul_step_plan(
    pixels,
    settings.hidden_units,
    settings.num_categories,
    settings.continuous_dim,
    b,
    n_syn,
    settings.num_categories - 1,
  )
  plain_plan = matmul_step_plan(
    pixels, settings.hidden_units, settings.num_categories, settings.continuous_dim, b, 0, None
  )
  matmul = bursts.matmul_burst(plan, steps, settings.seed)
  timed.append(matmul)
  for precision in precisions:
    dtype = keras.DTypePolicy(precision).compute_dtype
    timed.append(bursts.matmul_burst(plan, steps, settings.seed, dtype, f"matmul/{precision}"))
  pipe_batches = max(steps, 20)
  pipe = bursts.pipeline_burst("pipeline/plain", split, b, pipe_batches, settings.seed)
  pipe_lgm = bursts.pipeline_burst(
    "pipeline/lgm", split, lgm.real_batch_size(b), pipe_batches, settings.seed
  )
  timed += [pipe, pipe_lgm]

  log(f"timing {len(timed)} bursts x {settings.rounds} rounds")
  load_before = measuring.load_average()
  measuring.round_robin(timed, settings.rounds)
  load_after = measuring.load_average()
  log("timed")
  by_name = {burst.name: burst for burst in timed}
  flops = flop_summary(plan, b)
  result = _step_results(by_name, "wall", combos, default_variant, settings, flops)
  result.update(
    {
      "cpu_time": _step_results(by_name, "cpu", combos, default_variant, settings, flops),
      "flops_per_example": flops["per_example"],
      "flops": {
        "lgm": flops,
        "plain_vae": flop_summary(plain_plan, b),
        "synthetic_rows": n_syn,
        "real_rows": b - n_syn,
      },
      "default_variant": _variant_name(*default_variant),
      "precision": {
        "precisions": ["float32", *precisions],
        "cpu": measuring.cpu_info(),
        **_precision_results(by_name, "wall", precision_combos, default_variant, settings, flops),
        "cpu_time": _precision_results(
          by_name, "cpu", precision_combos, default_variant, settings, flops
        ),
      },
      "rounds": {
        burst.name: {clock: [round(r, 2) for r in burst.rates(clock)] for clock in ("wall", "cpu")}
        for burst in timed
      },
      "load_average": {"before": load_before, "after": load_after},
      "threads": {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
      },
    }
  )
  return result


def _rate_fns(by_name: dict, clock: str):
  """(per_sec(name): median rate over rounds, ratio(num, den): median over rounds of
  rate(num) / rate(den)) of the bursts in `by_name` on `clock`."""

  def per_sec(name):
    return measuring.median(by_name[name].rates(clock))

  def ratio(num, den):
    return measuring.median(
      [a / c for a, c in zip(by_name[num].rates(clock), by_name[den].rates(clock))]
    )

  return per_sec, ratio


def _step_results(
  by_name: dict, clock: str, combos, default_variant, settings: Settings, flops: dict
) -> dict:
  """Rates (medians over rounds) and ratios (medians of per-round ratios) on one clock."""
  b = settings.batch_size
  per_sec, ratio = _rate_fns(by_name, clock)

  variants = {}
  for jit, spe in combos:
    name = _variant_name(jit, spe)
    variants[name] = {
      "jit_compile": jit,
      "steps_per_execution": spe,
      "lgm_steps_per_sec": per_sec(f"lgm/{name}"),
      "lgm_examples_per_sec": per_sec(f"lgm/{name}") * b,
      "plain_vae_steps_per_sec": per_sec(f"plain/{name}"),
      "plain_vae_examples_per_sec": per_sec(f"plain/{name}") * b,
      "lgm_over_plain_step_time": ratio(f"plain/{name}", f"lgm/{name}"),
      "lgm_fraction_of_matmul_bound": ratio(f"lgm/{name}", "matmul"),
    }
  name = _variant_name(*default_variant)
  default = variants[name]
  best = max(variants.values(), key=lambda v: v["lgm_steps_per_sec"])
  out = {
    "lgm_examples_per_sec": default["lgm_examples_per_sec"],
    "lgm_steps_per_sec": default["lgm_steps_per_sec"],
    "plain_vae_examples_per_sec": default["plain_vae_examples_per_sec"],
    "plain_vae_steps_per_sec": default["plain_vae_steps_per_sec"],
    "lgm_over_plain_step_time": default["lgm_over_plain_step_time"],
    "matmul_bound_examples_per_sec": per_sec("matmul") * b,
    "matmul_gflops_per_sec": per_sec("matmul") * flops["per_step"] / 1e9,
    "lgm_fraction_of_matmul_bound": default["lgm_fraction_of_matmul_bound"],
    "best_variant": {
      "name": _variant_name(best["jit_compile"], best["steps_per_execution"]),
      **best,
    },
    "lgm_k1_steps_per_sec": per_sec("lgm_k1/default") if settings.student_k1 else None,
    "lgm_k9_over_k1_step_time": (
      ratio("lgm_k1/default", f"lgm/{name}") if settings.student_k1 else None
    ),
    "keras_adam": (
      {
        "lgm_examples_per_sec": per_sec("lgm_keras_adam/default") * b,
        "plain_vae_examples_per_sec": per_sec("plain_keras_adam/default") * b,
        "lgm_fused_over_keras_adam_rate": ratio(f"lgm/{name}", "lgm_keras_adam/default"),
        "plain_fused_over_keras_adam_rate": ratio(f"plain/{name}", "plain_keras_adam/default"),
        "lgm_keras_adam_fraction_of_matmul_bound": ratio("lgm_keras_adam/default", "matmul"),
      }
      if settings.compare_keras_adam
      else None
    ),
    "pipeline_examples_per_sec": per_sec("pipeline/plain") * b,
    "pipeline_lgm_batches_per_sec": per_sec("pipeline/lgm"),
    "pipeline_over_plain_vae": ratio("pipeline/plain", f"plain/{name}"),
    "pipeline_over_lgm_batches": ratio("pipeline/lgm", f"lgm/{name}"),
    "step_variants": variants,
  }
  return out


def _precision_results(
  by_name: dict, clock: str, combos, default_variant, settings: Settings, flops: dict
) -> dict:
  """Per precision (float32 first): the steps, the matmul bound and the conv step on one clock.

  Rates are medians over rounds; `*_over_float32` are medians of per-round rate ratios
  against the same burst in float32 (above 1: faster than float32).
  """
  b = settings.batch_size
  per_sec, ratio = _rate_fns(by_name, clock)

  out = {}
  default_name = _variant_name(*default_variant)
  for precision in ("float32", *other_precisions(settings)):
    variants = {}
    for jit, spe in combos:
      name = _variant_name(jit, spe)
      lgm, plain = (_burst_name(kind, name, precision) for kind in ("lgm", "plain"))
      variants[name] = {
        "lgm_examples_per_sec": per_sec(lgm) * b,
        "plain_vae_examples_per_sec": per_sec(plain) * b,
        "lgm_rate_over_float32": ratio(lgm, f"lgm/{name}"),
        "plain_vae_rate_over_float32": ratio(plain, f"plain/{name}"),
      }
    matmul = "matmul" if precision == "float32" else f"matmul/{precision}"
    entry = {
      **variants[default_name],
      "variants": variants,
      "matmul_bound_examples_per_sec": per_sec(matmul) * b,
      "matmul_gflops_per_sec": per_sec(matmul) * flops["per_step"] / 1e9,
      "matmul_rate_over_float32": ratio(matmul, "matmul"),
      "lgm_fraction_of_matmul_bound": ratio(_burst_name("lgm", default_name, precision), matmul),
    }
    if settings.precision_conv:
      entry["conv_plain_vae_examples_per_sec"] = per_sec(f"conv_plain/{precision}") * b
      entry["conv_plain_vae_rate_over_float32"] = ratio(
        f"conv_plain/{precision}", "conv_plain/float32"
      )
    out[precision] = entry
  return out


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
  result["pytorch_reference_rows_per_sec"] = list(PYTORCH_REFERENCE_ROWS_PER_SEC)
  result["lgm_over_pytorch_reference"] = [
    result["lgm_examples_per_sec"] / r for r in PYTORCH_REFERENCE_ROWS_PER_SEC
  ]
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
