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

Checkpoints (docs/reliability.md): one at each hand-over (`interval-XXX-start`),
one at each evaluation boundary where the global step passes a multiple of
`config.checkpoint_every` (`interval-XXX-step-NNNNNN`, with early stopping's
state), one after each interval (`interval-XXX`). A workdir holding a checkpoint
of the same configuration is resumed from the latest one (resume.py); a
finished one is left alone. Each interval's random state is a function of
(seed, interval) (`_reseed`), so that a resumed run redoes what was lost as the
uninterrupted run did it. No checkpoint with non-finite weights is written.

Hooks (objects with optional `before_interval(context)` / `after_interval(context,
row)` methods) let experiments add metrics without touching the loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import sys
import tempfile
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
  resume,
  runtime,
  summaries,
  training,
)
from tf_lifelong import config as config_lib
from tf_lifelong.data import streams
from tf_lifelong.model import evaluation as model_eval
from tf_lifelong.model import handover
from tf_lifelong.model import student as student_lib

SUMMARY_COLUMNS = (
  "interval",
  "distribution",
  "is_new",
  "num_categories",
  "steps",
  "wall_seconds",
  "test_neg_elbo_seen",
  "test_neg_elbo_full",
  "consistency",
)
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
  """Training steps of the intervals before the current one (after it, once it ended)."""
  result: training.IntervalResult | None = None
  chief: bool = True
  last_checkpoint: str | None = None
  """The newest checkpoint written or restored (named in error messages)."""


@dataclasses.dataclass
class _Resumed:
  """An interval interrupted after its hand-over: its teacher's seen ids, training state."""

  teacher_seen: list[int]
  train_state: training.TrainState | None


def run(
  config: config_lib.Config,
  workdir: str,
  *,
  overwrite: bool = False,
  verbose: bool = False,
  hooks: Sequence[Any] = (),
  out=None,
) -> list[dict]:
  """Runs the lifelong stream of `config`, writing into `workdir`.

  A workdir holding a checkpoint of the same configuration is resumed from its
  latest checkpoint; a finished one is left as it is (its rows are returned).
  `overwrite` starts afresh, removing what another run left there.

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
  try:
    start = resume.prepare(config, workdir, overwrite, chief)
  except resume.WorkdirError as e:
    raise RunError(str(e)) from None
  if start.finished:
    if chief:
      print(resume.finished_message(workdir, start), file=out or sys.stdout, flush=True)
    return start.rows
  stream = streams.build_stream(config)
  if config.baseline == "batch_vae":
    # One interval with everything, at the budget of the whole stream.
    config = dataclasses.replace(
      config, max_steps_per_interval=config.max_steps_per_interval * len(stream)
    )
    stream = streams.joint(stream)
  ctx = Context(
    config,
    workdir,
    stream,
    rows=list(start.rows),
    chief=chief,
    matrix=metrics.ElboMatrix(sorted(stream.distributions)),
  )
  logdir = os.path.join(workdir, "tensorboard")
  if start.state is not None and chief:
    # What the interrupted process logged after its checkpoint is logged again below.
    keep = summaries.keep_until(int(start.state["global_step"]), len(start.rows))
    summaries.drop_events(logdir, keep)
  writer = summaries.SummaryWriter(logdir, enabled=chief)
  shown = progress.Progress(len(stream), config.max_steps_per_interval, stream=out, enabled=chief)
  evaluator = evaluate.Evaluator(stream, limit=config.eval_examples, seed=config.seed)
  shown.message(
    f"tf_lifelong {__version__}: {config.dataset}, {len(stream)} intervals, "
    f"{config.resolved_arch} model, strategy {config.strategy} "
    f"({strategy.num_replicas_in_sync} replica(s)); workdir {workdir}"
  )
  resumed = _restore(ctx, start, strategy, shown) if start.state is not None else None
  try:
    for interval in stream.intervals[start.next_interval :]:
      ctx.interval = interval
      _run_interval(ctx, strategy, evaluator, writer, shown, hooks, resumed)
      resumed = None
    ctx.interval = stream.intervals[-1]
    _export(ctx)  # Every worker: saving may take part in collectives (multi-worker).
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
    if config.strategy != "multi_worker":
      raise
    lines = [line.strip() for line in str(e.message).splitlines() if line.strip()] or [""]
    first = next((line for line in lines if "aborted" in line or "unhealthy" in line), lines[-1])[
      :300
    ]
    raise RunError(
      f"multi-worker run: another worker is gone or did not answer within "
      f"{runtime.collective_timeout():.0f} s ({runtime.COLLECTIVE_TIMEOUT_ENV}) in interval "
      f"{ctx.interval.index if ctx.interval else 0}: {first}. Restart every worker; with the "
      f"workdir on storage all workers share, the run resumes from its latest checkpoint"
    ) from None
  if chief:
    checkpoints.mark_finished(workdir, export=os.path.join(workdir, "export"))
    shown.message("\n" + progress.table(ctx.rows, SUMMARY_COLUMNS))
    shown.message(f"done: {workdir}")
  else:
    print(
      f"worker done (not the chief; nothing written): {len(ctx.rows)} intervals, "
      f"{ctx.global_step} steps",
      file=out or sys.stdout,
      flush=True,
    )
  writer.close()
  return ctx.rows


def _restore(
  ctx: Context, start: resume.Start, strategy, shown: progress.Progress
) -> _Resumed | None:
  """Restores the run from `start.state`; the interrupted interval's state, if any."""
  state = start.state
  for row in ctx.rows:
    ctx.matrix.add(
      row["distribution"],
      {int(k): math.nan if v is None else v for k, v in row["neg_elbo_per_distribution"].items()},
    )
  step = int(state.get("step", 0))
  try:
    with strategy.scope():
      ctx.student = checkpoints.restore(ctx.workdir, state, ctx.config)
    best = checkpoints.read_best_weights(ctx.workdir, state)
  except checkpoints.CheckpointError as e:
    raise RunError(f"cannot resume {ctx.workdir}: {e}; pass --overwrite to start afresh") from None
  ctx.seen = [int(i) for i in state["seen"]]
  ctx.global_step = int(state["global_step"]) - step
  ctx.last_checkpoint = state["checkpoint"]
  shown.message(
    f"resuming from checkpoint {state['checkpoint']} (interval "
    f"{state['interval']}, step {step}, global step {state['global_step']})"
  )
  if start.phase == "end":
    return None
  train_state = None
  if start.phase == "train":
    stopping = state["early_stopping"]
    result = training.IntervalResult(
      steps=step,
      best_step=int(stopping["best_step"]),
      best_validation=math.inf
      if stopping["best_validation"] is None
      else float(stopping["best_validation"]),
      grad_norms=[float(g) for g in stopping["grad_norms"]],
    )
    train_state = training.TrainState(
      result, int(stopping["bad_evals"]), best, int(stopping.get("lr_decays", 0))
    )
  return _Resumed([int(i) for i in state["teacher_seen"]], train_state)


def _reseed(config: config_lib.Config, index: int) -> None:
  """Seeds every generator from (seed, interval): the interval's randomness (e.g.
  the fresh weights of a hand-over) does not depend on what ran before in this
  process, so a resumed run redoes it as the uninterrupted run did."""
  runtime.seed_everything(int(np.random.SeedSequence([config.seed, index]).generate_state(1)[0]))


def _run_interval(
  ctx: Context,
  strategy,
  evaluator: evaluate.Evaluator,
  writer: summaries.SummaryWriter,
  shown: progress.Progress,
  hooks: Sequence[Any],
  resumed: _Resumed | None,
) -> None:
  interval, config = ctx.interval, ctx.config
  start = time.monotonic()
  _reseed(config, interval.index)
  if resumed is None:
    teacher_seen = list(ctx.seen)
    with strategy.scope():
      ctx.student = _next_student(ctx.student, interval, ctx.stream, config)
    if interval.is_new:
      ctx.seen.extend(interval.distribution.member_ids)
    resume.kill_point("handover", interval.index)
    _checkpoint(ctx, "start", teacher_seen)
    train_state = None
  else:
    teacher_seen, train_state = resumed.teacher_seen, resumed.train_state
  handed_over = time.monotonic()
  _call(hooks, "before_interval", ctx)
  dist = interval.distribution
  shown.start_interval(
    interval.index,
    f"{dist.name} (id {dist.id}, {'new' if interval.is_new else 'repeat'}), "
    f"J = {ctx.student.num_categories}"
    + (f", resumed at step {train_state.result.steps}" if train_state else ""),
  )
  validation = _validation_fn(ctx.student, dist, config)

  def on_eval(step: int, logs: dict) -> None:
    step_total = ctx.global_step + step
    writer.scalars({k: v for k, v in logs.items()}, step_total, prefix="train/")
    shown.update(
      step,
      {
        "loss": logs.get("loss"),
        "-elbo": logs.get("neg_elbo"),
        "val -elbo": logs.get("validation_neg_elbo"),
      },
    )

  def on_boundary(state: training.TrainState) -> None:
    step = state.result.steps
    resume.kill_point("train", interval.index, step)
    every, total = config.checkpoint_every, ctx.global_step + step
    if every and total // every > (total - config.eval_every) // every:
      _checkpoint(ctx, "train", teacher_seen, state)

  try:
    result = training.train_interval(
      ctx.student,
      interval,
      config,
      validation,
      on_eval,
      resume=train_state,
      on_boundary=on_boundary,
    )
  except training.NonFiniteLossError as e:
    raise _non_finite(ctx, e.step, e.what) from None
  ctx.global_step += result.steps
  ctx.result = result
  trained = time.monotonic()
  row = _row(ctx, evaluator, teacher_seen, result, time.monotonic() - start)
  end = time.monotonic()
  row["wall_seconds"] = round(end - start, 2)  # the evaluation included
  row["phase_seconds"] = {
    "handover": round(handed_over - start, 2),
    "train": round(trained - handed_over, 2),
    "evaluate": round(end - trained, 2),
  }
  _call(hooks, "after_interval", ctx, row)
  ctx.rows.append(row)
  shown.end_interval(
    f"done in {row['wall_seconds']:.0f} s, {result.steps} steps: test -ELBO seen "
    f"{row['test_neg_elbo_seen']:.2f}, full {row['test_neg_elbo_full']:.2f}, "
    f"consistency {_fmt(row['consistency'])}"
  )
  if ctx.chief:
    _record(ctx, row, writer)
  _checkpoint(ctx, "end")


def _row(
  ctx: Context,
  evaluator: evaluate.Evaluator,
  teacher_seen: Sequence[int],
  result: training.IntervalResult,
  seconds: float,
) -> dict:
  """The interval's metrics row, from the test sets (adds the row of the -ELBO matrix)."""
  interval = ctx.interval
  dist = interval.distribution
  assessment = evaluator.assess(ctx.student, teacher_seen)
  ctx.matrix.add(dist.id, assessment.neg_elbo)
  return {
    "interval": interval.index,
    "distribution": dist.id,
    "is_new": interval.is_new,
    "num_categories": int(ctx.student.num_categories),
    "steps": result.steps,
    "real_examples": result.real_examples,
    "synthetic_examples": result.synthetic_examples,
    "wall_seconds": round(seconds, 2),
    "test_neg_elbo_seen": assessment.pooled(ctx.seen),
    "test_neg_elbo_full": assessment.pooled(evaluator.ids),
    "consistency": assessment.consistency,
    "grad_norm": result.grad_norm,
    "best_validation_neg_elbo": result.best_validation,
    "best_step": result.best_step,
    "stopped_early": result.stopped_early,
    "grad_norms": result.grad_norms,
    "neg_elbo_per_distribution": {str(k): v for k, v in assessment.neg_elbo.items()},
  }


def _non_finite(ctx: Context, step: int, what: str) -> RunError:
  """The one-line error of a non-finite loss or weight, naming where and the last checkpoint."""
  where = (
    f"{ctx.workdir}/checkpoints/{ctx.last_checkpoint}"
    if ctx.last_checkpoint
    else "none was written"
  )
  return RunError(
    f"interval {ctx.interval.index} ({ctx.interval.distribution.name}), step "
    f"{step} (global step {ctx.global_step + step}): {what}; the run stopped. "
    f"The last good checkpoint: {where}"
  )


def _next_student(
  student, interval: streams.Interval, stream: streams.Stream, config: config_lib.Config
):
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
    synthetic = np.asarray(
      student.teacher_samples(config.validation_synthetic_examples, seed=config.seed)
    )

  def validation() -> float:
    value = training.batched_mean(lambda x: model_eval.neg_elbo(student, x), real)
    if synthetic is not None:
      value = (1 - pi) * value + pi * training.batched_mean(
        lambda x: model_eval.neg_elbo(student, x), synthetic
      )
    return value

  return validation


def _record(ctx: Context, row: dict, writer: summaries.SummaryWriter) -> None:
  """metrics files, TensorBoard, sample grid (chief only; the `end` checkpoint follows)."""
  workdir, index = ctx.workdir, ctx.interval.index
  artifacts.write_metrics(workdir, ctx.rows)
  artifacts.write_json(os.path.join(workdir, "neg_elbo_matrix.json"), ctx.matrix.to_dict())
  resume.kill_point("record", index)
  scalars = {
    k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
  }
  writer.scalars(scalars, index, prefix="interval/")
  grid = summaries.image_grid(sample_grid(ctx.student, GRID_COLUMNS, ctx.config.seed))
  summaries.write_png(os.path.join(workdir, "samples", f"interval-{index:03d}.png"), grid)
  writer.image("samples", grid, index, "rows: one-hot z_d; columns: z_c ~ N(0, I)")
  recon = reconstruction_grid(ctx.student, ctx.stream, ctx.seen)
  writer.image(
    "reconstructions",
    summaries.image_grid(recon),
    index,
    "pairs of rows: test images of each seen distribution, reconstructions",
  )


def sample_grid(student, columns: int, seed: int) -> np.ndarray:
  """Samples [J, columns, H, W, C]: row j decodes the one-hot z_d = j."""
  rows = [
    np.asarray(student.sample(columns, component=j, seed=seed + j))
    for j in range(int(student.num_categories))
  ]
  return np.stack(rows)


def reconstruction_grid(
  student, stream: streams.Stream, seen: Sequence[int], columns: int = 8
) -> np.ndarray:
  """[2 * len(seen), columns, H, W, C]: test images and their reconstructions."""
  rows = []
  for i in seen:
    x = stream.distributions[i].test.images[:columns].astype(np.float32) / 255.0
    rows += [x, np.asarray(model_eval.reconstruct(student, tf.convert_to_tensor(x)))]
  return np.stack(rows)


def _checkpoint(
  ctx: Context,
  phase: str,
  teacher_seen: Sequence[int] = (),
  train_state: training.TrainState | None = None,
) -> None:
  """Saves a `start`, `train` or `end` checkpoint; never non-finite weights.

  Every worker of a multi-worker run calls it, since reading distributed
  variables may take part in collectives; only the chief's checkpoint lands in
  the workdir, the others write to a temporary folder that is then removed
  (TensorFlow's multi-worker saving rule).

  Raises:
    RunError: the student's weights or optimizer state are not finite.
  """
  index = ctx.interval.index
  step = train_state.result.steps if train_state is not None else 0
  if not _finite(ctx.student, train_state):
    raise _non_finite(ctx, step, "the weights are not finite")
  name = {
    "start": f"interval-{index:03d}-start",
    "end": f"interval-{index:03d}",
    "train": f"interval-{index:03d}-step-{step:06d}",
  }[phase]
  state = {
    "checkpoint": name,
    "phase": phase,
    "interval": index,
    "step": step,
    "seen": ctx.seen,
    "teacher_seen": list(teacher_seen),
    "global_step": ctx.global_step + step,
    "distribution_names": {str(i): ctx.stream.distributions[i].name for i in ctx.seen},
  }
  best = None
  if train_state is not None:
    result = train_state.result
    state["early_stopping"] = {
      "best_validation": None if math.isinf(result.best_validation) else result.best_validation,
      "best_step": result.best_step,
      "bad_evals": train_state.bad_evals,
      "lr_decays": train_state.lr_decays,
      "grad_norms": result.grad_norms,
    }
    best = train_state.best_weights
  if not ctx.chief:
    with _scratch() as scratch:
      checkpoints.save(scratch, ctx.student, state, best_weights=best)
    return
  checkpoints.save(ctx.workdir, ctx.student, state, best_weights=best)
  ctx.last_checkpoint = name
  checkpoints.remove_superseded(ctx.workdir, keep=name)


@contextlib.contextmanager
def _scratch():
  """A temporary folder for what a non-chief worker must save but not keep."""
  folder = tempfile.mkdtemp(prefix="tf_lifelong_worker_")
  try:
    yield folder
  finally:
    shutil.rmtree(folder, ignore_errors=True)


def _finite(student, train_state: training.TrainState | None) -> bool:
  """Whether every float weight, optimizer variable and best weight is finite."""
  arrays = [*student.get_weights(), *(v.numpy() for v in student.optimizer.variables)]
  if train_state is not None and train_state.best_weights is not None:
    arrays += train_state.best_weights
  return all(np.isfinite(a).all() for a in map(np.asarray, arrays) if a.dtype.kind == "f")


def _export(ctx: Context) -> None:
  from tf_lifelong import export  # noqa: PLC0415

  student = ctx.student
  metadata = {
    "version": __version__,
    "distributions_seen": ctx.seen,
    "distribution_names": {str(i): ctx.stream.distributions[i].name for i in ctx.seen},
    "config": ctx.config.to_dict(),
  }

  def write(workdir: str) -> None:
    export.export(
      student.encoder,
      student.decoder,
      num_categories=int(student.num_categories),
      continuous_dim=ctx.config.continuous_dim,
      image_shape=tuple(ctx.stream.image_shape),
      metadata=metadata,
      path=os.path.join(workdir, "export"),
    )

  if not ctx.chief:  # Takes part in the saving's collectives, keeps nothing.
    with _scratch() as scratch:
      write(scratch)
    return
  with resume.kill_inside_export(ctx.interval.index):
    write(ctx.workdir)


def _call(hooks: Sequence[Any], name: str, *args) -> None:
  for hook in hooks:
    method = getattr(hook, name, None)
    if method is not None:
      method(*args)


def _fmt(value: float) -> str:
  return "-" if value is None or math.isnan(value) else f"{value:.3f}"
