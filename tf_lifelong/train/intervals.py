"""An interval's life on the learner: its hand-over (or resumed state), its training with
early stopping, its metrics row and end checkpoint. A part of `Learner` (train/learner.py).

Both ways of feeding a learner go through these two steps: `Learner.learn` (an
interval given whole) calls `begin_interval` then `complete_interval` at once;
a task-free stream (task_free.py) begins an interval at its first chunk, trains
on its chunks as they come, and completes it when a later chunk ends it.

Each interval's random state is a function of (seed, interval) (`_reseed`), so
a resumed interval redoes what was lost as the uninterrupted run did it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tf_lifelong import config as config_lib
from tf_lifelong import runtime
from tf_lifelong.data import streams, transforms
from tf_lifelong.model import batching, handover, inference
from tf_lifelong.model import student as student_lib
from tf_lifelong.train import milestones, training
from tf_lifelong.train.context import Begun


class Intervals:
  """The learner's interval steps: `begin_interval`, then `complete_interval`."""

  def begin_interval(self, interval: streams.Interval, ident: int | None, label: str) -> Begun:
    """Begins `interval`: its hand-over and `start` checkpoint, or its resumed state.

    Where the learner was restored inside this interval (`Learner.load` of an
    interrupted run), nothing is handed over: training goes on from its state.

    Args:
      interval: the interval (its index, data and whether it is new).
      ident: its distribution id (None: a repeat whose distribution is unnamed).
      label: its name, kept for a new distribution's id.

    Returns:
      What `complete_interval` trains on from.
    """
    ctx, config = self.ctx, self.config
    ctx.interval = interval
    _reseed(config, interval.index)
    resumed = self._pending if self._pending and self._pending.index == interval.index else None
    self._pending = None
    if resumed is not None:
      return resumed
    teacher_seen = list(ctx.seen)
    with self._strategy.scope():
      ctx.student = self._next_student(interval)
    ctx.student.anchor_component.assign(self._component(interval, ident))
    if interval.is_new:
      for member in interval.distribution.members or (ident,):
        ctx.seen.append(member)
        ctx.names[member] = self._catalogue.get(member, label)
    milestones.reached("handover", interval.index)
    self.checkpoint("start", teacher_seen)
    return Begun(interval.index, teacher_seen, None)

  def complete_interval(
    self,
    interval: streams.Interval,
    ident: int | None,
    label: str,
    begun: Begun,
    start: float,
    *,
    callbacks: Sequence[Any] = (),
    source: Any = None,
    budget: int | None = None,
    extra: dict | None = None,
    on_trained=None,
    eval_teacher: list | None = None,
  ) -> dict:
    """Trains the begun interval with early stopping, records it; returns its metrics row.

    Args:
      interval, ident, label: as given to `begin_interval`.
      begun: what `begin_interval` returned.
      start: `time.monotonic()` when the interval began (its row's wall time).
      callbacks: Keras callbacks passed to every `fit` of the interval.
      source: the data as given (a source string is kept in the row).
      budget: the most training steps (default `config.max_steps_per_interval`).
      extra: further columns of the row.
      on_trained: called after the training, before the evaluation.
      eval_teacher: the ids that the evaluation counts as the teacher's
        (default: `begun.teacher_seen`).

    Raises:
      RunError: a non-finite loss or weight.
    """
    ctx = self.ctx
    handed_over = time.monotonic()
    _call(self._hooks, "before_interval", ctx)
    self._announce(interval, ident, label, begun.train_state)
    result = self._train(interval, begun, callbacks, budget)
    if on_trained is not None:
      on_trained()
    trained = time.monotonic()
    teacher = begun.teacher_seen if eval_teacher is None else eval_teacher
    row = self._row(interval, ident, label, teacher, result)
    row.update(extra or {})
    row.update(self._sampling_columns(interval, ident, row))  # recording.py
    row["invocation"] = self.invocation
    row["source"] = source if isinstance(source, str) and self.invocation is None else None
    _time(row, start, handed_over, trained)
    _call(self._hooks, "after_interval", ctx, row)
    ctx.rows.append(row)
    self._announce_done(row, result)
    if ctx.chief:
      self._record(row)
    self.checkpoint("end")
    return row

  def _train(self, interval, begun: Begun, callbacks, budget) -> training.IntervalResult:
    """training.train_interval on the learner's student (`budget` steps at most)."""
    ctx, config = self.ctx, self.config
    train_config = config
    if budget is not None:
      train_config = dataclasses.replace(config, max_steps_per_interval=budget)
    try:
      result = training.train_interval(
        ctx.student,
        interval,
        train_config,
        self._validation_fn(interval.distribution),
        self._on_eval,
        resume=begun.train_state,
        on_boundary=lambda state: self._on_boundary(state, begun.teacher_seen),
        callbacks=list(callbacks),
      )
    except training.NonFiniteLossError as e:
      raise self.non_finite_error(e.step, e.what) from None
    ctx.global_step += result.steps
    ctx.result = result
    return result

  def _on_boundary(self, state: training.TrainState, teacher_seen) -> None:
    step, config = state.result.steps, self.config
    milestones.reached("train", self.ctx.interval.index, step)
    every, total = config.checkpoint_every, self.ctx.global_step + step
    if every and total // every > (total - min(config.eval_every, step)) // every:
      self.checkpoint("train", teacher_seen, state)

  def _next_student(self, interval: streams.Interval):
    """The interval's student: a new one, or the hand-over from the last one."""
    student, config = self.ctx.student, self.config
    if student is None:
      if not interval.is_new:
        raise ValueError("the first interval must be a new distribution")
      # The batch baseline's one interval pools all distributions: one category each.
      categories = len(interval.distribution.member_ids)
      shape = tuple(interval.distribution.train.images.shape[1:])
      return student_lib.new_student(config, shape, categories)
    student = handover.handover(student, is_new=interval.is_new, config=config)
    if config.baseline == "naive":
      student = student_lib.without_teacher(student, config)
    return student

  def _component(self, interval: streams.Interval, ident: int | None) -> int:
    """The component of z_d the interval's real data belong to (-1: none, the batch VAE's).

    A new distribution's is the category it adds (J - 1). A repeat's is the
    component of its name (the j-th distribution seen), or, unnamed, the
    teacher's vote: argmax_j of the mean q_T(z_d = j | x) over up to 1000 of
    its training images.
    """
    student, ctx = self.ctx.student, self.ctx
    if len(interval.distribution.member_ids) > 1:
      return -1
    if interval.is_new:
      return student.num_categories - 1
    if ident is not None and ident in ctx.seen:
      return ctx.seen.index(ident)
    images = transforms.unit_float(interval.distribution.train.images[:1000])
    votes = batching.batch_map(
      lambda x, _: tf.nn.softmax(student.teacher.encode(x)[0], axis=-1), images, 500
    )
    return int(np.argmax(np.mean(votes, axis=0)))

  def _validation_fn(self, dist: streams.Distribution):
    """The validation -ELBO of the training mix: (1 - pi) real + pi synthetic."""
    student, config = self.ctx.student, self.config
    real = transforms.unit_float(dist.validation.images)
    n_syn = student.synthetic_batch_size(config.batch_size)
    pi = n_syn / config.batch_size
    synthetic = None
    if student.teacher is not None and pi > 0:
      synthetic = np.asarray(
        student.teacher_samples(config.validation_synthetic_examples, seed=config.seed)
      )

    def neg_elbo(x, _):
      return inference.neg_elbo(student, x)

    def validation() -> float:
      value = batching.batch_mean(neg_elbo, real, training.EVAL_BATCH)
      if synthetic is not None:
        value = (1 - pi) * value + pi * batching.batch_mean(
          neg_elbo, synthetic, training.EVAL_BATCH
        )
      return value

    return validation


def _time(row: dict, start: float, handed_over: float, trained: float) -> None:
  """The row's wall time (the evaluation included) and its phases'."""
  end = time.monotonic()
  row["wall_seconds"] = round(end - start, 2)
  row["phase_seconds"] = {
    "handover": round(handed_over - start, 2),
    "train": round(trained - handed_over, 2),
    "evaluate": round(end - trained, 2),
  }
  if "sampling_seconds" in row:  # the sampling scores' share of `evaluate` (recording.py)
    row["phase_seconds"]["sampling"] = round(row.pop("sampling_seconds"), 3)


def _reseed(config: config_lib.Config, index: int) -> None:
  """Seeds every generator from (seed, interval): the interval's randomness (e.g.
  the fresh weights of a hand-over) does not depend on what ran before."""
  runtime.reseed(config.seed, index)


def _call(hooks: Sequence[Any], name: str, *args) -> None:
  for hook in hooks:
    method = getattr(hook, name, None)
    if method is not None:
      method(*args)
