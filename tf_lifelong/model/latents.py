"""The latent variables of the model: posteriors, priors, temperature schedule.

Latent z = [z_d, z_c] (method.md section 2; Ramapuram et al., "Lifelong
Generative Modeling", section 3):

- z_d, discrete with J categories. Posterior q(z_d|x) =
  RelaxedOneHotCategorical(tau, logits l(x)) for training (Gumbel-softmax,
  reparameterised); its underlying Categorical(softmax(l)) for every KL and
  for evaluation. Prior p(z_d) = uniform OneHotCategorical over J.
- z_c, continuous with F dimensions. Posterior q(z_c|x) = N(mu(x),
  diag(sigma(x)^2)) with sigma = softplus(raw) + 1e-6 (the one
  parameterisation used for sampling and KL). Prior p(z_c) = N(0, I_F).

The reparameterised samples take explicit noise (`relaxed_one_hot_sample`,
`gaussian_sample`) so that a training step can be replayed with the same noise
(1 vs N replicas); they equal what the TFP distributions draw for that noise.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

SCALE_FLOOR = 1e-6
"""sigma = softplus(raw) + SCALE_FLOOR."""


def scale_from_raw(raw: tf.Tensor) -> tf.Tensor:
  """Positive standard deviation from an unconstrained network output.

  sigma = softplus(raw) + 1e-6, elementwise; shape of `raw`, e.g. [B, F].
  """
  return tf.nn.softplus(raw) + SCALE_FLOOR


def discrete_posterior(logits: tf.Tensor, temperature) -> tfd.RelaxedOneHotCategorical:
  """q(z_d|x): Gumbel-softmax relaxation with logits [B, J] at temperature tau."""
  return tfd.RelaxedOneHotCategorical(temperature=temperature, logits=logits)


def continuous_posterior(loc: tf.Tensor, scale: tf.Tensor) -> tfd.MultivariateNormalDiag:
  """q(z_c|x) = N(loc, diag(scale^2)); loc and scale [B, F]."""
  return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)


def discrete_prior(num_categories: int, dtype=tf.float32) -> tfd.OneHotCategorical:
  """p(z_d): uniform OneHotCategorical over J = `num_categories`."""
  return tfd.OneHotCategorical(logits=tf.zeros([num_categories], dtype), dtype=dtype)


def continuous_prior(dim: int, dtype=tf.float32) -> tfd.MultivariateNormalDiag:
  """p(z_c) = N(0, I_F) with F = `dim`."""
  return tfd.MultivariateNormalDiag(loc=tf.zeros([dim], dtype), scale_diag=tf.ones([dim], dtype))


@dataclasses.dataclass(frozen=True)
class TemperatureSchedule:
  """The Gumbel-softmax temperature's schedule (method.md section 3)."""

  tau0: float = 1.0
  rate: float = 3e-5
  tau_min: float = 0.5
  update_every: int = 10

  @classmethod
  def of(cls, config) -> TemperatureSchedule:
    """The schedule of a run's Config (tau0, tau_rate, tau_min, tau_update_every)."""
    return cls(config.tau0, config.tau_rate, config.tau_min, int(config.tau_update_every))


def temperature(step, schedule: TemperatureSchedule) -> tf.Tensor:
  """Gumbel-softmax temperature of the student at its training step `step`.

  tau_t = max(tau0 * exp(-r * floor(t / n) * n), tau_min), with n =
  `update_every`. The step counter belongs to the student, so the schedule
  restarts at tau0 at each hand-over.

  Args:
    step: scalar training step (int or tensor), counted from 0.
    schedule: tau0, r, tau_min and n.

  Returns:
    Scalar float32 tensor.
  """
  every = float(schedule.update_every)
  t = tf.floor(tf.cast(step, tf.float32) / every) * every
  tau = schedule.tau0 * tf.exp(-schedule.rate * t)
  return tf.maximum(tau, tf.constant(schedule.tau_min, tf.float32))


def gumbel_noise(shape, seed) -> tf.Tensor:
  """Standard Gumbel noise -log(-log(U)), U ~ Uniform(tiny, 1), stateless `seed` [2]."""
  u = tf.random.stateless_uniform(shape, seed, minval=np.finfo(np.float32).tiny, maxval=1.0)
  return -tf.math.log(-tf.math.log(u))


def relaxed_one_hot_sample(logits: tf.Tensor, temperature, gumbel: tf.Tensor) -> tf.Tensor:
  """Reparameterised sample of RelaxedOneHotCategorical(tau, l) for given noise.

  z_d = softmax((l + g) / tau) with g standard Gumbel noise; logits and g
  [B, J]; returns [B, J] on the simplex (the sampler TFP uses).
  """
  return tf.nn.softmax((logits + gumbel) / temperature, axis=-1)


def gaussian_sample(loc: tf.Tensor, scale: tf.Tensor, normal: tf.Tensor) -> tf.Tensor:
  """Reparameterised sample z_c = mu + sigma * eps, eps ~ N(0, I); all [B, F]."""
  return loc + scale * normal


def hard_one_hot_sample(logits: tf.Tensor, seed) -> tf.Tensor:
  """One-hot z_d ~ Cat(softmax(l)), logits [B, J], stateless `seed` [2]; returns [B, J]."""
  index = tf.random.stateless_categorical(logits, 1, seed)[:, 0]
  return tf.one_hot(index, tf.shape(logits)[-1], dtype=logits.dtype)
