"""Training one interval: `model.fit` with replay, early stopping, best weights.

An interval ends (method.md section 6) when the validation -ELBO of the current
training mix has not improved for `patience` evaluations, or after
`max_steps_per_interval` steps. The mix is the interval's own validation split
(weight 1 - pi) plus a fixed synthetic validation set drawn once from the
teacher (weight pi); the test set is never looked at. The best weights of the
interval are restored at its end.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf

from tf_lifelong import config as config_lib
from tf_lifelong.data import streams

EvalFn = Callable[[], float]
"""Returns the current validation -ELBO of the training mix (lower is better)."""


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or infinite."""


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


class _IntervalCallback(keras.callbacks.Callback):
  """Evaluates the validation mix every epoch (= `eval_every` steps), keeps the
  best weights, stops after `patience` evaluations without improvement."""

  def __init__(self, validation: EvalFn, config: config_lib.Config, result: IntervalResult,
               on_eval: Callable[[int, dict], None] | None):
    super().__init__()
    self.validation = validation
    self.config = config
    self.result = result
    self.on_eval = on_eval
    self.best_weights = None
    self.bad_evals = 0

  def on_epoch_end(self, epoch, logs=None):
    logs = dict(logs or {})
    steps = (epoch + 1) * self.config.eval_every
    self.result.steps = steps
    loss = logs.get("loss", math.nan)
    if not math.isfinite(loss):
      self.model.stop_training = True
      raise NonFiniteLossError(f"the training loss is {loss} at step {steps}")
    if "grad_norm" in logs:
      self.result.grad_norms.append(float(logs["grad_norm"]))
    value = self.validation()
    logs["validation_neg_elbo"] = value
    if value < self.result.best_validation:
      self.result.best_validation, self.result.best_step = value, steps
      self.best_weights = self.model.get_weights()
      self.bad_evals = 0
    else:
      self.bad_evals += 1
    if self.on_eval is not None:
      self.on_eval(steps, logs)
    if (self.bad_evals >= self.config.patience
        and steps >= self.config.min_steps_per_interval):
      self.result.stopped_early = True
      self.model.stop_training = True


def train_interval(student: keras.Model, interval: streams.Interval,
                   config: config_lib.Config, validation: EvalFn,
                   on_eval: Callable[[int, dict], None] | None = None) -> IntervalResult:
  """Trains `student` on one interval (with the replay its train_step makes).

  Args:
    student: a compiled LifelongVAE (teacher and k set by the hand-over).
    interval: the interval; its train split feeds the real rows.
    config: batch size, eval_every, patience, max_steps_per_interval, seed.
    validation: returns the validation -ELBO of the current training mix.
    on_eval: called after each evaluation with (step in interval, logs).

  Returns:
    The interval's IntervalResult; the student holds its best weights.
  """
  result = IntervalResult()
  n_real = student.real_batch_size(config.batch_size)
  n_syn = config.batch_size - n_real
  data = streams.as_dataset(interval.distribution.train, n_real, shuffle=True,
                            seed=config.seed * 100003 + interval.index, repeat=True,
                            drop_remainder=True).map(lambda x, y: x)
  callback = _IntervalCallback(validation, config, result, on_eval)
  epochs = max(1, config.max_steps_per_interval // config.eval_every)
  student.fit(data, epochs=epochs, steps_per_epoch=config.eval_every, verbose=0, shuffle=False,
              callbacks=[callback])
  if callback.best_weights is not None:
    student.set_weights(callback.best_weights)
  result.real_examples = result.steps * n_real
  result.synthetic_examples = result.steps * n_syn
  if result.grad_norms:
    result.grad_norm = float(np.mean(result.grad_norms))
  return result


def batched_mean(fn: Callable[[tf.Tensor], tf.Tensor], images: np.ndarray,
                 batch_size: int = 1000) -> float:
  """Mean of the per-example values fn(images[batch]) over all images."""
  total, n = 0.0, len(images)
  for start in range(0, n, batch_size):
    total += float(tf.reduce_sum(fn(tf.convert_to_tensor(images[start:start + batch_size]))))
  return total / n if n else math.nan


def now() -> float:
  return time.monotonic()
