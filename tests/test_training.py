"""Training one interval: the evaluation schedule, early stopping, the plateau decay of the
learning rate (training._IntervalCallback) and the multi-worker step watchdog (watchdog.py)."""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_lifelong import config as config_lib
from tf_lifelong.train import training
from tf_lifelong.train import watchdog as watchdog_lib


def _model(learning_rate: float) -> keras.Model:
  model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
  model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
  return model


def _drive(values, **overrides):
  """Feeds the validation `values` to the callback, one per evaluation, until it stops.

  Returns (learning rate after each evaluation, state, number of evaluations).
  """
  config = config_lib.Config(
    learning_rate=0.1, eval_every=10, patience=2, lr_schedule="constant", **overrides
  )
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
  rates, state, evals = _drive([5, 6, 7, 1, 1], lr_plateau_decays=0)
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
  config = config_lib.Config(learning_rate=2e-3, lr_plateau_factor=0.25, lr_schedule="constant")
  assert training.learning_rate(config, 0) == pytest.approx(2e-3)
  assert training.learning_rate(config, 2) == pytest.approx(2e-3 / 16)


def test_cosine_schedule_halves_at_mid_interval_and_ends_at_zero():
  config = config_lib.Config(learning_rate=2e-3, lr_schedule="cosine", max_steps_per_interval=400)
  assert training.learning_rate(config, 0, 0) == pytest.approx(2e-3)
  assert training.learning_rate(config, 0, 200) == pytest.approx(1e-3)
  assert training.learning_rate(config, 0, 100) == pytest.approx(1e-3 * (1 + np.sqrt(0.5)))
  assert training.learning_rate(config, 0, 400) == pytest.approx(0.0, abs=1e-12)
  assert training.learning_rate(config, 1, 200) == pytest.approx(0.5e-3)  # times the decay
  assert training.learning_rate(config, 0, 50, last_step=100) == pytest.approx(1e-3)
  constant = config_lib.Config(
    learning_rate=2e-3, lr_schedule="constant", max_steps_per_interval=400
  )
  assert training.learning_rate(constant, 0, 200) == pytest.approx(2e-3)


def test_cosine_schedule_is_set_at_each_evaluation_period():
  config = config_lib.Config(
    learning_rate=0.1, eval_every=10, patience=1, lr_schedule="cosine", lr_plateau_decays=1
  )
  model = _model(config.learning_rate)
  state = training.TrainState(training.IntervalResult())
  values = iter([5.0, 6.0, 4.0])
  callback = training._IntervalCallback(lambda: next(values), config, state, None, None, 40)
  callback.set_model(model)
  rates = []
  for epoch in range(3):
    callback.on_epoch_begin(epoch)
    rates.append(float(model.optimizer.learning_rate.numpy()))
    callback.on_epoch_end(epoch, {"loss": 1.0})
  # Epochs start at steps 0, 10, 20 of 40; the plateau after the second halves the rest.
  expected = [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05 * 0.5]
  assert rates == pytest.approx(expected)


def test_an_unknown_schedule_is_refused():
  with pytest.raises(config_lib.ConfigError, match="lr_schedule must be one of constant, cosine"):
    config_lib.Config(lr_schedule="step")


@pytest.mark.parametrize("factor", [0.0, 1.0, 1.5])
def test_a_factor_outside_zero_one_is_refused(factor):
  with pytest.raises(config_lib.ConfigError, match="lr_plateau_factor"):
    config_lib.validate(config_lib.Config(lr_plateau_factor=factor))


@pytest.mark.parametrize(
  "every, last, expected",
  [(10, 30, [10, 20, 30]), (10, 25, [10, 20, 25]), (10, 3, [3]), (5, 5, [5]), (4, 10, [4, 8, 10])],
)
def test_evaluation_steps_end_at_the_interval_s_last_step(every, last, expected):
  config = config_lib.Config(eval_every=every, max_steps_per_interval=last)
  assert training.evaluation_steps(config) == expected


_SHAPE = (4, 5, 1)


def _interval():
  from tf_lifelong.data import sources, streams

  images = np.random.default_rng(0).integers(0, 256, size=(40, *_SHAPE), dtype=np.uint8)
  split = sources.Split(images, np.zeros(40, np.int64))
  return streams.Interval(0, streams.Distribution(0, "d", split, split, split), True)


def _train(values=None, resume=None, **overrides):
  """train_interval on a tiny student (batch 6, 4x5 images); the validation
  values are `values` in turn (default: always better).

  Returns (result, steps the optimizer ran, evaluation steps, boundary steps).
  """
  from tf_lifelong.model import student as student_lib

  config = config_lib.Config(
    **{
      "hidden_units": 8,
      "continuous_dim": 2,
      "batch_size": 6,
      "seed": 5,
      "eval_every": 4,
      "max_steps_per_interval": 10,
      "steps_per_execution": 10,
      **overrides,
    }
  )
  keras.utils.set_random_seed(5)
  student = student_lib.new_student(config, _SHAPE)
  queue = iter(values if values is not None else range(100, 0, -1))
  evals, boundaries = [], []
  result = training.train_interval(
    student,
    _interval(),
    config,
    lambda: float(next(queue)),
    lambda step, logs: evals.append(step),
    resume=resume,
    on_boundary=lambda state: boundaries.append(state.result.steps),
  )
  return result, int(student.optimizer.iterations.numpy()), evals, boundaries


def test_an_interval_runs_max_steps_with_a_last_shorter_evaluation_period():
  # eval_every 4 does not divide max_steps 10: evaluations at 4, 8 and 10, and
  # steps_per_execution 10 is lowered to gcd(10, 4, 10) = 2.
  result, ran, evals, boundaries = _train()
  assert (result.steps, ran, evals, boundaries) == (10, 10, [4, 8, 10], [4, 8])
  assert len(result.grad_norms) == 3 and not result.stopped_early
  assert result.real_examples == 10 * 6


def test_an_interval_shorter_than_one_evaluation_period_runs_its_steps():
  result, ran, evals, boundaries = _train(max_steps_per_interval=3)
  assert (result.steps, ran, evals, boundaries) == (3, 3, [3], [])


def test_early_stopping_waits_for_min_steps_and_stops_at_an_evaluation():
  # Worse and worse from the first evaluation: patience 1 would stop at step 4;
  # min_steps 6 lets the plateau end the interval at the next evaluation, step 8.
  result, ran, evals, _ = _train(
    [5, 6, 7, 8], patience=1, min_steps_per_interval=6, lr_plateau_decays=0
  )
  assert (result.steps, ran, evals, result.best_step) == (8, 8, [4, 8], 4)
  assert result.stopped_early


def test_a_resumed_interval_runs_the_remaining_steps():
  state = training.TrainState(training.IntervalResult(steps=4, best_validation=50.0, best_step=4))
  result, ran, evals, boundaries = _train(resume=state)
  assert (result.steps, ran, evals, boundaries) == (10, 6, [8, 10], [8])


def test_the_step_watchdog_aborts_the_collectives_only_when_steps_stop():
  aborted = []
  with watchdog_lib.StepWatchdog(0.3, abort=lambda *a: aborted.append(a)) as watchdog:
    for _ in range(8):  # Steps every 0.1 s: never idle for 0.3 s.
      time.sleep(0.1)
      watchdog.tick()
    assert aborted == [] and not watchdog.fired
    time.sleep(0.7)  # A step that waits for a peer that never comes.
  assert watchdog.fired and len(aborted) == 1
  code, message = aborted[0]
  assert code == tf.errors.DEADLINE_EXCEEDED and "aborted" in message


# ------------------------------------------------------------- train_steps (a chunk's steps)


def _chunk_student(steps_per_execution=5, seed=5):
  """A tiny compiled student (batch 6, 4x5 images) as a detect run makes it, and its Config."""
  from tf_lifelong.model import student as student_lib

  config = config_lib.Config(
    hidden_units=8,
    continuous_dim=2,
    batch_size=6,
    seed=seed,
    boundaries="detect",
    chunk_steps=10,
    eval_every=10,
    max_steps_per_interval=20,
    steps_per_execution=steps_per_execution,
    learning_rate=1e-2,
  )
  keras.utils.set_random_seed(seed)
  return student_lib.new_student(config, _SHAPE), config


def _chunk_split(n, seed=0):
  from tf_lifelong.data import sources

  images = np.random.default_rng(seed).integers(0, 256, size=(n, *_SHAPE), dtype=np.uint8)
  return sources.Split(images, np.zeros(n, np.int64))


@pytest.mark.parametrize("steps_per_execution", [1, 5])
def test_train_steps_runs_exactly_its_steps(steps_per_execution):
  student, config = _chunk_student(steps_per_execution)
  assert student.steps_per_execution == steps_per_execution
  for n, expected in ((20, 10), (35, 20)):  # a growing split, as an open interval's
    loss = training.train_steps(student, _chunk_split(n), 10, config, seed=n)
    assert int(student.optimizer.iterations.numpy()) == expected
    assert np.isfinite(loss)


def test_train_steps_lowers_the_loss_on_a_fixed_split():
  # Three binary templates: learnable far below the first chunk's loss (random pixels are not).
  from tf_lifelong.data import sources

  rng = np.random.default_rng(0)
  templates = (rng.random((3, *_SHAPE)) < 0.5).astype(np.uint8) * 255
  split = sources.Split(templates[rng.integers(0, 3, 24)], np.zeros(24, np.int64))
  student, config = _chunk_student()
  losses = [training.train_steps(student, split, 10, config, seed=3) for _ in range(5)]
  assert losses[-1] < 0.8 * losses[0] and losses[-1] < min(losses[:-1]), losses


def test_train_steps_is_deterministic_for_a_seed():
  splits = [_chunk_split(20, 1), _chunk_split(32, 2)]

  def weights(seed):
    student, config = _chunk_student()
    for i, split in enumerate(splits):
      training.train_steps(student, split, 10, config, seed=seed + i)
    return student.get_weights()

  first, again, other = weights(7), weights(7), weights(8)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, c) for a, c in zip(first, other))  # the seed matters


def test_train_steps_raises_on_a_non_finite_loss():
  student, config = _chunk_student()
  weights = student.get_weights()
  student.set_weights([np.full_like(w, np.nan) if w.dtype.kind == "f" else w for w in weights])
  with pytest.raises(training.NonFiniteLossError, match="the training loss is nan") as e:
    training.train_steps(student, _chunk_split(20), 10, config, seed=1)
  assert e.value.step == 10


def test_train_steps_does_not_retrace_across_chunks():
  # Each chunk brings a new split (another size, other images, another seed): its
  # iterator has the same element_spec, so the train function is traced once.
  student, config = _chunk_student()
  traces = []
  step = student.train_step
  student.train_step = lambda data: (traces.append(1), step(data))[1]
  training.train_steps(student, _chunk_split(20, 0), 10, config, seed=0)
  first = len(traces)
  assert first >= 1
  for n in (27, 40, 55):
    training.train_steps(student, _chunk_split(n, n), 10, config, seed=n)
  assert len(traces) == first
  assert int(student.optimizer.iterations.numpy()) == 40


@pytest.mark.parametrize("steps_per_execution", [1, 5])
def test_a_chunks_steps_are_a_fits_steps_without_the_fit(steps_per_execution):
  # train_steps calls the step function on one iterator (no fit per chunk): the same
  # batches, weights and mean loss as a fit of the same steps, chunk after chunk.
  direct, config = _chunk_student(steps_per_execution)
  fitted, _ = _chunk_student(steps_per_execution)
  for i, n in enumerate((20, 33)):
    split = _chunk_split(n, i)
    loss = training.train_steps(direct, split, 10, config, seed=i)
    data = training._real_batches(
      split, fitted.real_batch_size(config.batch_size), i, stateless=True
    )
    training.set_learning_rate(fitted, config, 0)
    history = fitted.fit(data, epochs=1, steps_per_epoch=10, verbose=0, shuffle=False)
    assert loss == pytest.approx(history.history["loss"][-1], rel=1e-6)
    for a, b in zip(direct.get_weights(), fitted.get_weights()):
      np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
