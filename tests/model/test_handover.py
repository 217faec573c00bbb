"""Hand-over: teacher freeze, growth of J, weight transfer, resets (method.md section 5)."""

import numpy as np
import pytest

from tf_lifelong.model import handover

from .conftest import IMAGE_SHAPE, make_config, make_student

B, J_T, F, H = 6, 2, 4, 9


def _values(variables):
  return [v.numpy().copy() for v in variables]


def _is_bn_stat(var):
  return "moving_" in var.path


@pytest.fixture
def old(rng):
  model = make_student(make_config(tau_rate=0.1), J_T, rng, teacher_categories=1)
  model.student_step.assign(50)
  return model


def _glorot_limit(kernel):
  fan_in, fan_out = np.prod(kernel.shape[:-1]), kernel.shape[-1]
  return np.sqrt(6 / (fan_in + fan_out))


def test_new_student_is_plain_vae():
  config = make_config()
  model = handover.new_student(config, IMAGE_SHAPE)
  assert (model.num_categories, model.num_seen, model.teacher) == (1, 0, None)
  assert model.synthetic_batch_size(config.batch_size) == 0
  assert model.optimizer.learning_rate.numpy() == pytest.approx(config.learning_rate)


def test_teacher_is_a_frozen_copy_in_new_variables(old):
  config = make_config()
  new = handover.handover(old, is_new=True, config=config)
  teacher = new.teacher
  assert teacher.teacher is None and teacher.num_categories == J_T
  assert not teacher.trainable and not teacher.trainable_weights
  # The networks' weights, then the counters student_step and anchor_component.
  assert len(teacher.weights) == len(old.encoder.weights) + len(old.decoder.weights) + 2
  for a, b in zip(
    old.encoder.weights + old.decoder.weights, teacher.encoder.weights + teacher.decoder.weights
  ):
    assert a is not b
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # BN statistics included
  trainable = set(map(id, new.trainable_weights))
  assert not trainable & set(map(id, teacher.weights))
  assert trainable == set(map(id, new.student_variables))


def test_growth_copies_same_shape_weights_and_reinitialises_grown_layers(old):
  new = handover.handover(old, is_new=True, config=make_config(grow_init="glorot"))  # the paper
  assert (new.num_categories, new.num_seen) == (J_T + 1, J_T)
  for net_old, net_new in ((old.encoder, new.encoder), (old.decoder, new.decoder)):
    grown = {id(v) for v in net_new.grown_layer.weights}
    for a, b in zip(net_old.weights, net_new.weights):
      if _is_bn_stat(b):
        continue
      if a.shape == b.shape:
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.path)
      else:
        assert id(b) in grown, b.path
  enc_kernel = new.encoder.latent_projection.kernel.numpy()
  dec_kernel = new.decoder.latent_input.kernel.numpy()
  assert enc_kernel.shape == (H, J_T + 1 + 2 * F) and dec_kernel.shape == (J_T + 1 + F, H)
  for kernel, var in (
    (enc_kernel, new.encoder.latent_projection.kernel),
    (dec_kernel, new.decoder.latent_input.kernel),
  ):
    assert np.abs(kernel).max() <= _glorot_limit(var) + 1e-7  # fresh Glorot uniform
    assert kernel.std() > 0.3 * _glorot_limit(var)
  np.testing.assert_array_equal(new.encoder.latent_projection.bias.numpy(), 0.0)
  old_enc = old.encoder.latent_projection.kernel.numpy()
  assert not np.any(np.isclose(enc_kernel[:, :J_T], old_enc[:, :J_T]))


def test_keep_old_copies_old_slices(old):
  new = handover.handover(old, is_new=True, config=make_config(grow_init="keep_old"))
  old_enc = old.encoder.latent_projection
  new_enc = new.encoder.latent_projection
  for name in ("kernel", "bias"):
    a, b = getattr(old_enc, name).numpy(), getattr(new_enc, name).numpy()
    np.testing.assert_array_equal(b[..., :J_T], a[..., :J_T])
    np.testing.assert_array_equal(b[..., J_T + 1 :], a[..., J_T:])  # loc and scale moved up
  assert np.all(new_enc.bias.numpy()[J_T] == 0)
  column = new_enc.kernel.numpy()[:, J_T]
  assert np.abs(column).max() <= _glorot_limit(new_enc.kernel) and column.std() > 0
  a, b = old.decoder.latent_input.kernel.numpy(), new.decoder.latent_input.kernel.numpy()
  np.testing.assert_array_equal(b[:J_T], a[:J_T])
  np.testing.assert_array_equal(b[J_T + 1 :], a[J_T:])
  assert not np.any(np.isin(b[J_T], a))
  np.testing.assert_array_equal(
    new.decoder.latent_input.bias.numpy(), old.decoder.latent_input.bias.numpy()
  )


def test_repeat_keeps_j_and_every_weight(old):
  new = handover.handover(old, is_new=False, config=make_config())
  assert (new.num_categories, new.num_seen) == (J_T, J_T)
  for a, b in zip(
    old.encoder.weights + old.decoder.weights, new.encoder.weights + new.decoder.weights
  ):
    if not _is_bn_stat(b):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_resets_batch_norm_temperature_and_optimizer(old):
  config = make_config(tau_rate=0.1)
  old.optimizer.iterations.assign(50)
  new = handover.handover(old, is_new=True, config=config)
  stats = [v for v in new.encoder.weights + new.decoder.weights if _is_bn_stat(v)]
  assert len(stats) == 8
  for v in stats:
    np.testing.assert_array_equal(v.numpy(), 0.0 if "mean" in v.path else 1.0)
  assert any(np.abs(v.numpy()).max() > 0.1 for v in old.encoder.weights if _is_bn_stat(v))
  assert int(new.student_step.numpy()) == 0
  assert float(new.temperature()) == pytest.approx(config.tau0)
  assert float(old.temperature()) == pytest.approx(config.tau_min)  # step 50
  assert new.optimizer is not old.optimizer and int(new.optimizer.iterations.numpy()) == 0


def test_training_after_handover_leaves_teacher_unchanged(old, rng):
  config = make_config()
  new = handover.handover(old, is_new=True, config=config)
  teacher_before = _values(new.teacher.weights)
  real = new.real_batch_size(B)
  data = rng.uniform(size=(2 * real, *IMAGE_SHAPE)).astype(np.float32)
  new.fit(data, batch_size=real, verbose=0)
  for a, b in zip(teacher_before, new.teacher.weights):
    np.testing.assert_array_equal(a, b.numpy())
  for a, b in zip(old.encoder.weights, new.teacher.encoder.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  again = handover.handover(new, is_new=True, config=config)
  assert again.teacher.teacher is None and again.num_seen == J_T + 1


def test_grow_slice():
  old = np.arange(6.0).reshape(2, 3)
  fresh = -np.ones((2, 4))
  np.testing.assert_array_equal(
    handover.grow_slice(old, fresh, -1, 1), [[0, -1, 1, 2], [3, -1, 4, 5]]
  )
  np.testing.assert_array_equal(
    handover.grow_slice(old.T, fresh.T, 0, 3).T, [[0, 1, 2, -1], [3, 4, 5, -1]]
  )
  with pytest.raises(ValueError):
    handover.grow_slice(fresh, old, -1, 0)


def test_keep_old_on_conv_kernels():
  config = make_config(arch="conv", conv_filters=2, grow_init="keep_old")
  old = handover.new_student(config, (8, 8, 3))
  for var in old.student_variables:
    var.assign(np.random.default_rng(0).normal(size=var.shape).astype(np.float32))
  new = handover.handover(old, is_new=True, config=config)
  a = old.encoder.latent_projection.kernel.numpy()  # [1, 1, 4, 1 + 2F]
  b = new.encoder.latent_projection.kernel.numpy()
  assert b.shape == a.shape[:-1] + (a.shape[-1] + 1,)
  np.testing.assert_array_equal(b[..., :1], a[..., :1])
  np.testing.assert_array_equal(b[..., 2:], a[..., 1:])
  a = old.decoder.latent_input.kernel.numpy()  # [1, 1, 1 + F, 4]
  b = new.decoder.latent_input.kernel.numpy()
  np.testing.assert_array_equal(b[:, :, :1], a[:, :, :1])
  np.testing.assert_array_equal(b[:, :, 2:], a[:, :, 1:])
  x = np.random.default_rng(1).uniform(size=(2, 8, 8, 3)).astype(np.float32)
  assert new(x).shape == (2, 8, 8, 3)
