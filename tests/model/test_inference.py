"""Evaluation: hard-z_d -ELBO, enumeration, IWAE bound, argmax (method.md sections 3 and 8)."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import special

from tf_lifelong.model import inference

from .conftest import IMAGE_SHAPE, make_config, make_student, numpy_mlp_decoder, numpy_mlp_encoder

B, J, F = 6, 3, 4


@pytest.fixture(scope="module")
def model():
  return make_student(make_config(), J, np.random.default_rng(5))


@pytest.fixture(scope="module")
def x():
  return np.random.default_rng(6).uniform(size=(B, *IMAGE_SHAPE)).astype(np.float32)


def _numpy_rec(model, x, z):
  a = numpy_mlp_decoder(model.decoder, z)
  return (np.logaddexp(0, a) - x.astype(np.float64) * a).reshape(len(x), -1).sum(-1)


def _numpy_kls(logits, loc, scale):
  p = special.softmax(logits, -1)
  return (
    0.5 * (loc**2 + scale**2 - 1 - 2 * np.log(scale)).sum(-1),
    (p * np.log(p * logits.shape[-1])).sum(-1),
  )


def test_hard_neg_elbo_matches_numpy(model, x, rng):
  index = np.array([0, 2, 1, 1, 0, 2])
  z_d = np.eye(J, dtype=np.float32)[index]
  normal = rng.normal(size=(B, F)).astype(np.float32)
  got = inference.hard_neg_elbo_terms(model, x, z_d, normal)
  logits, loc, scale = numpy_mlp_encoder(model.encoder, x)
  rec = _numpy_rec(model, x, np.concatenate([z_d, loc + scale * normal], -1))
  kl_c, kl_d = _numpy_kls(logits, loc, scale)
  np.testing.assert_allclose(got["reconstruction"], rec, rtol=1e-4)
  np.testing.assert_allclose(got["kl_continuous"], kl_c, rtol=1e-4)
  np.testing.assert_allclose(got["kl_discrete"], kl_d, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(got["neg_elbo"], rec + kl_c + kl_d, rtol=1e-4)


def test_enumeration_matches_numpy(model, x, rng):
  normal = rng.normal(size=(B, F)).astype(np.float32)
  got = inference.enumerated_neg_elbo_terms(model, x, normal)
  logits, loc, scale = numpy_mlp_encoder(model.encoder, x)
  p = special.softmax(logits, -1)
  rec = sum(
    p[:, j]
    * _numpy_rec(
      model, x, np.concatenate([np.tile(np.eye(J)[j], (B, 1)), loc + scale * normal], -1)
    )
    for j in range(J)
  )
  kl_c, kl_d = _numpy_kls(logits, loc, scale)
  np.testing.assert_allclose(got["neg_elbo"], rec + kl_c + kl_d, rtol=1e-4)


def test_hard_samples_follow_the_posterior(model, x):
  logits, _, _ = model.encode(x[:1])
  many = tf.tile(logits, [4000, 1])
  from tf_lifelong.model import latents

  z = latents.hard_one_hot_sample(many, tf.constant([1, 2], tf.int64)).numpy()
  assert set(np.unique(z.sum(-1))) == {1.0}
  np.testing.assert_allclose(z.mean(0), special.softmax(logits.numpy()[0]), atol=0.03)


def test_sample_mode_averages_to_enumeration(model, x):
  reps = np.repeat(x, 300, axis=0)
  sampled = inference.neg_elbo(model, reps, "sample", seed=3).numpy().reshape(B, 300)
  exact = inference.neg_elbo(model, reps, "enumerate", seed=4).numpy().reshape(B, 300)
  se = np.sqrt(sampled.var(1) / 300 + exact.var(1) / 300)
  assert np.all(np.abs(sampled.mean(1) - exact.mean(1)) < 5 * se + 1e-3)
  np.testing.assert_array_equal(
    inference.neg_elbo(model, x, seed=8), inference.neg_elbo(model, x, seed=8)
  )


def test_iwae_k1_is_elbo_in_expectation_and_k50_is_higher(model, x):
  n = 1000
  reps = np.repeat(x, n, axis=0)
  iwae_1 = inference.iwae_log_likelihood(model, reps, 1, seed=1).numpy().reshape(B, n)
  elbo = -inference.neg_elbo(model, reps, seed=2).numpy().reshape(B, n)
  se = np.sqrt(iwae_1.var(1) / n + elbo.var(1) / n)
  assert np.all(np.abs(iwae_1.mean(1) - elbo.mean(1)) < 5 * se)
  # Pooled over the batch: 5 standard errors are about 0.2 nats here, well below
  # log J = 1.1 (what a missing log p(z_d) term would shift).
  pooled_se = np.sqrt((se**2).sum()) / B
  assert abs(iwae_1.mean() - elbo.mean()) < 5 * pooled_se < 0.5
  iwae_50 = (
    inference.iwae_log_likelihood(model, np.repeat(x, 20, axis=0), 50, seed=3)
    .numpy()
    .reshape(B, 20)
  )
  assert np.all(iwae_50.mean(1) > iwae_1.mean(1))
  assert np.all(iwae_50.std(1) < iwae_1.std(1))


def test_argmax_and_reconstruct(model, x):
  logits, loc, _ = numpy_mlp_encoder(model.encoder, x)
  np.testing.assert_array_equal(inference.posterior_argmax(model, x), logits.argmax(-1))
  z = np.concatenate([np.eye(J)[logits.argmax(-1)], loc], -1)
  np.testing.assert_allclose(
    inference.reconstruct(model, x), special.expit(numpy_mlp_decoder(model.decoder, z)), atol=1e-5
  )


def test_usable_inside_tf_function(model, x):
  fn = tf.function(
    lambda v: (
      inference.neg_elbo(model, v),
      inference.iwae_log_likelihood(model, v, 4),
      inference.neg_elbo(model, v, "enumerate"),
    )
  )
  for value in fn(tf.constant(x)):
    assert value.shape == (B,) and np.all(np.isfinite(value))
