"""Training one interval: `model.fit` with replay, early stopping, best weights.

An interval ends (method.md section 6) when the validation -ELBO of the current
training mix has not improved for `patience` evaluations (not before
`min_steps_per_interval` steps), or after exactly `max_steps_per_interval`
steps. The mix is evaluated every `eval_every` steps and at the interval's last
step (`evaluation_steps`): one Keras epoch per evaluation period, the last one
cut short when `eval_every` does not divide `max_steps_per_interval`. The mix
is the interval's own validation split (weight 1 - pi) plus a fixed synthetic
validation set drawn once from the teacher (weight pi); the test set is never
looked at. The best weights of the interval are restored at its end.

Early stopping's state (`TrainState`) is handed to `on_boundary` at each
evaluation that training goes on from, so that the run can checkpoint it; given
back as `resume`, training goes on from there with the batches an uninterrupted
run would have seen.

Multi-worker runs: every worker runs the same steps (the global batch is split)
and evaluates the same weights, so all stop at the same step. The step watchdog
(watchdog.py) aborts the process's collectives when no training step has
started for TF_LIFELONG_COLLECTIVE_TIMEOUT seconds (docs/scaling.md).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from tf_lifelong import config as config_lib
from tf_lifelong.data import streams
from tf_lifelong.train import watchdog as watchdog_lib

EvalFn = Callable[[], float]
"""Returns the current validation -ELBO of the training mix (lower is better)."""


class NonFiniteLossError(RuntimeError):
  """The training loss (or the validation -ELBO, or the weights) became NaN or infinite.

  Attributes:
    step: the step in the interval at which it was seen (an evaluation boundary).
    what: what was not finite, e.g. "the training loss is nan".
  """

  def __init__(self, step: int, what: str):
    super().__init__(f"{what} at step {step}")
    self.step = step
    self.what = what


@dataclasses.dataclass
class IntervalResult:
  """What one interval's training did."""

  steps: int = 0
  real_examples: int = 0
  synthetic_examples: int = 0
  grad_norm: float = math.nan
  best_validation: float = math.inf
  best_step: int = 0
  grad_norms: list[float] = dataclasses.field(default_factory=list)
  """Mean gradient norm of each evaluation period, in order."""
  stopped_early: bool = False


@dataclasses.dataclass
class TrainState:
  """Early stopping's state at an evaluation boundary: what a mid-interval checkpoint keeps.

  `result` holds the steps done so far, the best validation value and step and
  the gradient norms of the evaluations so far; `bad_evals` counts the
  evaluations since the best one (or since the last learning-rate decay);
  `best_weights` are the student's weights (`get_weights()`) at the best
  evaluation.
  """

  result: IntervalResult
  bad_evals: int = 0
  best_weights: list[np.ndarray] | None = None
  lr_decays: int = 0
  """Plateau decays of the learning rate so far (config.lr_plateau_decays)."""


BoundaryFn = Callable[[TrainState], None]
"""Called at an evaluation boundary after which training goes on (to checkpoint)."""


def evaluation_steps(config: config_lib.Config) -> list[int]:
  """The steps of an interval at which the validation mix is evaluated, unless
  early stopping ends it sooner: every `eval_every` steps and at the last one,
  `max_steps_per_interval` (e.g. 10, 20, 25 for eval_every 10 and 25 steps)."""
  every, last = config.eval_every, config.max_steps_per_interval
  return [*range(every, last, every), last]


class _IntervalCallback(keras.callbacks.Callback):
  """Evaluates the validation mix at the end of every epoch (= `eval_every`
  steps; the last epoch ends at `last_step`), keeps the best weights; after
  `patience` evaluations without improvement it lowers the learning rate (up to
  `lr_plateau_decays` times), then stops (not before `min_steps_per_interval`).
  """

  def __init__(
    self,
    validation: EvalFn,
    config: config_lib.Config,
    state: TrainState,
    on_eval: Callable[[int, dict], None] | None,
    on_boundary: BoundaryFn | None,
    last_step: int,
    watchdog: watchdog_lib.StepWatchdog | None = None,
  ):
    super().__init__()
    self.validation = validation
    self.config = config
    self.state = state
    self.result = state.result
    self.on_eval = on_eval
    self.on_boundary = on_boundary
    self.last_step = last_step
    self.watchdog = watchdog
    self._epoch_start = 0

  def _steps_after(self, epoch: int) -> int:
    return min((epoch + 1) * self.config.eval_every, self.last_step)

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch_start = epoch * self.config.eval_every
    if self.config.lr_schedule != "constant":
      set_learning_rate(
        self.model, self.config, self.state.lr_decays, self._epoch_start, self.last_step
      )

  def on_train_batch_begin(self, batch, logs=None):
    # `batch`: the epoch's step at which the next execution (steps_per_execution
    # steps) starts. The one that reaches last_step is the interval's last: it
    # ends the epoch early, when eval_every does not divide last_step.
    if self.watchdog is not None:
      self.watchdog.tick()
    per_execution = getattr(self.model, "steps_per_execution", 1) or 1
    if self._epoch_start + batch + per_execution >= self.last_step:
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    logs = dict(logs or {})
    steps = self._steps_after(epoch)
    self.result.steps = steps
    loss = logs.get("loss", math.nan)
    if not math.isfinite(loss):
      self.model.stop_training = True
      raise NonFiniteLossError(steps, f"the training loss is {loss}")
    if "grad_norm" in logs:
      self.result.grad_norms.append(float(logs["grad_norm"]))
    value = self.validation()
    if not math.isfinite(value):
      self.model.stop_training = True
      raise NonFiniteLossError(steps, f"the validation -ELBO is {value}")
    logs["validation_neg_elbo"] = value
    if value < self.result.best_validation:
      self.result.best_validation, self.result.best_step = value, steps
      self.state.best_weights = self.model.get_weights()
      self.state.bad_evals = 0
    else:
      self.state.bad_evals += 1
    if self.on_eval is not None:
      self.on_eval(steps, logs)
    plateau = self.state.bad_evals >= self.config.patience
    if plateau and self.state.lr_decays < self.config.lr_plateau_decays:
      self.state.lr_decays += 1
      self.state.bad_evals = 0
      set_learning_rate(self.model, self.config, self.state.lr_decays, steps, self.last_step)
      plateau = False
    if steps >= self.last_step:
      self.model.stop_training = True  # The interval's last step (see on_train_batch_begin).
      self.result.stopped_early = plateau and steps >= self.config.min_steps_per_interval
    elif plateau and steps >= self.config.min_steps_per_interval:
      self.result.stopped_early = True
      self.model.stop_training = True
    elif self.on_boundary is not None:
      self.on_boundary(self.state)


def learning_rate(
  config: config_lib.Config, decays: int, step: int = 0, last_step: int | None = None
) -> float:
  """The learning rate after `decays` plateau decays, at `step` of an interval of `last_step`.

  lr * factor ** decays, times (1 + cos(pi step / last_step)) / 2 with
  `lr_schedule=cosine` (last_step: default `max_steps_per_interval`).
  """
  rate = config.learning_rate * config.lr_plateau_factor**decays
  if config.lr_schedule == "cosine":
    last = last_step or config.max_steps_per_interval
    rate *= 0.5 * (1.0 + math.cos(math.pi * min(step, last) / last))
  return rate


def set_learning_rate(
  student: keras.Model,
  config: config_lib.Config,
  decays: int,
  step: int = 0,
  last_step: int | None = None,
) -> None:
  """Sets the student's optimizer to `learning_rate(config, decays, step, last_step)`."""
  student.optimizer.learning_rate = learning_rate(config, decays, step, last_step)


_log = logging.getLogger(__name__)
_said_no_xla = False


def use_xla_where_it_works(student: keras.Model) -> bool:
  """Turns the student's XLA (jit_compile) off where it fails; returns whether it is on.

  XLA fails with more than one replica on CPU devices (MirroredStrategy over
  logical CPUs: "Trying to access resource ... located in device CPU:1 from
  device CPU:0", ../shared/docs/stack-notes.md). There the step runs as a plain
  TensorFlow graph instead, and the log says so once per process.
  """
  global _said_no_xla
  if not student.jit_compile:
    return False
  strategy = student.distribute_strategy
  if strategy.num_replicas_in_sync <= 1:
    return True
  devices = strategy.extended.worker_devices
  if not any(tf.DeviceSpec.from_string(d).device_type == "CPU" for d in devices):
    return True
  student.jit_compile = False
  if student.train_function is not None:
    student.make_train_function(force=True)
  if not _said_no_xla:
    _said_no_xla = True
    _log.warning(
      "jit_compile: XLA does not work with %d replicas on CPU devices; training without XLA",
      strategy.num_replicas_in_sync,
    )
  return False


def train_interval(
  student: keras.Model,
  interval: streams.Interval,
  config: config_lib.Config,
  validation: EvalFn,
  on_eval: Callable[[int, dict], None] | None = None,
  *,
  resume: TrainState | None = None,
  on_boundary: BoundaryFn | None = None,
  callbacks: Sequence[keras.callbacks.Callback] = (),
) -> IntervalResult:
  """Trains `student` on one interval (with the replay its train_step makes).

  The interval runs exactly `max_steps_per_interval` steps, with an evaluation
  at each of `evaluation_steps(config)`, unless early stopping ends it at one of
  them; the same on one device and on several workers. Multi-worker runs start
  the process's step watchdog (`watchdog.step_watchdog`).

  Args:
    student: a compiled LifelongVAE (teacher and k set by the hand-over).
    interval: the interval; its train split feeds the real rows.
    config: batch size, eval_every, patience, max_steps_per_interval,
      min_steps_per_interval, seed; the student's steps_per_execution must
      divide eval_every and max_steps_per_interval (compile_student sees to it).
    validation: returns the validation -ELBO of the current training mix.
    on_eval: called after each evaluation with (step in interval, logs).
    resume: the state of a mid-interval checkpoint (its student restored):
      training goes on from `resume.result.steps`, with the same batches an
      uninterrupted run would see there.
    on_boundary: called with the TrainState after each evaluation that
      training goes on from (not after the last one, nor when stopping).
    callbacks: further Keras callbacks, passed to every `fit` of the interval.

  Returns:
    The interval's IntervalResult; the student holds its best weights.

  Raises:
    NonFiniteLossError: the training loss or the validation -ELBO is not finite.
    ValueError: steps_per_execution does not divide the evaluation periods.
  """
  state = resume or TrainState(IntervalResult())
  every, last = config.eval_every, config.max_steps_per_interval
  _check_steps_per_execution(student, every, last)
  epochs = -(-last // every)  # The last one is shorter when eval_every does not divide last.
  n_real = student.real_batch_size(config.batch_size)
  if state.result.steps // every < epochs and state.result.steps < last:
    callback = _IntervalCallback(validation, config, state, on_eval, on_boundary, last)
    _fit(student, interval, config, n_real, epochs, callback, callbacks)
  if state.best_weights is not None:
    student.set_weights(state.best_weights)
  result = state.result
  result.real_examples = result.steps * n_real
  result.synthetic_examples = result.steps * (config.batch_size - n_real)
  if result.grad_norms:
    result.grad_norm = float(np.mean(result.grad_norms))
  return result


def _check_steps_per_execution(student: keras.Model, every: int, last: int) -> None:
  """Raises ValueError unless the student's steps_per_execution divides both periods."""
  per_execution = getattr(student, "steps_per_execution", 1) or 1
  if math.gcd(every, last) % per_execution:
    raise ValueError(
      f"steps_per_execution {per_execution} must divide eval_every ({every}) and "
      f"max_steps_per_interval ({last}); compile with student.effective_steps_per_execution"
    )


def _fit(
  student: keras.Model,
  interval: streams.Interval,
  config: config_lib.Config,
  n_real: int,
  epochs: int,
  callback: _IntervalCallback,
  callbacks: Sequence[keras.callbacks.Callback],
) -> None:
  """The interval's `fit` from `callback.state` on: one epoch per evaluation period
  (multi-worker runs: `callback` ticks the step watchdog at every step)."""
  state, every = callback.state, config.eval_every
  steps = state.result.steps
  data = _real_batches(interval.distribution.train, n_real, config.seed * 100003 + interval.index)
  if steps:
    data = data.skip(steps)  # The batches the interrupted run had used.
  use_xla_where_it_works(student)
  set_learning_rate(student, config, state.lr_decays, steps, callback.last_step)
  watchdog = callback.watchdog = watchdog_lib.step_watchdog(config)
  student.fit(
    data,
    epochs=epochs,
    initial_epoch=steps // every,
    steps_per_epoch=every,
    verbose=0,
    shuffle=False,
    callbacks=[callback, *callbacks],
  )
  if watchdog is not None:
    watchdog.tick()  # The interval's last step has ended.


def _real_batches(split, n_real: int, seed: int, stateless: bool = False) -> tf.data.Dataset:
  """The real rows of the training batches: `split`'s images, shuffled, repeated
  (`stateless`: in an order of `seed` alone, streams.as_dataset)."""
  return streams.as_dataset(
    split, n_real, shuffle=True, seed=seed, repeat=True, drop_remainder=True, stateless=stateless
  ).map(lambda x, y: x)


def train_steps(
  student: keras.Model, split, steps: int, config: config_lib.Config, seed: int
) -> float:
  """`steps` training steps on `split` (with the replay the student's train_step makes),
  without evaluation or early stopping: a chunk joining an interval (task_free.py). The
  batches' order is a function of `seed` alone and the steps' noise of the student's seed
  generator (checkpointed), so no reseed precedes them.

  Returns:
    The mean training loss of the steps.

  Raises:
    NonFiniteLossError: the training loss is not finite.
  """
  data = _real_batches(split, student.real_batch_size(config.batch_size), seed, stateless=True)
  use_xla_where_it_works(student)
  set_learning_rate(student, config, 0)
  per_execution = getattr(student, "steps_per_execution", 1) or 1
  if config.strategy == "default" and steps % per_execution == 0:
    loss = _steps_on_iterator(student, iter(data), steps // per_execution)
  else:  # Replicas: fit distributes the batches (never our own distribution layer).
    history = student.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)
    loss = float(history.history.get("loss", [math.nan])[-1])
  if not math.isfinite(loss):
    raise NonFiniteLossError(steps, f"the training loss is {loss}")
  return loss


def _steps_on_iterator(student: keras.Model, iterator, calls: int) -> float:
  """`calls` calls of the student's step function (steps_per_execution steps each) on one
  plain iterator: what `fit` does for an epoch on one replica, without a fit's callbacks,
  history and distributed epoch iterator per chunk. The same batches, steps, weights and
  mean training loss since the metrics were reset (tests/test_training.py)."""
  student.make_train_function()
  student.reset_metrics()
  student.stop_training = False
  logs = {}
  for _ in range(calls):
    logs = student.train_function(iterator)
  return float(logs.get("loss", math.nan))


EVAL_BATCH = 1000
"""Rows per batch of the validation -ELBO (model/batching.py's passes)."""
