"""The objective's terms against closed forms computed with numpy/scipy (method.md 3-4)."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import special, stats

from tf_lifelong.model import objectives

from .conftest import log_softmax

B, J, F = 6, 3, 4


def test_reconstruction_matches_bernoulli_log_likelihood(rng):
  x = rng.uniform(size=(B, 5, 7, 1)).astype(np.float32)
  a = rng.normal(0, 2, size=x.shape).astype(np.float32)
  p = special.expit(a.astype(np.float64))
  expected = -(x * np.log(p) + (1 - x) * np.log1p(-p)).reshape(B, -1).sum(-1)
  got = objectives.reconstruction_nll(x, a).numpy()
  assert got.shape == (B,)
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_kl_continuous_closed_form(rng):
  loc = rng.normal(size=(B, F)).astype(np.float32)
  scale = rng.uniform(0.2, 2.0, size=(B, F)).astype(np.float32)
  expected = 0.5 * (loc**2 + scale**2 - 1 - 2 * np.log(scale)).sum(-1)
  got = objectives.kl_continuous(loc, scale).numpy()
  assert got.shape == (B,)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_kl_discrete_closed_form(rng):
  logits = rng.normal(0, 2, size=(B, J)).astype(np.float32)
  p = special.softmax(logits.astype(np.float64), axis=-1)
  expected = np.array([stats.entropy(row, np.full(J, 1 / J)) for row in p])
  got = objectives.kl_discrete(logits).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert objectives.kl_discrete(np.zeros((2, J), np.float32)).numpy() == pytest.approx(0, abs=1e-6)


def test_kl_discrete_against_a_given_prior(rng):
  logits = rng.normal(0, 2, size=(B, J)).astype(np.float32)
  prior = rng.dirichlet(np.ones(J))
  p = special.softmax(logits.astype(np.float64), axis=-1)
  expected = np.array([stats.entropy(row, prior) for row in p])
  got = objectives.kl_discrete(logits, np.log(prior).astype(np.float32)).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  uniform = np.full(J, -np.log(J), np.float32)
  np.testing.assert_allclose(
    objectives.kl_discrete(logits, uniform).numpy(),
    objectives.kl_discrete(logits).numpy(),
    atol=1e-6,
  )


@pytest.mark.parametrize("j,j_t,f", [(5, 3, 0.3), (4, 3, 0.25), (3, 1, 0.8), (6, 6, 0.1)])
def test_mix_log_prior_is_the_batch_share_of_each_category(j, j_t, f):
  """Synthetic rows (1 - f) uniform over the teacher's J_T; real rows f over the J - J_T new."""
  got = np.exp(objectives.mix_log_prior(j, j_t, f).numpy())
  if j == j_t:
    expected = np.full(j, 1 / j)  # a repeat: the real rows' category is unknown
  else:
    expected = np.concatenate([np.full(j_t, (1 - f) / j_t), np.full(j - j_t, f / (j - j_t))])
  assert got.shape == (j,)
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  assert got.sum() == pytest.approx(1.0, abs=1e-6)


def test_mix_log_prior_with_equal_shares_is_uniform():
  """method.md's mix, f = 1 / (k + 1) with J = k + 1, gives every category 1 / J."""
  for k in (1, 2, 7):
    got = np.exp(objectives.mix_log_prior(k + 1, k, 1 / (k + 1)).numpy())
    np.testing.assert_allclose(got, np.full(k + 1, 1 / (k + 1)), rtol=1e-6)
  with pytest.raises(ValueError, match="teacher has 4 categories, student 3"):
    objectives.mix_log_prior(3, 4, 0.5)


def numpy_neg_elbo(x, decoder_logits, logits, loc, scale, prior=None) -> np.ndarray:
  """-ELBO(x) [B] in float64 from the densities themselves (paper eq. 2), apart from
  objectives: -log Bernoulli(x; sigmoid(a)) + KL(N(loc, scale) || N(0, I)) +
  KL(Cat(softmax(logits)) || Cat(prior)), the Gaussian KL by its integrand's
  expectation over a fixed quadrature, not the closed form objectives uses."""
  x, a = x.astype(np.float64).reshape(len(x), -1), decoder_logits.astype(np.float64)
  a = a.reshape(len(x), -1)
  log_px = -x * np.logaddexp(0, -a) - (1 - x) * np.logaddexp(0, a)  # log sigmoid(+-a)
  # KL_c = E_q[log q(z) - log p(z)], per dimension by Gauss-Hermite quadrature.
  nodes, weights = np.polynomial.hermite_e.hermegauss(40)
  z = loc.astype(np.float64)[..., None] + scale.astype(np.float64)[..., None] * nodes
  log_q = stats.norm.logpdf(z, loc[..., None], scale[..., None])
  kl_c = ((log_q - stats.norm.logpdf(z)) @ (weights / weights.sum())).sum(-1)
  q = special.softmax(logits.astype(np.float64), axis=-1)
  prior = np.full(q.shape[-1], 1 / q.shape[-1]) if prior is None else prior
  kl_d = (q * (np.log(q) - np.log(prior))).sum(-1)
  return -log_px.sum(-1) + kl_c + kl_d


@pytest.mark.parametrize("given_prior", [False, True])
def test_neg_elbo_terms_equal_an_independent_neg_elbo(rng, given_prior):
  x = rng.uniform(size=(B, 5, 7, 1)).astype(np.float32)
  x[0] = (x[0] > 0.5).astype(np.float32)  # binary pixels too
  decoder_logits = rng.normal(0, 2, size=x.shape).astype(np.float32)
  logits = rng.normal(0, 2, size=(B, J)).astype(np.float32)
  loc = rng.normal(size=(B, F)).astype(np.float32)
  scale = rng.uniform(0.3, 1.5, size=(B, F)).astype(np.float32)
  prior = rng.dirichlet(np.ones(J)) if given_prior else None
  log_prior = None if prior is None else np.log(prior).astype(np.float32)
  terms = objectives.neg_elbo_terms(x, decoder_logits, logits, loc, scale, log_prior)
  assert set(terms) == {"reconstruction", "kl_continuous", "kl_discrete", "neg_elbo"}
  expected = numpy_neg_elbo(x, decoder_logits, logits, loc, scale, prior)
  np.testing.assert_allclose(terms["neg_elbo"].numpy(), expected, rtol=1e-5)


def test_mutual_information_matches_numpy(rng):
  logits = rng.normal(0, 2, size=(B, J)).astype(np.float32)
  p = special.softmax(logits.astype(np.float64), axis=-1)
  expected = stats.entropy(p.mean(0)) - np.mean([stats.entropy(row) for row in p])
  marginal = objectives.batch_marginal_sum(logits) / B
  terms = objectives.mutual_information_terms(logits, marginal)
  assert terms["mutual_information"].shape == (B,)
  assert float(tf.reduce_mean(terms["mutual_information"])) == pytest.approx(expected, rel=1e-4)
  # A batch that puts every example in one category has no information.
  same = np.tile([[8.0, 0.0, 0.0]], (B, 1)).astype(np.float32)
  mi = objectives.mutual_information_terms(same, objectives.batch_marginal_sum(same) / B)
  assert float(tf.reduce_mean(mi["mutual_information"])) == pytest.approx(0, abs=1e-6)


def _padded_teacher(teacher_logits, j, eps):
  p = special.softmax(teacher_logits.astype(np.float64), axis=-1)
  pad = np.full((len(p), j - p.shape[1]), eps)
  full = np.concatenate([p, pad], axis=1)
  return full / full.sum(1, keepdims=True)


def test_consistency_reverse_and_forward_by_hand(rng):
  s_logits = rng.normal(size=(B, J)).astype(np.float32)
  t_logits = rng.normal(size=(B, J - 1)).astype(np.float32)
  eps = 1e-3
  q = special.softmax(s_logits.astype(np.float64), axis=-1)
  t = _padded_teacher(t_logits, J, eps)
  reverse = (q * np.log(q / t)).sum(-1)
  forward = (t * np.log(t / q)).sum(-1)
  got_r = objectives.consistency_terms(s_logits, t_logits, eps=eps)["consistency"].numpy()
  got_f = objectives.consistency_terms(s_logits, t_logits, eps=eps, direction="forward")[
    "consistency"
  ].numpy()
  np.testing.assert_allclose(got_r, reverse, rtol=1e-4)
  np.testing.assert_allclose(got_f, forward, rtol=1e-4)
  assert np.abs(reverse - forward).min() > 1e-2  # the two directions really differ here


def test_padded_teacher_log_probs_renormalised(rng):
  t_logits = rng.normal(size=(B, 2)).astype(np.float32)
  log_t = objectives.padded_teacher_log_probs(t_logits, 4, 1e-6).numpy()
  np.testing.assert_allclose(np.exp(log_t).sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(log_t[:, 2:], np.log(1e-6 / (1 + 2e-6)), rtol=1e-5)
  same = objectives.padded_teacher_log_probs(t_logits, 2, 1e-6).numpy()
  np.testing.assert_allclose(same, log_softmax(t_logits.astype(np.float64)), atol=1e-6)


def test_new_category_costs_more_than_old_ones():
  teacher = np.zeros((1, 2), np.float32)  # uniform over the 2 old categories
  on_old = np.array([[9.0, 0.0, 0.0]], np.float32)  # student sure of old category 0
  on_new = np.array([[0.0, 0.0, 9.0]], np.float32)  # student sure of the new category
  cost_old = float(objectives.consistency_terms(on_old, teacher, eps=1e-6)["consistency"][0])
  cost_new = float(objectives.consistency_terms(on_new, teacher, eps=1e-6)["consistency"][0])
  assert cost_old == pytest.approx(np.log(2), abs=2e-3)
  assert cost_new > cost_old + 10  # about -log(1e-6) = 13.8
  assert np.isfinite(cost_new)


def test_gaussian_consistency_term(rng):
  s_logits = rng.normal(size=(B, J)).astype(np.float32)
  loc_s, loc_t = (rng.normal(size=(B, F)).astype(np.float32) for _ in range(2))
  sc_s, sc_t = (rng.uniform(0.5, 1.5, size=(B, F)).astype(np.float32) for _ in range(2))
  terms = objectives.consistency_terms(
    s_logits, s_logits, eps=1e-6, student_gaussian=(loc_s, sc_s), teacher_gaussian=(loc_t, sc_t)
  )
  kl = (np.log(sc_t / sc_s) + (sc_s**2 + (loc_s - loc_t) ** 2) / (2 * sc_t**2) - 0.5).sum(-1)
  np.testing.assert_allclose(terms["consistency_discrete"], 0, atol=1e-6)
  np.testing.assert_allclose(terms["consistency_gaussian"], kl, rtol=1e-4)
  np.testing.assert_allclose(terms["consistency"], kl, rtol=1e-4)


def test_consistency_masked_to_synthetic_rows_and_loss(rng):
  neg_elbo = rng.uniform(50, 60, size=B).astype(np.float32)
  cons = rng.uniform(1, 2, size=B).astype(np.float32)
  mi = rng.uniform(0, 1, size=B).astype(np.float32)
  real_only = np.ones(B, np.float32)
  np.testing.assert_array_equal(objectives.masked_consistency(cons, real_only), 0)
  omega = np.array([1, 1, 1, 0, 0, 1], np.float32)
  loss = objectives.student_loss(neg_elbo, cons, mi, omega, gamma=2.0, lam=0.5).numpy()
  np.testing.assert_allclose(loss, neg_elbo + 2.0 * (1 - omega) * cons - 0.5 * mi, rtol=1e-6)


def test_decoder_distillation_is_the_bernoulli_kl(rng):
  t = rng.normal(0, 2, size=(B, 5, 7, 1)).astype(np.float32)
  s = rng.normal(0, 2, size=(B, 5, 7, 1)).astype(np.float32)
  p, q = special.expit(t.astype(np.float64)), special.expit(s.astype(np.float64))
  expected = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).reshape(B, -1).sum(-1)
  got = objectives.decoder_distillation(t, s).numpy()
  assert got.shape == (B,)
  np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
  assert np.all(got > 0)
  np.testing.assert_allclose(objectives.decoder_distillation(t, t).numpy(), 0.0, atol=1e-3)


def test_student_loss_adds_distillation_on_synthetic_rows_only():
  ones = tf.ones([4])
  omega = tf.constant([1.0, 1.0, 0.0, 0.0])
  distill = tf.constant([5.0, 6.0, 7.0, 8.0])
  base = objectives.student_loss(ones, ones, ones, omega, gamma=2.0, lam=0.5)
  got = objectives.student_loss(
    ones, ones, ones, omega, gamma=2.0, lam=0.5, distillation=distill, delta=0.1
  )
  np.testing.assert_allclose(got - base, [0.0, 0.0, 0.7, 0.8], rtol=1e-6)


def test_component_anchor_is_the_cross_entropy_to_the_target(rng):
  logits = rng.normal(0, 2, size=(B, 3)).astype(np.float32)
  target = np.zeros((B, 3), np.float32)
  target[np.arange(B - 1), rng.integers(0, 3, B - 1)] = 1.0  # the last row: no target
  got = objectives.component_anchor(logits, target).numpy()
  log_q = logits - special.logsumexp(logits.astype(np.float64), axis=-1, keepdims=True)
  expected = -(target * log_q).sum(-1)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
  assert got[-1] == 0.0 and np.all(got[:-1] > 0)
  sure = np.where(target > 0, 30.0, -30.0).astype(np.float32)  # q is (almost) the target
  np.testing.assert_allclose(objectives.component_anchor(sure, target).numpy(), 0.0, atol=1e-6)


def test_student_loss_adds_the_anchor_on_every_row():
  ones = tf.ones([4])
  omega = tf.constant([1.0, 1.0, 0.0, 0.0])
  anchor = tf.constant([1.0, 2.0, 3.0, 4.0])
  base = objectives.student_loss(ones, ones, ones, omega, gamma=2.0, lam=0.5)
  got = objectives.student_loss(ones, ones, ones, omega, gamma=2.0, lam=0.5, anchor=anchor, alpha=2)
  np.testing.assert_allclose(got - base, [2.0, 4.0, 6.0, 8.0], rtol=1e-6)
