"""Posteriors, priors and the temperature schedule (method.md sections 2-3)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import special

from tf_lifelong.model import latents

from .conftest import make_config

tfd = tfp.distributions


def test_temperature_schedule():
  config = make_config(tau0=1.0, tau_rate=0.01, tau_min=0.5, tau_update_every=10)
  expected = {
    0: 1.0,
    9: 1.0,
    10: np.exp(-0.1),
    25: np.exp(-0.2),
    69: np.exp(-0.6),
    70: 0.5,
    10_000: 0.5,
  }
  for step, tau in expected.items():
    assert float(
      latents.temperature(step, latents.TemperatureSchedule.of(config))
    ) == pytest.approx(tau, rel=1e-6), step
  default = make_config()
  assert float(latents.temperature(1000, latents.TemperatureSchedule.of(default))) == pytest.approx(
    np.exp(-0.03), rel=1e-6
  )
  assert (
    float(
      latents.temperature(tf.constant(10**6, tf.int64), latents.TemperatureSchedule.of(default))
    )
    == 0.5
  )


def test_distributions():
  logits = np.array([[0.0, 1.0, -1.0]], np.float32)
  q = latents.discrete_posterior(logits, 0.7)
  assert isinstance(q, tfd.RelaxedOneHotCategorical)
  assert float(q.temperature) == pytest.approx(0.7)
  loc, scale = np.zeros((1, 4), np.float32), np.full((1, 4), 2.0, np.float32)
  c = latents.continuous_posterior(loc, scale)
  assert isinstance(c, tfd.MultivariateNormalDiag) and c.event_shape == [4]
  np.testing.assert_allclose(c.stddev(), scale)
  np.testing.assert_allclose(latents.discrete_prior(3).probs_parameter(), [1 / 3] * 3)
  np.testing.assert_allclose(latents.continuous_prior(4).stddev(), np.ones(4))
  np.testing.assert_allclose(
    latents.scale_from_raw(np.array([-30.0, 0.0], np.float32)), [1e-6, np.log(2) + 1e-6], rtol=1e-5
  )


def test_relaxed_sample_from_given_noise_matches_tfp():
  logits = np.array([1.0, 0.0, -1.5], np.float32)
  tau = 0.6
  gumbel = latents.gumbel_noise([50_000, 3], tf.constant([1, 2], tf.int64))
  ours = latents.relaxed_one_hot_sample(np.tile(logits, (50_000, 1)), tau, gumbel).numpy()
  theirs = latents.discrete_posterior(logits, tau).sample(50_000, seed=(3, 4)).numpy()
  np.testing.assert_allclose(ours.sum(-1), 1.0, rtol=1e-5)
  np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.01)
  # Argmax of the relaxed sample is a Categorical(softmax(l)) draw (Gumbel-max).
  np.testing.assert_allclose(
    np.bincount(ours.argmax(-1)) / 50_000, special.softmax(logits), atol=0.01
  )


def test_gaussian_sample_is_reparameterised():
  loc = tf.Variable([[1.0, -2.0]])
  scale = tf.Variable([[0.5, 2.0]])
  normal = tf.constant([[1.0, -1.0]])
  with tf.GradientTape() as tape:
    z = latents.gaussian_sample(loc, scale, normal)
  np.testing.assert_allclose(z, [[1.5, -4.0]])
  grads = tape.gradient(z, [loc, scale])
  np.testing.assert_allclose(grads[0], [[1.0, 1.0]])
  np.testing.assert_allclose(grads[1], normal)
