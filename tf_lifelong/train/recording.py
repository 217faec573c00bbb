"""What an interval leaves behind: the progress lines, the metrics row and files, TensorBoard
scalars and images, the sample grid. A part of `Learner` (train/learner.py)."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from tf_lifelong.data import transforms
from tf_lifelong.evaluation import classifier_cache, sampling_scores
from tf_lifelong.model import inference
from tf_lifelong.monitor import summaries
from tf_lifelong.state import artifacts
from tf_lifelong.train import milestones
from tf_lifelong.train.context import GRID_COLUMNS


class Recording:
  """The learner's record of an interval: progress lines, its metrics row, files, TensorBoard, grids."""

  _sampling_classifier = None
  """(stream, its classifier_cache classifier), made at the first interval that needs it."""

  def _announce(self, interval, ident, label, train_state) -> None:
    kind = "new" if interval.is_new else "repeat"
    shown = f"id {ident}, {kind}" if ident is not None else kind
    self._progress.start_interval(
      interval.index,
      f"{label} ({shown}), J = {self.ctx.student.num_categories}"
      + (f", resumed at step {train_state.result.steps}" if train_state else ""),
    )

  def _on_eval(self, step: int, logs: dict) -> None:
    self._writer.scalars(dict(logs), self.ctx.global_step + step, prefix="train/")
    self._progress.update(
      step,
      {
        "loss": logs.get("loss"),
        "-elbo": logs.get("neg_elbo"),
        "val -elbo": logs.get("validation_neg_elbo"),
      },
    )

  def _announce_done(self, row: dict, result) -> None:
    self._progress.end_interval(
      f"done in {row['wall_seconds']:.0f} s, {result.steps} steps: "
      f"{self.config.eval_split} -ELBO seen "
      f"{_fmt(row['test_neg_elbo_seen'], 2)}, full {_fmt(row['test_neg_elbo_full'], 2)}, "
      f"consistency {_fmt(row['consistency'])}"
    )

  def _row(self, interval, ident, label, teacher, result) -> dict:
    """The interval's metrics row, with the test sets the learner has (`teacher`: the
    distribution ids that the evaluation counts as the teacher's)."""
    ctx = self.ctx
    seen = ctx.seen if ctx.seen_truth is None else ctx.seen_truth
    assessment = self._evaluator.assess(ctx.student, teacher)
    ids = self._evaluator.ids
    return {
      "interval": interval.index,
      "distribution": ident,
      "name": label,
      "is_new": interval.is_new,
      "num_categories": int(ctx.student.num_categories),
      "steps": result.steps,
      "real_examples": result.real_examples,
      "synthetic_examples": result.synthetic_examples,
      "test_neg_elbo_seen": assessment.pooled([i for i in seen if i in ids]),
      "test_neg_elbo_full": assessment.pooled(ids),
      "consistency": assessment.consistency,
      "grad_norm": result.grad_norm,
      "best_validation_neg_elbo": result.best_validation,
      "best_step": result.best_step,
      "stopped_early": result.stopped_early,
      "grad_norms": result.grad_norms,
      "neg_elbo_per_distribution": {str(k): v for k, v in assessment.neg_elbo.items()},
    }

  def _record(self, row: dict) -> None:
    """metrics files, TensorBoard, sample grid (chief only; the `end` checkpoint follows)."""
    ctx, workdir = self.ctx, self.workdir
    index = ctx.interval.index
    artifacts.write_metrics(
      workdir, ctx.rows, (*artifacts.METRIC_COLUMNS, *sampling_scores.COLUMNS)
    )
    artifacts.write_json(os.path.join(workdir, "neg_elbo_matrix.json"), ctx.matrix.to_dict())
    milestones.reached("record", index)
    scalars = {
      k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    self._writer.scalars(scalars, index, prefix="interval/")
    grid = summaries.image_grid(sample_grid(ctx.student, GRID_COLUMNS, self.config.seed))
    summaries.write_png(
      os.path.join(workdir, "samples", f"interval-{index:03d}.png"),
      grid,
      row_labels=self._component_labels(row),
    )
    self._writer.image("samples", grid, index, "rows: one-hot z_d; columns: z_c ~ N(0, I)")
    tests = [self._evaluator.images[i][:8] for i in ctx.seen if i in self._evaluator.images]
    if tests:
      self._writer.image(
        "reconstructions",
        summaries.image_grid(reconstruction_grid(ctx.student, tests)),
        index,
        "pairs of rows: test images of each seen distribution, reconstructions",
      )

  # ------------------------------------------------------------ sampling scores
  def _sampling_columns(self, interval, ident, row: dict) -> dict:
    """The row's sampling scores (evaluation/sampling_scores.py; `row` holds the
    interval's other columns, a task-free interval's truth included); {} when off."""
    ctx, config = self.ctx, self.config
    if not config.sampling_samples:
      return {}
    validation = getattr(interval.distribution, "validation", None)
    real = None
    if validation is not None and len(validation):
      real = transforms.unit_float(validation.images[: config.eval_examples])
    start = time.monotonic()
    columns = sampling_scores.measure(
      ctx.student,
      config.sampling_samples,
      truths=self._component_truths(row),
      classifier=self._stream_classifier(),
      real=real,
      component=_interval_component(ctx.student),
      seed=config.seed,
    )
    columns["sampling_seconds"] = round(time.monotonic() - start, 3)  # the classifier's included
    return columns

  def _stream_classifier(self):
    """The stream's classifier (classifier_cache.py); None for a learner fed from Python."""
    stream = self.ctx.stream
    if stream is None:
      return None
    if self._sampling_classifier is None or self._sampling_classifier[0] is not stream:
      classifier = classifier_cache.stream_classifier(stream, self.workdir, write=self.ctx.chief)
      self._sampling_classifier = (stream, classifier)
      logging.info(
        "sampling classifier (%s): %d classes, test accuracy %.4f, trained in %s s",
        classifier.meta.get("source"),
        len(classifier.class_ids),
        classifier.test_accuracy,
        classifier.meta.get("train_seconds"),
      )
    return self._sampling_classifier[1]

  def _component_truths(self, row: dict) -> list:
    """The true distribution id of each component j (None: unknown). A task-free run's
    component j is the truth of its j-th new interval; otherwise it is `ctx.seen[j]`."""
    ctx = self.ctx
    j = int(ctx.student.num_categories)
    rows = list(ctx.rows) if any(r is row for r in ctx.rows) else [*ctx.rows, row]
    if _task_free(rows):
      truths = [r.get("truth") for r in rows if r.get("is_new")]
    else:
      truths = list(ctx.seen)
    return (truths + [None] * j)[:j]

  def _component_labels(self, row: dict) -> list[str]:
    """Row j of the sample grid: the id and name of component j's distribution (a
    task-free run's: of its truth, where known; else the learner's own name)."""
    ctx, stream = self.ctx, self.ctx.stream
    free = _task_free(ctx.rows) or _task_free([row])
    labels = []
    for j, truth in enumerate(self._component_truths(row)):
      if truth is None:
        ident = ctx.seen[j] if j < len(ctx.seen) else j
        labels.append(ctx.names.get(ident, f"component {j}"))
        continue
      name = ctx.names.get(truth, "") if not free else ""
      if free and stream is not None and truth in stream.distributions:
        name = stream.distributions[truth].name
      labels.append(name if str(truth) in name.split() else f"{truth} {name}".strip())
    return labels


def sample_grid(student, columns: int, seed: int) -> np.ndarray:
  """Samples [J, columns, H, W, C]: row j decodes the one-hot z_d = j."""
  rows = [
    np.asarray(student.sample(columns, component=j, seed=seed + j))
    for j in range(int(student.num_categories))
  ]
  return np.stack(rows)


def reconstruction_grid(student, images: Sequence[np.ndarray]) -> np.ndarray:
  """[2 * len(images), columns, H, W, C]: each batch of float images, its reconstructions."""
  columns = min(len(x) for x in images)
  rows = []
  for x in images:
    x = x[:columns]
    rows += [x, np.asarray(inference.reconstruct(student, tf.convert_to_tensor(x)))]
  return np.stack(rows)


def _task_free(rows: Sequence[dict]) -> bool:
  """Whether the rows are a task-free run's (their intervals have chunks)."""
  return any("first_chunk" in r for r in rows)


def _fmt(value: float | None, digits: int = 3) -> str:
  return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _interval_component(student) -> int | None:
  """The interval's component as the hand-over set it (`LifelongVAE.anchor_component`,
  intervals._component); None where it has none (the batch VAE's pooled interval)."""
  component = int(student.anchor_component.numpy())
  return component if component >= 0 else None
