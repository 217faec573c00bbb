"""The fast student step changes how the step computes, not what (docs/performance.md).

- the teacher's encoder runs on the synthetic rows only (`num_real`): the
  same per-example terms;
- a plain Adam is applied with TensorFlow's fused kernel: one step agrees
  with Keras' own Adam to float32 rounding;
- XLA, and more than one step per execution, fall back, saying so once, under
  MirroredStrategy with 2 replicas on CPU;
- steps_per_execution batches steps and changes no result.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests import paths


def _env():
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env["PYTHONPATH"] = os.pathsep.join(p for p in (paths.REPO, env.get("PYTHONPATH")) if p)
  return env


def _student(seed=3, optimizer=None):
  import keras

  from tf_lifelong import config as config_lib
  from tf_lifelong.model import handover
  from tf_lifelong.model import student as student_lib

  config = config_lib.Config(
    hidden_units=16,
    continuous_dim=3,
    batch_size=10,
    seed=seed,
    learning_rate=1e-3,
    steps_per_execution=1,
  )
  keras.utils.set_random_seed(seed)
  first = student_lib.new_student(config, (4, 5, 1), 2)
  model = handover.handover(first, is_new=True, config=config)
  if optimizer is not None:
    model.compile(optimizer=optimizer)
  return model


def test_teacher_on_synthetic_rows_only_gives_the_same_terms():
  import tensorflow as tf

  model = _student()
  rng = np.random.default_rng(0)
  n_real = model.real_batch_size(10)
  x, omega = model.replay_batch(
    tf.constant(rng.uniform(size=(n_real, 4, 5, 1)), tf.float32), tf.constant([1, 2], tf.int64)
  )
  noise = model.draw_noise(10, tf.constant([3, 4], tf.int64))
  full = model.per_example_terms(x, omega, noise)
  fast = model.per_example_terms(x, omega, noise, num_real=n_real)
  for name in full:
    np.testing.assert_allclose(
      fast[name].numpy(), full[name].numpy(), rtol=1e-5, atol=1e-5, err_msg=name
    )
  assert np.all(fast["consistency"].numpy()[:n_real] == 0)


def test_fused_adam_step_equals_keras_adam_step(monkeypatch):
  import keras
  import tensorflow as tf

  class KerasAdam(keras.optimizers.Adam):
    """A subclass: the step then uses Keras' own Adam."""

  kernel = tf.raw_ops.ResourceApplyAdam
  built = []  # the variable each ResourceApplyAdam op was made for (when fit traces the step)

  def counted(**kwargs):
    built.append(kwargs["var"])
    return kernel(**kwargs)

  monkeypatch.setattr(tf.raw_ops, "ResourceApplyAdam", counted)
  fused = _student()
  reference = _student(optimizer=KerasAdam(1e-3))
  x = np.random.default_rng(1).uniform(size=(fused.real_batch_size(10), 4, 5, 1))
  data = tf.data.Dataset.from_tensors(x.astype(np.float32)).repeat()
  logs, kernels = {}, {}
  for name, model in (("fused", fused), ("keras", reference)):
    before = len(built)
    history = model.fit(data, steps_per_epoch=1, epochs=1, verbose=0).history
    logs[name] = {k: v[0] for k, v in history.items()}
    kernels[name] = len(built) - before
  # One fused kernel per student variable in the traced step; none with Keras' Adam.
  n = len(fused.student_variables)
  assert kernels["fused"] > 0 and kernels["fused"] % n == 0 and kernels["keras"] == 0, kernels
  assert int(fused.optimizer.iterations.numpy()) == int(reference.optimizer.iterations.numpy()) == 1
  for a, b in zip(fused.student_variables, reference.student_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-6, atol=2e-7, err_msg=a.path)
  # m and v: TensorFlow's kernel forms 1 - beta_2 in float32 from the float32 beta_2
  # (0.99998713e-3), Keras rounds it from float64 (1.0e-3): v differs by 1.3e-5 relative.
  for a, b in zip(fused.optimizer.variables, reference.optimizer.variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=1e-12)
  assert logs["fused"] == pytest.approx(logs["keras"], rel=1e-6)


def test_fused_adam_is_used_only_for_a_plain_adam():
  import keras
  import tensorflow as tf

  from tf_lifelong.model import fused_adam

  model = _student()
  model.optimizer.build(model.student_variables)
  grads = [tf.zeros_like(v) for v in model.student_variables]
  assert fused_adam.apply(model.optimizer, grads, model.student_variables)
  clipped = keras.optimizers.Adam(1e-3, clipnorm=1.0)
  clipped.build(model.student_variables)
  assert not fused_adam.apply(clipped, grads, model.student_variables)
  sgd = keras.optimizers.SGD(1e-3)
  sgd.build(model.student_variables)
  assert not fused_adam.apply(sgd, grads, model.student_variables)


def test_keras_adam_still_has_what_the_fused_adam_reads():
  """Fails loudly, naming them, if a Keras release moves the private parts the fused update
  reads (the step then falls back to Keras' own Adam: correct but slower)."""
  import keras
  import tensorflow as tf

  from tf_lifelong.model import fused_adam

  variable = keras.Variable(tf.ones([3]))
  adam = keras.optimizers.Adam(1e-3)
  adam.build([variable])
  missing = [n for n in fused_adam.KERAS_INTERNALS if not hasattr(adam, n)]
  assert not missing, f"keras {keras.__version__} Adam lacks {missing}: update fused_adam.py"
  index = adam._get_variable_index(variable)
  assert adam._momentums[index].shape == adam._velocities[index].shape == variable.shape


def test_fused_adam_falls_back_where_keras_lacks_its_internals(caplog):
  import types

  from tf_lifelong.model import fused_adam

  changed = types.SimpleNamespace(_momentums=[], _velocities=[])  # no _get_variable_index
  assert not fused_adam.keras_internals_present(changed)
  assert "lacks _get_variable_index" in caplog.text


_MIRRORED_XLA = textwrap.dedent("""
    import logging, sys
    import numpy as np, tensorflow as tf
    from tf_lifelong import config as config_lib, runtime
    from tf_lifelong.train import training
    from tf_lifelong.model import student as student_lib
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    config = config_lib.Config(jit_compile=True, strategy="mirrored", num_cpu_devices=2,
                               hidden_units=8, continuous_dim=2, batch_size=4)
    runtime.configure(config)
    strategy = runtime.make_strategy(config)
    x = np.random.default_rng(0).uniform(size=(8, 4, 5, 1)).astype(np.float32)
    with strategy.scope():
      models = [student_lib.new_student(config, (4, 5, 1)) for _ in range(2)]
    for model in models:
      print("xla", training.use_xla_where_it_works(model))
    data = tf.data.Dataset.from_tensor_slices(x).batch(4, drop_remainder=True).repeat()
    models[0].fit(data, steps_per_epoch=2, epochs=1, verbose=0)
    print("fit ok")
""")


def test_xla_and_steps_per_execution_fall_back_once_under_mirrored_strategy_on_cpu():
  done = subprocess.run(
    [sys.executable, "-c", _MIRRORED_XLA],
    capture_output=True,
    text=True,
    timeout=300,
    env=_env(),
    check=False,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.split() == ["xla", "False", "xla", "False", "fit", "ok"]
  assert done.stderr.count("XLA does not work with 2 replicas on CPU") == 1
  # Keras' multi-step loop fails with 2 replicas: the default 10 steps per execution become 1.
  assert (
    done.stderr.count(
      "steps_per_execution: using 1, not 10: more than one step per execution fails with 2 replicas"
    )
    == 1
  )


def _fit_steps(spe, eval_every, epochs):
  import keras
  import tensorflow as tf

  from tf_lifelong import config as config_lib
  from tf_lifelong.model import student as student_lib

  config = config_lib.Config(
    hidden_units=16,
    continuous_dim=3,
    batch_size=6,
    seed=5,
    steps_per_execution=spe,
    eval_every=eval_every,
    max_steps_per_interval=eval_every * epochs,
  )
  keras.utils.set_random_seed(5)
  model = student_lib.new_student(config, (4, 5, 1))
  x = np.random.default_rng(2).uniform(size=(60, 4, 5, 1)).astype(np.float32)
  data = tf.data.Dataset.from_tensor_slices(x).batch(6, drop_remainder=True).repeat()
  model.fit(data, steps_per_epoch=eval_every, epochs=epochs, verbose=0)
  return model


def test_steps_per_execution_is_lowered_to_a_divisor_of_eval_every(caplog):
  from tf_lifelong.model import student as student_lib

  student_lib._said_spe = False
  model = _fit_steps(spe=4, eval_every=6, epochs=2)
  assert model.steps_per_execution == 2
  # Keras would run ceil(6 / 4) * 4 = 8 steps per epoch at 4 steps per execution.
  assert int(model.optimizer.iterations.numpy()) == 12
  assert "using 2, not 4: it does not divide eval_every = 6" in caplog.text


def test_steps_per_execution_changes_no_result():
  one, three = _fit_steps(spe=1, eval_every=6, epochs=1), _fit_steps(spe=3, eval_every=6, epochs=1)
  assert three.steps_per_execution == 3
  for a, b in zip(one.student_variables, three.student_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
