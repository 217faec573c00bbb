"""The terms of the objective as pure functions of tensors (method.md sections 3-4).

Every function returns NAMED per-example terms of shape [B] (a dict); the
reduction over the batch (sum / global batch size) is the caller's. Notation:
B examples, J categories of z_d (J_T <= J for the teacher), F dimensions of
z_c, D pixels. Reference: Ramapuram, Gregorova, Kalousis, "Lifelong
Generative Modeling", eq. 2 (ELBO), eq. 3 (consistency), section 4.1 (mutual
information).

No Keras layers or models here: tensors and TFP distributions only.
"""

from __future__ import annotations

import math

import tensorflow as tf

from tf_lifelong.model import latents


def reconstruction_nll(x: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """-log p(x|z) for independent Bernoullis with continuous targets in [0, 1].

  -sum_d [x_d log sigmoid(a_d) + (1 - x_d) log(1 - sigmoid(a_d))], summed
  over all pixels; x and logits a [B, H, W, C] (or [B, D]); returns [B].
  """
  x = tf.cast(x, logits.dtype)
  nll = tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits)
  return tf.reduce_sum(tf.reshape(nll, [tf.shape(nll)[0], -1]), axis=-1)


def kl_continuous(loc: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
  """KL(N(mu, diag(sigma^2)) || N(0, I)) analytic; loc, scale [B, F] -> [B].

  = 0.5 * sum_f (mu_f^2 + sigma_f^2 - 1 - 2 log sigma_f).
  """
  posterior = latents.continuous_posterior(loc, scale)
  prior = latents.continuous_prior(loc.shape[-1], loc.dtype)
  return posterior.kl_divergence(prior)


def kl_discrete(logits: tf.Tensor, log_prior: tf.Tensor | None = None) -> tf.Tensor:
  """KL(Cat(softmax(l)) || p(z_d)) analytic; logits [B, J] -> [B].

  Uniform prior (default): sum_j q_j log q_j + log J. With `log_prior` [J]
  (log p_j, summing to one): sum_j q_j (log q_j - log p_j). Between the
  underlying categoricals (the relaxed densities have no closed-form KL;
  method.md section 3).
  """
  log_p = tf.nn.log_softmax(logits, axis=-1)
  if log_prior is None:
    return tf.reduce_sum(tf.exp(log_p) * log_p, axis=-1) + math.log(logits.shape[-1])
  return categorical_kl(log_p, tf.cast(log_prior, log_p.dtype))


def mix_log_prior(num_categories: int, teacher_categories: int, real_fraction) -> tf.Tensor:
  """log p(z_d) [J] of the replay mix: the categories' shares of a training batch.

  An option beyond method.md (docs/model.md). The synthetic rows, 1 - f of the
  batch (f = `real_fraction`, a scalar), are drawn uniformly over the
  teacher's J_T categories; the real rows are the current distribution, whose
  category is one of the J - J_T the teacher lacks:

    p_j = (1 - f) / J_T  for j < J_T,    p_j = f / (J - J_T)  for j >= J_T.

  With no new category (J = J_T: a repeat) the real rows may be any category,
  and the prior is uniform; with f = 1 / J (method.md's equal shares) it is
  uniform too.
  """
  if not 0 < teacher_categories <= num_categories:
    raise ValueError(f"teacher has {teacher_categories} categories, student {num_categories}")
  if teacher_categories == num_categories:
    return tf.fill([num_categories], -math.log(num_categories))
  f = tf.cast(real_fraction, tf.float32)
  old = tf.fill([teacher_categories], tf.math.log((1.0 - f) / teacher_categories))
  new = tf.fill(
    [num_categories - teacher_categories], tf.math.log(f / (num_categories - teacher_categories))
  )
  return tf.concat([old, new], 0)


def neg_elbo_terms(x, decoder_logits, logits, loc, scale, log_prior=None) -> dict[str, tf.Tensor]:
  """-ELBO(x) = -log p(x|z) + KL_c + KL_d for one sample z (paper eq. 2).

  Args:
    x: targets [B, H, W, C] in [0, 1].
    decoder_logits: Bernoulli logits of p(x|z) for the sampled z, like x.
    logits: encoder logits of q(z_d|x), [B, J].
    loc, scale: q(z_c|x) parameters, [B, F].
    log_prior: None (p(z_d) uniform) or log p(z_d) [J] (`mix_log_prior`).

  Returns:
    dict of [B]: reconstruction, kl_continuous, kl_discrete, neg_elbo.
  """
  rec = reconstruction_nll(x, decoder_logits)
  kl_c = kl_continuous(loc, scale)
  kl_d = kl_discrete(logits, log_prior)
  return {
    "reconstruction": rec,
    "kl_continuous": kl_c,
    "kl_discrete": kl_d,
    "neg_elbo": rec + kl_c + kl_d,
  }


def padded_teacher_log_probs(
  teacher_logits: tf.Tensor, num_categories: int, eps: float
) -> tf.Tensor:
  """log q_T(z_d|x) over the student's J categories (method.md section 4).

  The teacher's probabilities softmax(l_T) [B, J_T] are padded with `eps`
  for the J - J_T new categories and renormalised:
  p = [softmax(l_T), eps, ..., eps] / (1 + (J - J_T) eps). Returns [B, J].
  """
  log_p = tf.nn.log_softmax(teacher_logits, axis=-1)
  extra = num_categories - teacher_logits.shape[-1]
  if extra < 0:
    raise ValueError(f"teacher has {teacher_logits.shape[-1]} categories, student {num_categories}")
  if extra == 0:
    return log_p
  pad = tf.fill([tf.shape(log_p)[0], extra], tf.cast(math.log(eps), log_p.dtype))
  return tf.concat([log_p, pad], axis=-1) - math.log1p(extra * eps)


def categorical_kl(log_p: tf.Tensor, log_q: tf.Tensor) -> tf.Tensor:
  """KL(p || q) = sum_j p_j (log p_j - log q_j) from log-probabilities [B, J] -> [B]."""
  return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def gaussian_kl(loc_p, scale_p, loc_q, scale_q) -> tf.Tensor:
  """KL(N(loc_p, scale_p^2) || N(loc_q, scale_q^2)), diagonal, all [B, F] -> [B]."""
  p = latents.continuous_posterior(loc_p, scale_p)
  return p.kl_divergence(latents.continuous_posterior(loc_q, scale_q))


def consistency_terms(
  student_logits,
  teacher_logits,
  *,
  eps: float,
  direction: str = "reverse",
  student_gaussian=None,
  teacher_gaussian=None,
) -> dict[str, tf.Tensor]:
  """Posterior consistency between student and teacher (paper eq. 3, appendix 7.0.2, 7.3).

  Discrete: reverse KL(q_S(z_d|x) || q_T(z_d|x)) (default) or forward
  KL(q_T || q_S), with q_T padded by `padded_teacher_log_probs`. Optional
  Gaussian term KL(q_S(z_c|x) || q_T(z_c|x)) (same direction) when both
  (loc, scale) pairs are given. Not masked: the caller keeps synthetic rows.

  Args:
    student_logits: [B, J].
    teacher_logits: [B, J_T], J_T <= J.
    eps: probability given to each category the teacher lacks.
    direction: "reverse" or "forward".
    student_gaussian, teacher_gaussian: optional (loc [B, F], scale [B, F]).

  Returns:
    dict of [B]: consistency_discrete, consistency_gaussian (zeros when
    off), consistency (their sum).
  """
  if direction not in ("reverse", "forward"):
    raise ValueError(f"direction must be reverse or forward, not {direction!r}")
  log_s = tf.nn.log_softmax(student_logits, axis=-1)
  log_t = padded_teacher_log_probs(teacher_logits, student_logits.shape[-1], eps)
  reverse = direction == "reverse"
  discrete = categorical_kl(log_s, log_t) if reverse else categorical_kl(log_t, log_s)
  if student_gaussian is None or teacher_gaussian is None:
    gaussian = tf.zeros_like(discrete)
  elif reverse:
    gaussian = gaussian_kl(*student_gaussian, *teacher_gaussian)
  else:
    gaussian = gaussian_kl(*teacher_gaussian, *student_gaussian)
  return {
    "consistency_discrete": discrete,
    "consistency_gaussian": gaussian,
    "consistency": discrete + gaussian,
  }


def batch_marginal_sum(logits: tf.Tensor) -> tf.Tensor:
  """sum_b softmax(l(x_b)), [B, J] -> [J]; divided by the (global) B it is q(z_d)."""
  return tf.reduce_sum(tf.nn.softmax(logits, axis=-1), axis=0)


def mutual_information_terms(logits: tf.Tensor, marginal: tf.Tensor) -> dict[str, tf.Tensor]:
  """Per-example share of the batch estimate of I(z_d; x) (section 4.1 of the paper).

  I = H(pbar) - mean_b H(p_b), p_b = softmax(l(x_b)), pbar = mean_b p_b.
  Since H(pbar) = mean_b [-sum_j p_bj log pbar_j], the per-example term
  mi_b = -sum_j p_bj log pbar_j - H(p_b) averages to I exactly. `marginal`
  is pbar [J], the mean over the whole (global) batch, so that N replicas
  give the same estimate as one device.

  Args:
    logits: [B, J].
    marginal: pbar, [J].

  Returns:
    dict of [B]: mutual_information, conditional_entropy (H(p_b)).
  """
  log_p = tf.nn.log_softmax(logits, axis=-1)
  p = tf.exp(log_p)
  entropy = -tf.reduce_sum(p * log_p, axis=-1)
  cross = -tf.reduce_sum(tf.math.xlogy(p, marginal[tf.newaxis, :]), axis=-1)
  return {"mutual_information": cross - entropy, "conditional_entropy": entropy}


def student_loss(
  neg_elbo,
  consistency,
  mutual_information,
  omega,
  *,
  gamma: float,
  lam: float,
  distillation=None,
  delta: float = 0.0,
  anchor=None,
  alpha: float = 0.0,
) -> tf.Tensor:
  """loss_b = -ELBO_b + gamma [omega_b == 0] consistency_b - lambda mi_b (method.md section 4)
  + delta [omega_b == 0] distillation_b (the decoder distillation option, if given)
  + alpha anchor_b (the component anchor option, if given; on every row).

  All arguments [B]; omega is 1 for real rows and 0 for synthetic ones.
  Returns [B].
  """
  loss = neg_elbo + gamma * masked_consistency(consistency, omega) - lam * mutual_information
  if distillation is not None and delta:
    loss += delta * masked_consistency(distillation, omega)
  if anchor is not None and alpha:
    loss += alpha * anchor
  return loss


def decoder_distillation(teacher_logits: tf.Tensor, student_logits: tf.Tensor) -> tf.Tensor:
  """sum_d KL(Bernoulli(sigmoid(t_d)) || Bernoulli(sigmoid(s_d))), per example.

  The decoder distillation term (an option beyond method.md): on a synthetic
  row, t are the teacher decoder's logits at the latent z that made the row and
  s the student decoder's logits at the same z, so the term pins the student's
  decoder to the teacher's where the teacher's prior puts its samples (a
  function-space anchor in the spirit of distillation, Hinton et al. 2015,
  and of replay with distillation, Shin et al. 2017). Computed as the
  Bernoulli cross-entropy of the teacher's means under s minus their entropy.

  Args:
    teacher_logits, student_logits: [B, H, W, C] (or [B, D]).

  Returns:
    [B], >= 0, 0 where the logits agree.
  """
  teacher_mean = tf.sigmoid(teacher_logits)
  return reconstruction_nll(teacher_mean, student_logits) - reconstruction_nll(
    teacher_mean, teacher_logits
  )


def component_anchor(logits: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
  """-sum_j t_j log q(z_d = j | x): the cross-entropy of q(z_d|x) to a target, per example.

  The component anchor (an option beyond method.md, docs/model.md): t is the
  one-hot component a row belongs to (a real row: the interval's component; a
  synthetic row: the one-hot z_d that made it), or all zeros where a row has
  no target (the term is then 0). It is log J_eff >= 0 away from 0 exactly
  when q puts mass outside the target.

  Args:
    logits: encoder logits l(x) [B, J].
    target: [B, J], rows one-hot or zero.

  Returns:
    [B], >= 0.
  """
  return -tf.reduce_sum(target * tf.nn.log_softmax(logits, axis=-1), axis=-1)


def masked_consistency(consistency, omega) -> tf.Tensor:
  """consistency_b on synthetic rows (omega == 0), 0 on real rows; [B]."""
  return tf.where(tf.equal(omega, 0), consistency, tf.zeros_like(consistency))
