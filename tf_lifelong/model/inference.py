"""Evaluation of a trained model: -ELBO with hard z_d, IWAE bound, posterior argmax.

method.md section 3: every reported -ELBO uses a hard one-hot z_d sampled
from Cat(softmax(l)) (or the exact expectation over the J categories) and one
z_c sample, in nats per example. The importance-weighted bound (Burda et al.)
with the same hard z_d is the tighter estimate of log p(x).

Plain functions of a model with `encoder`, `decoder`, `num_categories` and
`seed_generator` (a `LifelongVAE`); they run eagerly or inside tf.function on
batches, always with training=False (batch-norm moving statistics). `seed`:
None draws from the model's SeedGenerator, an int or a [2] int tensor is a
stateless seed (reproducible).

The math itself is written once, on plain callables (`reconstruction_logits`,
`enumerated_terms`, `prior_latents`): the student, this module and the serving
export (serving/signatures.py, which traces it into the SavedModel's graph) all use
these, so training, evaluation and serving compute the same thing.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tf_lifelong.model import latents, objectives


def reconstruction_logits(encode, decode, num_categories: int, x) -> tf.Tensor:
  """Decoder logits [B, H, W, C] at z = [one_hot(argmax l(x)), mu(x)] (deterministic).

  Args:
    encode: x -> (logits [B, J], loc [B, F], scale [B, F]).
    decode: z [B, J + F] -> decoder logits [B, H, W, C].
    num_categories: J.
    x: images [B, H, W, C].
  """
  logits, loc, _ = encode(x)
  z_d = tf.one_hot(tf.argmax(logits, -1), num_categories, dtype=loc.dtype)
  return decode(tf.concat([z_d, loc], -1))


def enumerated_terms(encoded, decode, num_categories: int, x, normal) -> dict[str, tf.Tensor]:
  """-ELBO terms with E_q(z_d|x) exact, per example [B] (method.md section 3).

  With p = softmax(l(x)) and one z_c = mu + sigma * normal shared by the J terms:
  reconstruction = sum_j p_j * (-log p(x | e_j, z_c)) (Bernoulli, pixels in [0, 1] as
  targets), KL_c = KL(N(mu, sigma^2) || N(0, I)), KL_d = KL(Cat(p) || Uniform(J)),
  neg_elbo = their sum. One decoder pass over J * B rows (category-major).

  Args:
    encoded: (logits [B, J], loc [B, F], scale [B, F]) of q(z|x).
    decode: z [N, J + F] -> decoder logits [N, H, W, C].
    num_categories: J.
    x: images [B, H, W, C] in [0, 1].
    normal: the z_c noise [B, F].
  """
  logits, loc, scale = encoded
  j, b = num_categories, tf.shape(x)[0]
  z_c = latents.gaussian_sample(loc, scale, normal)
  z_d = tf.repeat(tf.eye(j, dtype=loc.dtype), b, axis=0)  # [J*B, J], category-major
  dec = decode(tf.concat([z_d, tf.tile(z_c, [j, 1])], -1))
  rec_j = tf.reshape(objectives.reconstruction_nll(tf.tile(x, [j, 1, 1, 1]), dec), [j, b])
  rec = tf.reduce_sum(tf.transpose(tf.nn.softmax(logits, -1)) * rec_j, axis=0)
  kl_c = objectives.kl_continuous(loc, scale)
  kl_d = objectives.kl_discrete(logits)
  return {
    "reconstruction": rec,
    "kl_continuous": kl_c,
    "kl_discrete": kl_d,
    "neg_elbo": rec + kl_c + kl_d,
  }


def prior_latents(num, num_categories: int, continuous_dim: int, seed_d, seed_c, component=None):
  """z = [z_d, z_c] [num, J + F] from the prior, and the categories [num] int32.

  z_d one-hot: uniform over J (`component` None or negative) or `component`; z_c ~ N(0, I).

  Args:
    num: rows (int or int32 scalar tensor).
    num_categories: J.
    continuous_dim: F.
    seed_d, seed_c: stateless seeds [2] of the categories and of z_c.
    component: None, an int or an int32 scalar tensor (negative: uniform).
  """
  uniform = tf.random.stateless_uniform([num], seed_d, 0, num_categories, tf.int32)
  if component is None:
    index = uniform
  else:
    component = tf.cast(component, tf.int32)
    index = tf.where(component < 0, uniform, tf.fill([num], component))
  z_d = tf.one_hot(index, num_categories)
  z_c = tf.random.stateless_normal([num, continuous_dim], seed_c)
  return tf.concat([z_d, z_c], -1), index


def stateless_seed(model, seed=None) -> tf.Tensor:
  """A [2] int64 stateless seed: from `seed` (int or [2] tensor) or the model's generator."""
  if seed is None:
    return tf.cast(model.seed_generator.next(), tf.int64)
  if isinstance(seed, int):
    return tf.constant([seed, 0], tf.int64)
  return tf.cast(seed, tf.int64)


def hard_neg_elbo_terms(model, x, z_d, normal) -> dict[str, tf.Tensor]:
  """-ELBO terms for a given one-hot z_d [B, J] and z_c noise `normal` [B, F].

  z_c = mu + sigma * normal; -ELBO = -log p(x|[z_d, z_c]) + KL_c + KL_d with
  both KLs analytic. Returns dict of [B] like `objectives.neg_elbo_terms`.
  """
  x = tf.convert_to_tensor(x, tf.float32)
  return _hard_terms(model, x, model.encoder(x, training=False), z_d, normal)


def _hard_terms(model, x, encoded, z_d, normal):
  logits, loc, scale = encoded
  z_c = latents.gaussian_sample(loc, scale, normal)
  dec = model.decoder(tf.concat([tf.cast(z_d, loc.dtype), z_c], -1), training=False)
  return objectives.neg_elbo_terms(x, dec, logits, loc, scale)


def enumerated_neg_elbo_terms(model, x, normal) -> dict[str, tf.Tensor]:
  """-ELBO terms with E_q(z_d|x) exact: sum_j q(j|x) [-log p(x|e_j, z_c)] + KL_c + KL_d.

  One z_c = mu + sigma * normal (`normal` [B, F]) shared by the J terms; J
  decoder passes in one batch of J * B rows. Returns dict of [B].
  """
  x = tf.convert_to_tensor(x, tf.float32)
  encoded = model.encoder(x, training=False)
  return enumerated_terms(encoded, _inference_decoder(model), model.num_categories, x, normal)


def neg_elbo_terms(model, x, mode: str = "sample", seed=None) -> dict[str, tf.Tensor]:
  """Per-example -ELBO terms with a hard z_d (method.md section 3), inference mode.

  Args:
    model: a LifelongVAE.
    x: images [B, H, W, C] in [0, 1] (also the Bernoulli targets).
    mode: "sample": z_d one-hot ~ Cat(softmax(l)) (`hard_neg_elbo_terms`);
      "enumerate": exact expectation over z_d (`enumerated_neg_elbo_terms`).
      One z_c sample either way.
    seed: see the module docstring.

  Returns:
    dict of [B]: reconstruction, kl_continuous, kl_discrete, neg_elbo.
  """
  if mode not in ("sample", "enumerate"):
    raise ValueError(f"mode must be sample or enumerate, not {mode!r}")
  x = tf.convert_to_tensor(x, tf.float32)
  seed_d, seed_c = tf.unstack(
    tf.random.experimental.stateless_split(stateless_seed(model, seed), 2)
  )
  normal = tf.random.stateless_normal([tf.shape(x)[0], model.continuous_dim], seed_c)
  if mode == "enumerate":
    return enumerated_neg_elbo_terms(model, x, normal)
  encoded = model.encoder(x, training=False)
  return _hard_terms(model, x, encoded, latents.hard_one_hot_sample(encoded[0], seed_d), normal)


def neg_elbo(model, x, mode: str = "sample", seed=None) -> tf.Tensor:
  """-ELBO(x) per example, [B], nats (see `neg_elbo_terms`)."""
  return neg_elbo_terms(model, x, mode, seed)["neg_elbo"]


def iwae_log_likelihood(model, x, k: int, seed=None) -> tf.Tensor:
  """Importance-weighted lower bound on log p(x) with K samples, [B] (nats).

  log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x), z_k = [z_d, z_c] with z_d a
  hard one-hot ~ Cat(softmax(l)) and z_c ~ q(z_c|x); log p(z_d) = -log J,
  log q(z_d = j|x) = log softmax(l)_j. With K = 1 its expectation is the
  ELBO; it increases with K towards log p(x).
  """
  x = tf.convert_to_tensor(x, tf.float32)
  seed_d, seed_c = tf.unstack(
    tf.random.experimental.stateless_split(stateless_seed(model, seed), 2)
  )
  logits, loc, scale = model.encoder(x, training=False)
  b, j = tf.shape(x)[0], model.num_categories
  index = tf.random.stateless_categorical(logits, k, seed_d)  # [B, K]
  index = tf.transpose(index)  # [K, B]
  z_d = tf.one_hot(index, j)  # [K, B, J]
  eps = tf.random.stateless_normal(tf.concat([[k], tf.shape(loc)], 0), seed_c)
  z_c = loc + scale * eps  # [K, B, F]
  z = tf.reshape(tf.concat([z_d, z_c], -1), [k * b, -1])
  dec = model.decoder(z, training=False)
  log_px = -tf.reshape(objectives.reconstruction_nll(tf.tile(x, [k, 1, 1, 1]), dec), [k, b])
  posterior_c = latents.continuous_posterior(loc, scale)
  prior_c = latents.continuous_prior(loc.shape[-1])
  log_q_d = tf.gather(tf.nn.log_softmax(logits, -1), tf.transpose(index), batch_dims=1)  # [B, K]
  log_w = (
    log_px + prior_c.log_prob(z_c) - posterior_c.log_prob(z_c) - math.log(j) - tf.transpose(log_q_d)
  )
  return tf.reduce_logsumexp(log_w, axis=0) - math.log(k)


def posterior_argmax(model, x) -> tf.Tensor:
  """argmax_j q(z_d = j|x) per example, [B] int32 (paper eq. 4 compares these)."""
  logits, _, _ = model.encoder(tf.convert_to_tensor(x, tf.float32), training=False)
  return tf.argmax(logits, axis=-1, output_type=tf.int32)


def reconstruct(model, x) -> tf.Tensor:
  """Deterministic reconstructions in [0, 1], [B, H, W, C].

  sigmoid(decoder([one_hot(argmax l(x)), mu(x)])), inference mode (as the
  exported `reconstruct` signature).
  """
  x = tf.convert_to_tensor(x, tf.float32)
  encode = lambda images: model.encoder(images, training=False)  # noqa: E731
  return tf.sigmoid(
    reconstruction_logits(encode, _inference_decoder(model), model.num_categories, x)
  )


def _inference_decoder(model):
  return lambda z: model.decoder(z, training=False)
