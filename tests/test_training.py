"""Early stopping and the plateau decay of the learning rate (training._IntervalCallback)."""

import keras
import numpy as np
import pytest

from tf_lifelong import config as config_lib
from tf_lifelong import training


def _model(learning_rate: float) -> keras.Model:
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
  return model


def _drive(values, **overrides):
  """Feeds the validation `values` to the callback, one per evaluation, until it stops.

  Returns (learning rate after each evaluation, state, number of evaluations).
  """
  config = config_lib.Config(learning_rate=0.1, eval_every=10, patience=2, **overrides)
  model = _model(config.learning_rate)
  queue = iter(values)
  state = training.TrainState(training.IntervalResult())
  callback = training._IntervalCallback(
    lambda: next(queue), config, state, None, None, last_step=10 * len(values)
  )
  callback.set_model(model)
  rates = []
  for epoch in range(len(values)):
    callback.on_epoch_end(epoch, {"loss": 1.0})
    rates.append(float(model.optimizer.learning_rate.numpy()))
    if model.stop_training:
      return rates, state, epoch + 1
  return rates, state, len(values)


def test_without_decays_it_stops_after_patience_bad_evaluations():
  rates, state, evals = _drive([5, 6, 7, 1, 1])
  assert evals == 3 and state.result.stopped_early
  assert state.result.best_step == 10 and state.lr_decays == 0
  assert rates == pytest.approx([0.1] * 3)


def test_plateaus_lower_the_learning_rate_then_stop():
  values = [5, 6, 7, 4, 5, 6, 7, 8, 0]
  rates, state, evals = _drive(values, lr_plateau_decays=2, lr_plateau_factor=0.5)
  # Plateau at the 3rd evaluation (lr 0.05), new best at the 4th, plateau at the
  # 6th (lr 0.025), and the third plateau (8th) ends the interval.
  assert rates == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025])
  assert evals == 8 and state.result.stopped_early and state.lr_decays == 2
  assert (state.result.best_step, state.result.best_validation) == (40, 4)
  best = state.best_weights
  assert best is not None and all(isinstance(w, np.ndarray) for w in best)


def test_learning_rate_after_decays():
  config = config_lib.Config(learning_rate=2e-3, lr_plateau_factor=0.25)
  assert training.learning_rate(config, 0) == pytest.approx(2e-3)
  assert training.learning_rate(config, 2) == pytest.approx(2e-3 / 16)


@pytest.mark.parametrize("factor", [0.0, 1.0, 1.5])
def test_a_factor_outside_zero_one_is_refused(factor):
  with pytest.raises(config_lib.ConfigError, match="lr_plateau_factor"):
    config_lib.validate(config_lib.Config(lr_plateau_factor=factor))
