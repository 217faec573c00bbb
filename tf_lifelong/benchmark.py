"""Benchmarks of the training step, the input pipeline and one lifelong interval.

    bin/benchmark --output=benchmark.json          # the full benchmark (minutes)
    bin/benchmark --output=b.json --quick          # a tiny setting (seconds)

`run(settings)` measures, side by side in one process:

- the student step with replay (`LifelongVAE.train_step`; k = J - 1 = 9
  distributions seen, so 115 of 128 rows are the teacher's) and a plain VAE
  step (the same networks, no teacher), each for every combination of XLA
  (`jit_compile`) and `steps_per_execution`, plus the student at k = 1;
- the step's matmuls, timed alone with `tf.matmul` at the step's shapes: the
  matmul-bound rate (`matmul_step_plan` counts the step's FLOPs);
- the input pipeline alone (`streams.as_dataset`, as training builds it).

Every measurement is a burst of `steps` steps; the bursts of all variants take
turns for `rounds` rounds, and the reported rate is the median over rounds.
Ratios (student vs plain VAE, student vs matmul bound) are the medians of the
per-round ratios, so a load change on a shared machine hits both sides of a
ratio alike. The step is timed by calling Keras' compiled train function
directly (what `fit` runs per step, without fit's callbacks); the interval
benchmark times everything.

Then the interval benchmark: `lifelong.run` on the first two intervals of the
stream (the second with a teacher) with bounded steps, once per variant
(config defaults, XLA, steps_per_execution > 1), each in a fresh Python
process so that its peak memory is its own (`peak_rss_mb`); with `quick` they
run in this process (peak memory then includes the step benchmark's).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

from tf_lifelong import config as config_lib

PYTORCH_REFERENCE_ROWS_PER_SEC = (4450.0, 4950.0)
"""The authors' PyTorch code, student with teacher, dense, batch 128, 2 threads, on
this kind of machine (docs/stack-notes.md); a reference, not measured here."""

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
  "interval",
)
"""Keys every benchmark JSON has (the tests check them)."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the benchmark runs. The defaults are the issue's setting (MLP, batch 128, J = 10, F = 20)."""

  steps: int = 50
  """Steps per timed burst (rounded up to a multiple of steps_per_execution)."""
  rounds: int = 15
  """Bursts per variant, interleaved; rates are medians over rounds."""
  batch_size: int = 128
  hidden_units: int = 512
  continuous_dim: int = 20
  num_categories: int = 10
  """J of the student; its teacher has J - 1 categories and k = J - 1."""
  steps_per_execution: int = 10
  """The value of the steps_per_execution > 1 variants."""
  dataset: str = "fashion_mnist"
  data_dir: str | None = None
  interval_steps: int = 4000
  """max_steps_per_interval of the interval benchmark (the default config's)."""
  eval_every: int = 250
  eval_examples: int | None = None
  validation_synthetic_examples: int = 1000
  interval_variants: tuple[str, ...] = ("default", "spe1", "xla")
  """default: the config's defaults; spe1: steps_per_execution = 1 (no batching of steps);
  xla: jit_compile on; spe: steps_per_execution = `steps_per_execution`."""
  interval_subprocess: bool = True
  """Run each interval variant in a fresh process (its own peak memory)."""
  interval_count: int = 2
  """Intervals per interval-benchmark run: 2 (the second has a teacher) or 1."""
  xla_with_spe: bool = True
  """Also time the step with XLA and steps_per_execution > 1 together."""
  student_k1: bool = True
  """Also time the student at k = 1, to scale the interval benchmark to later intervals."""
  compare_keras_adam: bool = True
  """Also time the default step with Keras' own Adam update instead of the fused kernel."""
  profile_steps: int = 0
  """If positive, profile that many student steps with tf.profiler (op time by kind)."""
  threads: int = 0
  seed: int = 0

  @classmethod
  def quick(cls, **overrides) -> Settings:
    """A tiny setting that runs in seconds (for tests), everything still measured."""
    values = dict(
      steps=4,
      rounds=2,
      batch_size=32,
      hidden_units=32,
      steps_per_execution=2,
      interval_steps=8,
      eval_every=4,
      eval_examples=50,
      validation_synthetic_examples=50,
      interval_subprocess=False,
      interval_count=1,
      xla_with_spe=False,
      student_k1=False,
      compare_keras_adam=False,
    )
    values.update(overrides)
    return cls(**values)

  def base_config(self, **overrides) -> config_lib.Config:
    values = dict(
      dataset=self.dataset,
      data_dir=self.data_dir,
      batch_size=self.batch_size,
      hidden_units=self.hidden_units,
      continuous_dim=self.continuous_dim,
      threads=self.threads,
      seed=self.seed,
      arch="mlp",
    )
    values.update(overrides)
    return config_lib.Config(**values)


# ------------------------------------------------------------------ FLOPs
@dataclasses.dataclass(frozen=True)
class Matmul:
  """One matmul [m, k] x [k, n] of the step: 2 m k n FLOPs."""

  name: str
  m: int
  k: int
  n: int
  transpose_a: bool = False
  transpose_b: bool = False

  @property
  def flops(self) -> int:
    return 2 * self.m * self.k * self.n


def _dense(
  name: str, rows: int, fan_in: int, fan_out: int, *, train: bool, input_grad: bool = True
) -> list[Matmul]:
  """The matmuls of one dense layer on `rows` rows: forward, and if trained the
  input gradient dY W^T (unless the input needs none) and the kernel gradient X^T dY."""
  out = [Matmul(f"{name}/forward", rows, fan_in, fan_out)]
  if train:
    if input_grad:
      out.append(Matmul(f"{name}/grad_input", rows, fan_out, fan_in, transpose_b=True))
    out.append(Matmul(f"{name}/grad_kernel", fan_in, rows, fan_out, transpose_a=True))
  return out


def matmul_step_plan(
  pixels: int,
  width: int,
  categories: int,
  continuous: int,
  batch: int,
  synthetic: int,
  teacher_categories: int | None,
  teacher_encoder_rows: int | None = None,
) -> list[Matmul]:
  """Every matmul of one student step of the MLP (method.md section 2), with its shape.

  Student (trained, all `batch` rows): encoder D -> W -> W -> (J + 2F) and
  decoder (J + F) -> W -> W -> D, forward and backward. The encoder's first
  layer needs no input gradient (x is data); the decoder's first layer does
  (the reparameterised z depends on the encoder). Teacher (frozen, forward
  only): the decoder on the `synthetic` rows it generates, and the encoder on
  `teacher_encoder_rows` rows (the step gives it the synthetic rows only;
  default `synthetic`). Biases, batch norm and activations are not matmuls
  and are not counted.

  Returns:
    The list of `Matmul`s; sum(flops) is the step's matmul FLOPs.
  """
  d, w, j, f = pixels, width, categories, continuous
  plan = []
  plan += _dense("encoder/hidden_1", batch, d, w, train=True, input_grad=False)
  plan += _dense("encoder/hidden_2", batch, w, w, train=True)
  plan += _dense("encoder/latent_projection", batch, w, j + 2 * f, train=True)
  plan += _dense("decoder/latent_input", batch, j + f, w, train=True)
  plan += _dense("decoder/hidden_2", batch, w, w, train=True)
  plan += _dense("decoder/output_layer", batch, w, d, train=True)
  if teacher_categories is not None and synthetic > 0:
    jt = teacher_categories
    rows = synthetic if teacher_encoder_rows is None else teacher_encoder_rows
    plan += _dense("teacher/decoder/latent_input", synthetic, jt + f, w, train=False)
    plan += _dense("teacher/decoder/hidden_2", synthetic, w, w, train=False)
    plan += _dense("teacher/decoder/output_layer", synthetic, w, d, train=False)
    plan += _dense("teacher/encoder/hidden_1", rows, d, w, train=False)
    plan += _dense("teacher/encoder/hidden_2", rows, w, w, train=False)
    plan += _dense("teacher/encoder/latent_projection", rows, w, jt + 2 * f, train=False)
  return plan


def flop_summary(plan: list[Matmul], batch: int) -> dict:
  """FLOPs of a step plan: total, per example, and per group (student / teacher)."""
  total = sum(m.flops for m in plan)
  groups: dict[str, int] = {}
  for m in plan:
    group = "teacher" if m.name.startswith("teacher/") else "student"
    groups[group] = groups.get(group, 0) + m.flops
  return {
    "per_step": total,
    "per_example": total / batch,
    "per_example_by_part": {k: v / batch for k, v in sorted(groups.items())},
    "matmuls": len(plan),
  }


# ------------------------------------------------------------- measuring
def _median(values):
  return statistics.median(values) if values else math.nan


class _Burst:
  """A named thing timed in bursts: `run()` does `units` units of work and syncs.

  Each burst records its wall time and this process's CPU time (all threads:
  TensorFlow's op threads, tf.data's, Python). On a machine shared with other
  jobs, CPU time is what the work cost and moves much less with their load;
  wall time is what a user waits.
  """

  def __init__(self, name: str, units: int, run: Callable[[], None]):
    self.name, self.units, self.run = name, units, run
    self.seconds: dict[str, list[float]] = {"wall": [], "cpu": []}

  def time(self) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    self.run()
    self.seconds["cpu"].append(time.process_time() - cpu)
    self.seconds["wall"].append(time.perf_counter() - wall)

  def rates(self, clock: str = "wall") -> list[float]:
    """Units per second (of `clock`: wall or cpu) of each round."""
    return [self.units / s if s > 0 else math.nan for s in self.seconds[clock]]


def _round_robin(bursts: list[_Burst], rounds: int) -> None:
  for _ in range(rounds):
    for burst in bursts:
      burst.time()


def _train_burst(name: str, model, dataset, steps: int) -> _Burst:
  """Times `steps` training steps of a compiled model through its Keras train function."""
  spe = model.steps_per_execution
  calls = max(1, math.ceil(steps / spe))
  if not model.optimizer.built:
    model.optimizer.build(model.trainable_variables)  # What fit does before its first step.
  model.make_train_function()
  iterator = iter(dataset)
  function = model.train_function
  for _ in range(2):  # Tracing (and XLA compilation) happen here, outside the timing.
    function(iterator)

  def run():
    logs = None
    for _ in range(calls):
      logs = function(iterator)
    float(logs["loss"])

  return _Burst(name, calls * spe, run)


def _matmul_burst(plan: list[Matmul], steps: int, seed: int):
  """Times the step's matmuls alone: `steps` repetitions of the whole plan."""
  import tensorflow as tf  # noqa: PLC0415

  rng = np.random.default_rng(seed)

  def operand(rows, cols):
    return tf.constant(rng.standard_normal((rows, cols)).astype(np.float32))

  pairs = []
  for m in plan:
    a = operand(m.k, m.m) if m.transpose_a else operand(m.m, m.k)
    b = operand(m.n, m.k) if m.transpose_b else operand(m.k, m.n)
    pairs.append((a, b, m.transpose_a, m.transpose_b))

  @tf.function
  def once():
    # Each product is consumed (one element), so none is pruned away.
    return tf.add_n(
      [tf.matmul(a, b, transpose_a=ta, transpose_b=tb)[0, 0] for a, b, ta, tb in pairs]
    )

  float(once())

  def run():
    out = None
    for _ in range(steps):
      out = once()
    float(out)

  return _Burst("matmul", steps, run)


def _pipeline_burst(name: str, split, batch_size: int, batches: int, seed: int) -> _Burst:
  """Times `batches` batches of the training pipeline, consumed inside TensorFlow."""
  import tensorflow as tf  # noqa: PLC0415

  from tf_lifelong.data import streams  # noqa: PLC0415

  dataset = streams.as_dataset(
    split, batch_size, shuffle=True, seed=seed, repeat=True, drop_remainder=True
  )
  iterator = iter(dataset)

  @tf.function
  def drain(n):
    count = tf.constant(0, tf.int64)
    for _ in tf.range(n):
      images, _ = next(iterator)
      count += tf.cast(tf.shape(images)[0], tf.int64)
    return count

  n = tf.constant(batches, tf.int64)
  drain(n)

  def run():
    int(drain(n))

  return _Burst(name, batches, run)


# ----------------------------------------------------------- step models
def _students(config: config_lib.Config, image_shape, categories: int):
  """(student with teacher, k = categories - 1; plain VAE with J = categories), compiled."""
  from tf_lifelong.model import handover  # noqa: PLC0415
  from tf_lifelong.model import student as student_lib  # noqa: PLC0415

  before = student_lib.new_student(config, image_shape, categories - 1)
  lgm = handover.handover(before, is_new=True, config=config)
  plain = student_lib.new_student(config, image_shape, categories)
  return lgm, plain


class _keras_adam:  # noqa: N801 - used as a context manager
  """Within: steps traced use Keras' own Adam update (student.FUSED_ADAM off)."""

  def __enter__(self):
    from tf_lifelong.model import student as student_lib  # noqa: PLC0415

    self.saved, student_lib.FUSED_ADAM = student_lib.FUSED_ADAM, False

  def __exit__(self, *exc):
    from tf_lifelong.model import student as student_lib  # noqa: PLC0415

    student_lib.FUSED_ADAM = self.saved


def _op_kind(scope: str, op_type: str) -> str:
  """The part of the step an op belongs to, from its name scope and type."""
  lower = scope.lower()
  if "matmul" in op_type.lower():
    return "matmul"
  if "applyadam" in op_type.lower() or "adam" in lower.split("/")[:3] or "fused_adam" in lower:
    return "optimizer"
  if "global_norm" in lower:
    return "grad_norm"
  if "/teacher/" in lower or lower.startswith("teacher/"):
    return "teacher (non-matmul)"
  if lower.startswith("gradient_tape") or "/gradient_tape/" in lower:
    return "backward (non-matmul)"
  return "forward and other (non-matmul)"


def profile_step(model, dataset, steps: int, logdir: str) -> dict:
  """Runs `steps` steps under tf.profiler; op time per step, by kind and by op type.

  Reads the trace's host plane (xplane.pb): every TensorFlow op executed, with
  its name scope and type. The times are summed over threads, so with two
  threads they can exceed the wall time; tracing adds overhead to small ops.
  """
  import glob  # noqa: PLC0415

  import tensorflow as tf  # noqa: PLC0415
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: PLC0415

  burst = _train_burst("profile", model, dataset, steps)
  tf.profiler.experimental.start(logdir)
  start = time.perf_counter()
  burst.run()
  wall = time.perf_counter() - start
  tf.profiler.experimental.stop()
  paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
  space = xplane_pb2.XSpace()
  with open(sorted(paths)[-1], "rb") as f:
    space.ParseFromString(f.read())
  kinds: dict[str, float] = {}
  types: dict[str, float] = {}
  for plane in space.planes:
    if plane.name != "/host:CPU":
      continue
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ":" not in name or "::" in name:
          continue  # Executor bookkeeping, not an op.
        scope, op_type = name.rsplit(":", 1)
        ms = event.duration_ps / 1e9 / burst.units
        kind = _op_kind(scope.replace("StatefulPartitionedCall/", ""), op_type)
        kinds[kind] = kinds.get(kind, 0.0) + ms
        types[op_type] = types.get(op_type, 0.0) + ms
  total = sum(kinds.values())
  return {
    "steps": burst.units,
    "wall_ms_per_step_traced": 1000 * wall / burst.units,
    "op_ms_per_step": total,
    "by_kind_ms_per_step": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
    "by_kind_fraction": {k: v / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
    "top_op_types_ms_per_step": dict(sorted(types.items(), key=lambda kv: -kv[1])[:15]),
  }


def _variant_name(jit: bool, spe: int) -> str:
  return f"xla={'on' if jit else 'off'},spe={spe}"


def _load_average() -> list[float] | None:
  try:
    return [round(v, 2) for v in os.getloadavg()]
  except OSError:
    return None


def measure_steps(settings: Settings, split, image_shape, log=print) -> dict:
  """The step, matmul and pipeline measurements (one process, interleaved rounds)."""
  import tensorflow as tf  # noqa: PLC0415

  defaults = config_lib.Config()
  default_variant = (bool(defaults.jit_compile), int(defaults.steps_per_execution))
  combos = {(False, 1), (True, 1), (False, settings.steps_per_execution), default_variant}
  if settings.xla_with_spe:
    combos.add((True, settings.steps_per_execution))
  combos = sorted(combos)
  b = settings.batch_size
  steps = settings.steps
  models = {}
  bursts = []
  for jit, spe in combos:
    config = settings.base_config(jit_compile=jit, steps_per_execution=spe)
    lgm, plain = _students(config, image_shape, settings.num_categories)
    models[(jit, spe)] = (lgm, plain)
    n_real = lgm.real_batch_size(b)
    name = _variant_name(jit, spe)
    log(f"compiling the steps of {name}")
    bursts.append(_train_burst(f"lgm/{name}", lgm, _real_rows(split, n_real, settings), steps))
    bursts.append(_train_burst(f"plain/{name}", plain, _real_rows(split, b, settings), steps))
  if settings.student_k1:
    # The student at k = 1 (the second interval): to scale the interval benchmark.
    config = settings.base_config(
      jit_compile=default_variant[0], steps_per_execution=default_variant[1]
    )
    lgm_k1, _ = _students(config, image_shape, 2)
    bursts.append(
      _train_burst(
        "lgm_k1/default", lgm_k1, _real_rows(split, lgm_k1.real_batch_size(b), settings), steps
      )
    )

  if settings.compare_keras_adam:
    config = settings.base_config(
      jit_compile=default_variant[0], steps_per_execution=default_variant[1]
    )
    lgm_ref, plain_ref = _students(config, image_shape, settings.num_categories)
    with _keras_adam():
      bursts.append(
        _train_burst(
          "lgm_keras_adam/default",
          lgm_ref,
          _real_rows(split, lgm_ref.real_batch_size(b), settings),
          steps,
        )
      )
      bursts.append(
        _train_burst("plain_keras_adam/default", plain_ref, _real_rows(split, b, settings), steps)
      )

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
  matmul = _matmul_burst(plan, steps, settings.seed)
  bursts.append(matmul)
  pipe_batches = max(steps, 20)
  pipe = _pipeline_burst("pipeline/plain", split, b, pipe_batches, settings.seed)
  pipe_lgm = _pipeline_burst(
    "pipeline/lgm", split, lgm.real_batch_size(b), pipe_batches, settings.seed
  )
  bursts += [pipe, pipe_lgm]

  log(f"timing {len(bursts)} bursts x {settings.rounds} rounds")
  load_before = _load_average()
  _round_robin(bursts, settings.rounds)
  load_after = _load_average()
  log("timed")
  by_name = {burst.name: burst for burst in bursts}
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
      "rounds": {
        burst.name: {clock: [round(r, 2) for r in burst.rates(clock)] for clock in ("wall", "cpu")}
        for burst in bursts
      },
      "load_average": {"before": load_before, "after": load_after},
      "threads": {
        "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
      },
    }
  )
  return result


def _step_results(
  by_name: dict, clock: str, combos, default_variant, settings: Settings, flops: dict
) -> dict:
  """Rates (medians over rounds) and ratios (medians of per-round ratios) on one clock."""
  b = settings.batch_size

  def per_sec(name):
    return _median(by_name[name].rates(clock))

  def ratio(num, den):
    """Median over rounds of rate(num) / rate(den)."""
    return _median([a / c for a, c in zip(by_name[num].rates(clock), by_name[den].rates(clock))])

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


def _real_rows(split, rows: int, settings: Settings):
  """The training pipeline of train_interval, batches of `rows` real images."""
  from tf_lifelong.data import streams  # noqa: PLC0415

  return streams.as_dataset(
    split, rows, shuffle=True, seed=settings.seed, repeat=True, drop_remainder=True
  ).map(lambda x, y: x)


# -------------------------------------------------------------- interval
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


def peak_rss_mb() -> float:
  """This process's peak resident set size in MB.

  VmHWM of /proc/self/status where there is one (Linux): the high-water mark
  of this process image's own memory. `getrusage(RUSAGE_SELF).ru_maxrss`
  is not: Linux carries it over fork and exec, so a child started by a big
  parent reports at least the parent's size at the fork; it is the fallback
  elsewhere.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _TrainingTimer:
  """While active, times each `training.train_interval` call of a run and its validations.

  lifelong.run calls training.train_interval(student, interval, config,
  validation, ...); the wrapper times the call and the `validation` callable
  it passes. What remains of an interval's wall time is the hand-over, the
  evaluation on the test sets and the records (metrics, images, checkpoint).
  """

  def __enter__(self):
    from tf_lifelong import training  # noqa: PLC0415

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
  from tf_lifelong import lifelong  # noqa: PLC0415

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


def interval_child() -> None:
  """Entry of the interval subprocess: a Config JSON on stdin, a result JSON on stdout's last line."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  start = time.perf_counter()
  config = config_lib.Config.from_json(sys.stdin.read())
  import tensorflow  # noqa: F401, PLC0415 - timed separately from the run.

  import_seconds = time.perf_counter() - start
  result = run_interval(config)
  result["import_seconds"] = import_seconds
  print(json.dumps(result))


def _interval_in_subprocess(config: config_lib.Config) -> dict:
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
  done = subprocess.run(
    [sys.executable, "-c", "from tf_lifelong import benchmark; benchmark.interval_child()"],
    input=config.to_json(),
    capture_output=True,
    text=True,
    env=env,
    check=False,
  )
  if done.returncode != 0:
    raise RuntimeError(
      f"the interval benchmark process failed ({done.returncode}):\n{done.stderr[-3000:]}"
    )
  return json.loads(done.stdout.strip().splitlines()[-1])


def measure_intervals(settings: Settings, log=print) -> dict:
  out = {}
  for variant in settings.interval_variants:
    config = interval_config(settings, variant)
    log(
      f"interval benchmark: {variant} ({'subprocess' if settings.interval_subprocess else 'in process'})"
    )
    out[variant] = (
      _interval_in_subprocess(config) if settings.interval_subprocess else run_interval(config)
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


# ------------------------------------------------------------------- run
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
    lgm, _ = _students(config, stream.image_shape, settings.num_categories)
    with tempfile.TemporaryDirectory(prefix="tf_lifelong_profile_") as logdir:
      result["profile"] = profile_step(
        lgm,
        _real_rows(first.train, lgm.real_batch_size(settings.batch_size), settings),
        settings.profile_steps,
        logdir,
      )
  result["pytorch_reference_rows_per_sec"] = list(PYTORCH_REFERENCE_ROWS_PER_SEC)
  result["lgm_over_pytorch_reference"] = [
    result["lgm_examples_per_sec"] / r for r in PYTORCH_REFERENCE_ROWS_PER_SEC
  ]
  result["interval"] = measure_intervals(settings, log) if settings.interval_variants else {}
  result["estimated_run"] = {
    variant: estimate_run(result["interval"], result, variant=variant)
    for variant in result["interval"]
  }
  result["estimated_default_run"] = result["estimated_run"].get("default")
  result["peak_rss_mb_this_process"] = peak_rss_mb()
  result["benchmark_seconds"] = time.perf_counter() - start
  return result


def write(result: dict, path: str) -> None:
  from tf_lifelong import artifacts  # noqa: PLC0415

  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  artifacts.write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")
