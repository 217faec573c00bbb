"""The lifelong run: `for interval in stream`: hand-over, train, evaluate, record.

    run(config, workdir)

1. The first interval trains a plain VAE (J = 1, no teacher); each later one
   starts with the hand-over (method.md section 5): the student becomes the
   frozen teacher, J grows by one for a new distribution, a new student starts
   from the teacher's weights.
2. Training with replay until early stopping (training.py), best weights restored.
3. Evaluation on the test sets (evaluate.py), one row of metrics.csv, TensorBoard
   scalars and images, a sample grid PNG, a checkpoint.
After the last interval the student is exported as a SavedModel.

Hooks (objects with optional `before_interval(context)` / `after_interval(context,
row)` methods) let experiments add metrics without touching the loop.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tf_lifelong import (
  __version__,
  artifacts,
  checkpoints,
  evaluate,
  metrics,
  progress,
  runtime,
  summaries,
  training,
)
from tf_lifelong import config as config_lib
from tf_lifelong.data import streams
from tf_lifelong.model import evaluation as model_eval
from tf_lifelong.model import handover
from tf_lifelong.model import student as student_lib

SUMMARY_COLUMNS = ("interval", "distribution", "is_new", "num_categories", "steps",
                   "wall_seconds", "test_neg_elbo_seen", "test_neg_elbo_full", "consistency")
GRID_COLUMNS = 10


class RunError(Exception):
  """The run cannot go on; the message says why and what to do."""


@dataclasses.dataclass
class Context:
  """What hooks see: the run so far."""

  config: config_lib.Config
  workdir: str
  stream: streams.Stream
  interval: streams.Interval | None = None
  student: Any = None
  seen: list[int] = dataclasses.field(default_factory=list)
  rows: list[dict] = dataclasses.field(default_factory=list)
  matrix: metrics.ElboMatrix | None = None
  global_step: int = 0
  result: training.IntervalResult | None = None


def run(config: config_lib.Config, workdir: str, *, overwrite: bool = False,
        verbose: bool = False, hooks: Sequence[Any] = (), out=None) -> list[dict]:
  """Runs the lifelong stream of `config`, writing into `workdir`.

  Returns:
    The metrics rows, one per interval (as in workdir/metrics.jsonl).

  Raises:
    RunError, config.ConfigError, data.sources.DataError: with a user message.
  """
  del verbose  # Logging verbosity is the CLI's business.
  try:
    runtime.configure(config)
    strategy = runtime.make_strategy(config)
  except runtime.RuntimeSetupError as e:
    raise RunError(str(e)) from None
  runtime.check_batch_divides(config, strategy)
  chief = runtime.is_chief(strategy)
  stream = streams.build_stream(config)
  if config.baseline == "batch_vae":
    # One interval with everything, at the budget of the whole stream.
    config = dataclasses.replace(
        config, max_steps_per_interval=config.max_steps_per_interval * len(stream))
    stream = streams.joint(stream)
  if chief:
    _prepare_workdir(config, workdir, overwrite)
  ctx = Context(config, workdir, stream,
                matrix=metrics.ElboMatrix(sorted(stream.distributions)))
  writer = summaries.SummaryWriter(os.path.join(workdir, "tensorboard"), enabled=chief)
  shown = progress.Progress(len(stream), config.max_steps_per_interval, stream=out,
                            enabled=chief)
  evaluator = evaluate.Evaluator(stream, limit=config.eval_examples, seed=config.seed)
  shown.message(f"tf_lifelong {__version__}: {config.dataset}, {len(stream)} intervals, "
                f"{config.resolved_arch} model, strategy {config.strategy} "
                f"({strategy.num_replicas_in_sync} replica(s)); workdir {workdir}")
  for interval in stream:
    ctx.interval = interval
    _run_interval(ctx, strategy, evaluator, writer, shown, hooks, chief)
  if chief:
    _export(ctx)
    shown.message("\n" + progress.table(ctx.rows, SUMMARY_COLUMNS))
    shown.message(f"done: {workdir}")
  writer.close()
  return ctx.rows


def _prepare_workdir(config: config_lib.Config, workdir: str, overwrite: bool) -> None:
  path = os.path.join(workdir, "config.json")
  try:
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(path) and not overwrite:
      with open(path) as f:
        previous = json.load(f)
      if previous != json.loads(config.to_json()):
        raise RunError(f"{workdir} holds a run with another configuration; choose "
                       "another --workdir or pass --overwrite")
    artifacts.write_text(path, config.to_json() + "\n")
  except OSError as e:
    raise RunError(f"cannot write the workdir {workdir}: {e.strerror}") from None


def _run_interval(ctx: Context, strategy, evaluator: evaluate.Evaluator,
                  writer: summaries.SummaryWriter, shown: progress.Progress,
                  hooks: Sequence[Any], chief: bool) -> None:
  interval, config = ctx.interval, ctx.config
  start = time.monotonic()
  teacher_seen = list(ctx.seen)
  with strategy.scope():
    ctx.student = _next_student(ctx.student, interval, ctx.stream, config)
  if interval.is_new:
    ctx.seen.extend(interval.distribution.member_ids)
  _call(hooks, "before_interval", ctx)
  dist = interval.distribution
  shown.start_interval(interval.index,
                       f"{dist.name} (id {dist.id}, {'new' if interval.is_new else 'repeat'}), "
                       f"J = {ctx.student.num_categories}")
  validation = _validation_fn(ctx.student, dist, config)

  def on_eval(step: int, logs: dict) -> None:
    step_total = ctx.global_step + step
    writer.scalars({k: v for k, v in logs.items()}, step_total, prefix="train/")
    shown.update(step, {"loss": logs.get("loss"), "-elbo": logs.get("neg_elbo"),
                        "val -elbo": logs.get("validation_neg_elbo")})

  try:
    result = training.train_interval(ctx.student, interval, config, validation, on_eval)
  except training.NonFiniteLossError as e:
    raise RunError(f"interval {interval.index}: {e}; the last good checkpoint is in "
                   f"{ctx.workdir}/checkpoints") from None
  ctx.global_step += result.steps
  ctx.result = result
  assessment = evaluator.assess(ctx.student, teacher_seen)
  ctx.matrix.add(dist.id, assessment.neg_elbo)
  row = {
      "interval": interval.index, "distribution": dist.id, "is_new": interval.is_new,
      "num_categories": int(ctx.student.num_categories), "steps": result.steps,
      "real_examples": result.real_examples, "synthetic_examples": result.synthetic_examples,
      "wall_seconds": round(time.monotonic() - start, 2),
      "test_neg_elbo_seen": assessment.pooled(ctx.seen),
      "test_neg_elbo_full": assessment.pooled(evaluator.ids),
      "consistency": assessment.consistency, "grad_norm": result.grad_norm,
      "best_validation_neg_elbo": result.best_validation, "best_step": result.best_step,
      "stopped_early": result.stopped_early, "grad_norms": result.grad_norms,
      "neg_elbo_per_distribution": {str(k): v for k, v in assessment.neg_elbo.items()},
  }
  _call(hooks, "after_interval", ctx, row)
  ctx.rows.append(row)
  shown.end_interval(
      f"done in {row['wall_seconds']:.0f} s, {result.steps} steps: test -ELBO seen "
      f"{row['test_neg_elbo_seen']:.2f}, full {row['test_neg_elbo_full']:.2f}, "
      f"consistency {_fmt(row['consistency'])}")
  if chief:
    _record(ctx, row, writer)


def _next_student(student, interval: streams.Interval, stream: streams.Stream,
                  config: config_lib.Config):
  """The interval's student: a new one, or the hand-over from the last one."""
  if student is None:
    # The batch baseline's one interval pools all distributions: one category each.
    categories = len(interval.distribution.member_ids)
    return student_lib.new_student(config, stream.image_shape, categories)
  student = handover.handover(student, is_new=interval.is_new, config=config)
  if config.baseline == "naive":
    student = student_lib.without_teacher(student, config)
  return student


def _validation_fn(student, dist: streams.Distribution, config: config_lib.Config):
  """The validation -ELBO of the training mix: (1 - pi) real + pi synthetic."""
  real = dist.validation.images.astype(np.float32) / 255.0
  n_syn = student.synthetic_batch_size(config.batch_size)
  pi = n_syn / config.batch_size
  synthetic = None
  if student.teacher is not None and pi > 0:
    synthetic = np.asarray(student.teacher_samples(config.validation_synthetic_examples,
                                                   seed=config.seed))

  def validation() -> float:
    value = training.batched_mean(lambda x: model_eval.neg_elbo(student, x), real)
    if synthetic is not None:
      value = (1 - pi) * value + pi * training.batched_mean(
          lambda x: model_eval.neg_elbo(student, x), synthetic)
    return value

  return validation


def _record(ctx: Context, row: dict, writer: summaries.SummaryWriter) -> None:
  """metrics files, TensorBoard, sample grid, checkpoint."""
  workdir, index = ctx.workdir, ctx.interval.index
  artifacts.write_metrics(workdir, ctx.rows)
  artifacts.write_json(os.path.join(workdir, "neg_elbo_matrix.json"), ctx.matrix.to_dict())
  scalars = {k: v for k, v in row.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool)}
  writer.scalars(scalars, index, prefix="interval/")
  grid = summaries.image_grid(sample_grid(ctx.student, GRID_COLUMNS, ctx.config.seed))
  summaries.write_png(os.path.join(workdir, "samples", f"interval-{index:03d}.png"), grid)
  writer.image("samples", grid, index, "rows: one-hot z_d; columns: z_c ~ N(0, I)")
  recon = reconstruction_grid(ctx.student, ctx.stream, ctx.seen)
  writer.image("reconstructions", summaries.image_grid(recon), index,
               "pairs of rows: test images of each seen distribution, reconstructions")
  _checkpoint(ctx)


def sample_grid(student, columns: int, seed: int) -> np.ndarray:
  """Samples [J, columns, H, W, C]: row j decodes the one-hot z_d = j."""
  rows = [np.asarray(student.sample(columns, component=j, seed=seed + j))
          for j in range(int(student.num_categories))]
  return np.stack(rows)


def reconstruction_grid(student, stream: streams.Stream, seen: Sequence[int],
                        columns: int = 8) -> np.ndarray:
  """[2 * len(seen), columns, H, W, C]: test images and their reconstructions."""
  rows = []
  for i in seen:
    x = stream.distributions[i].test.images[:columns].astype(np.float32) / 255.0
    rows += [x, np.asarray(model_eval.reconstruct(student, tf.convert_to_tensor(x)))]
  return np.stack(rows)


def _checkpoint(ctx: Context) -> None:
  checkpoints.save(ctx.workdir, ctx.student, {
      "interval": ctx.interval.index, "seen": ctx.seen, "global_step": ctx.global_step,
      "distribution_names": {str(i): ctx.stream.distributions[i].name for i in ctx.seen}})


def _export(ctx: Context) -> None:
  from tf_lifelong import export  # noqa: PLC0415

  student = ctx.student
  metadata = {"version": __version__, "distributions_seen": ctx.seen,
              "distribution_names": {str(i): ctx.stream.distributions[i].name
                                     for i in ctx.seen},
              "config": ctx.config.to_dict()}
  export.export(student.encoder, student.decoder,
                num_categories=int(student.num_categories),
                continuous_dim=ctx.config.continuous_dim,
                image_shape=tuple(ctx.stream.image_shape), metadata=metadata,
                path=os.path.join(ctx.workdir, "export"))


def _call(hooks: Sequence[Any], name: str, *args) -> None:
  for hook in hooks:
    method = getattr(hook, name, None)
    if method is not None:
      method(*args)


def _fmt(value: float) -> str:
  return "-" if value is None or math.isnan(value) else f"{value:.3f}"
