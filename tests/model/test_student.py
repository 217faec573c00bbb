"""The student's objective, replay and Keras plumbing (method.md sections 4-5)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

from tf_lifelong.model import latents, lifelong_vae, replay_mix

from .conftest import (
  IMAGE_SHAPE,
  log_softmax,
  make_config,
  make_student,
  numpy_mlp_decoder,
  numpy_mlp_encoder,
)

B, J, J_T, F = 6, 3, 2, 4


def _numpy_terms(model, x, omega, noise, tau, config):
  """The whole per-example objective in float64 numpy (inference-mode batch norm)."""
  logits, loc, scale = numpy_mlp_encoder(model.encoder, x)
  z_d = special.softmax((logits + noise["gumbel"]) / tau, axis=-1)
  z_c = loc + scale * noise["normal"]
  a = numpy_mlp_decoder(model.decoder, np.concatenate([z_d, z_c], -1))
  xx = x.astype(np.float64)
  rec = (np.logaddexp(0, a) - xx * a).reshape(len(x), -1).sum(-1)
  kl_c = 0.5 * (loc**2 + scale**2 - 1 - 2 * np.log(scale)).sum(-1)
  p = special.softmax(logits, -1)
  kl_d = (p * np.log(p * J)).sum(-1)
  t_logits, _, _ = numpy_mlp_encoder(model.teacher.encoder, x)
  t = np.concatenate(
    [special.softmax(t_logits, -1), np.full((len(x), J - J_T), config.teacher_pad_eps)], -1
  )
  t /= t.sum(-1, keepdims=True)
  cons = np.where(omega == 0, (p * (np.log(p) - np.log(t))).sum(-1), 0.0)
  pbar = p.mean(0)
  mi = -(p * np.log(pbar)).sum(-1) + (p * log_softmax(logits)).sum(-1)
  neg_elbo = rec + kl_c + kl_d
  loss = neg_elbo + config.consistency_weight * cons - config.mi_weight * mi
  return {
    "reconstruction": rec,
    "kl_continuous": kl_c,
    "kl_discrete": kl_d,
    "neg_elbo": neg_elbo,
    "consistency": cons,
    "mutual_information": mi,
    "loss": loss,
  }


def test_per_example_objective_matches_numpy(rng):
  config = make_config(
    consistency_weight=1.5, mi_weight=0.7, teacher_pad_eps=1e-3, tau_rate=0.01, tau_update_every=10
  )
  model = make_student(config, J, rng, teacher_categories=J_T)
  model.student_step.assign(25)  # tau = exp(-0.01 * 20)
  x = rng.uniform(size=(B, *IMAGE_SHAPE)).astype(np.float32)
  omega = np.array([1, 1, 1, 0, 0, 0], np.float32)
  noise = {
    "gumbel": rng.gumbel(size=(B, J)).astype(np.float32),
    "normal": rng.normal(size=(B, F)).astype(np.float32),
  }
  got = model.per_example_terms(x, omega, noise, training=False)
  expected = _numpy_terms(model, x, omega, noise, np.exp(-0.2), config)
  for name, value in expected.items():
    assert got[name].shape == (B,), name
    np.testing.assert_allclose(got[name].numpy(), value, rtol=2e-4, atol=2e-4, err_msg=name)
  assert np.all(expected["consistency"][3:] > 0)
  loss, _, _, count = model.loss_and_gradients(x, omega, noise)
  assert float(count) == B
  # training=True uses batch statistics, so only the reduction is checked here.
  terms = model.per_example_terms(x, omega, noise, training=True)
  assert float(loss) == pytest.approx(float(tf.reduce_mean(terms["loss"])), rel=1e-5)


def test_mix_prior_changes_only_kl_discrete_and_uses_the_batch_shares(rng):
  """--discrete_prior=mix: KL_d against p(z_d) of the replay mix, the rest as with uniform."""
  x = rng.uniform(size=(B, *IMAGE_SHAPE)).astype(np.float32)
  omega = np.array([1, 1, 1, 0, 0, 0], np.float32)  # f = 3 / 6 real rows (2 / 6: uniform)
  noise = {
    "gumbel": rng.gumbel(size=(B, J)).astype(np.float32),
    "normal": rng.normal(size=(B, F)).astype(np.float32),
  }
  terms = {}
  for prior in ("uniform", "mix"):
    model = make_student(
      make_config(discrete_prior=prior), J, np.random.default_rng(5), teacher_categories=J_T
    )
    terms[prior] = model.per_example_terms(x, omega, noise, training=False)
  logits, _, _ = numpy_mlp_encoder(model.encoder, x)
  p = special.softmax(logits, -1)
  mix = np.array([0.5 / J_T] * J_T + [0.5 / (J - J_T)] * (J - J_T))
  expected = (p * (np.log(p) - np.log(mix))).sum(-1)
  got = terms["mix"]["kl_discrete"].numpy()
  np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-4)
  assert not np.allclose(got, terms["uniform"]["kl_discrete"].numpy(), atol=1e-3)
  for name in ("reconstruction", "kl_continuous", "consistency", "mutual_information"):
    np.testing.assert_allclose(
      terms["mix"][name].numpy(), terms["uniform"][name].numpy(), rtol=1e-6, err_msg=name
    )
  np.testing.assert_allclose(
    terms["mix"]["neg_elbo"].numpy() - terms["uniform"]["neg_elbo"].numpy(),
    got - terms["uniform"]["kl_discrete"].numpy(),
    atol=1e-4,
  )


def test_consistency_zero_without_synthetic_rows(rng):
  config = make_config()
  model = make_student(config, J, rng, teacher_categories=J_T)
  x = rng.uniform(size=(B, *IMAGE_SHAPE)).astype(np.float32)
  noise = model.draw_noise(B, tf.constant([1, 2], tf.int64))
  terms = model.per_example_terms(x, np.ones(B, np.float32), noise)
  np.testing.assert_array_equal(terms["consistency"].numpy(), 0.0)


@pytest.mark.parametrize(
  "k,real,synthetic", [(0, 6, 0), (1, 3, 3), (2, 2, 4), (5, 1, 5), (10, 1, 5)]
)
def test_batch_sizes(rng, k, real, synthetic):
  """method.md section 5's share, pi = k / (k + 1): replay_weight 1 (--profile=paper)."""
  model = make_student(make_config(replay_weight=1.0), J, rng, teacher_categories=J_T)
  model.num_seen = k
  assert (model.real_batch_size(B), model.synthetic_batch_size(B)) == (real, synthetic)
  assert model.synthetic_batch_size(128) == round(128 * k / (k + 1))


@pytest.mark.parametrize("r,k", [(2.0, 1), (2.0, 9), (0.5, 3), (3.0, 4)])
def test_replay_weight_gives_each_old_distribution_r_shares(rng, r, k):
  model = make_student(make_config(replay_weight=r), J, rng, teacher_categories=J_T)
  model.num_seen = k
  synthetic = model.synthetic_batch_size(128)
  assert synthetic == min(int(128 * r * k / (r * k + 1) + 0.5), 127)
  assert synthetic + model.real_batch_size(128) == 128
  # Per old distribution, r times the new one's rows (up to the rounding of one row).
  assert abs(synthetic / k - r * model.real_batch_size(128)) <= r + 1
  assert model.replay_fraction == pytest.approx(r * k / (r * k + 1))


@pytest.mark.parametrize("f,k", [(0.5, 1), (0.5, 9), (0.25, 4), (0.75, 2)])
def test_replay_fraction_fixes_the_synthetic_share_whatever_k(rng, f, k):
  """--replay_fraction f > 0: pi = f at every k >= 1 (whatever r); no rows at k = 0."""
  model = make_student(
    make_config(replay_weight=2.0, replay_fraction=f), J, rng, teacher_categories=J_T
  )
  model.num_seen = k
  assert model.replay_fraction == f
  assert model.synthetic_batch_size(128) == int(128 * f + 0.5)
  assert model.real_batch_size(128) == 128 - int(128 * f + 0.5)
  assert replay_mix.synthetic_batch_size(k, 120, 2.0, 4, f) % 4 == 0
  model.num_seen = 0
  assert (model.replay_fraction, model.synthetic_batch_size(128)) == (0.0, 0)


@pytest.mark.parametrize("replicas", [2, 3, 4])
@pytest.mark.parametrize("r", [0.5, 1.0, 2.0])
def test_synthetic_rows_split_evenly_over_replicas(replicas, r):
  # B = 120 at k = 1..9: the real rows too must be a whole number per replica, or the
  # replicas' batches differ in shape and the strategies' all-reduces fail.
  for k in range(1, 10):
    synthetic = replay_mix.synthetic_batch_size(k, 120, r, replicas)
    assert synthetic % replicas == 0 and (120 - synthetic) % replicas == 0
    assert replicas <= 120 - synthetic
    assert abs(synthetic - 120 * r * k / (r * k + 1)) <= replicas / 2 + 1e-9
  # One replica: round(B pi), half up, as before.
  assert replay_mix.synthetic_batch_size(9, 128, 0.5) == 105


def test_replay_batch_rows_mask_and_teacher_samples(rng):
  model = make_student(
    make_config(replay_sample_pixels=False), J, rng, teacher_categories=J_T
  )  # means
  # Make the teacher's decoder ignore z_c: each synthetic image is one of J_T images.
  kernel = model.teacher.decoder.latent_input.kernel
  kernel.assign(tf.concat([kernel[:J_T], tf.zeros_like(kernel[J_T:])], 0))
  real = rng.uniform(size=(2, *IMAGE_SHAPE)).astype(np.float32)
  seed = tf.constant([3, 4], tf.int64)
  x, omega = model.replay_batch(real, seed)
  np.testing.assert_array_equal(omega, [1, 1, 0, 0, 0, 0])
  np.testing.assert_array_equal(x[:2], real)
  np.testing.assert_array_equal(x[2:], model.teacher_samples(4, seed))
  many = model.teacher_samples(600, seed=11).numpy().reshape(600, -1)
  modes = np.stack(
    [
      special.expit(
        numpy_mlp_decoder(
          model.teacher.decoder, np.concatenate([np.eye(J_T)[j : j + 1], np.zeros((1, F))], -1)
        )
      ).reshape(-1)
      for j in range(J_T)
    ]
  )
  dist = np.abs(many[:, None, :] - modes[None]).max(-1)  # [600, J_T]
  assert dist.min(1).max() < 1e-5  # always one of the modes
  counts = np.bincount(dist.argmin(1), minlength=J_T)
  assert counts.min() > 240  # uniform over J_T


def test_replay_sample_pixels_are_binary(rng):
  model = make_student(make_config(replay_sample_pixels=True), J, rng, teacher_categories=J_T)
  values = np.unique(model.teacher_samples(20, seed=5).numpy())
  assert set(values.tolist()) <= {0.0, 1.0}


def test_fit_with_teacher_trains_student_not_teacher(rng):
  config = make_config(consistency_weight=1.5, mi_weight=0.5)
  model = make_student(config, J, rng, teacher_categories=J_T)
  teacher_before = [w.numpy().copy() for w in model.teacher.weights]
  student_before = [w.numpy().copy() for w in model.student_variables]
  assert not set(map(id, model.teacher.weights)) & set(map(id, model.trainable_weights))
  data = rng.uniform(size=(3 * model.real_batch_size(B), *IMAGE_SHAPE)).astype(np.float32)
  logs = model.fit(
    data, batch_size=model.real_batch_size(B), epochs=1, verbose=0, shuffle=False
  ).history
  for name in (
    "loss",
    "neg_elbo",
    "reconstruction",
    "kl_continuous",
    "kl_discrete",
    "consistency",
    "mutual_information",
    "temperature",
    "pi",
    "grad_norm",
  ):
    assert np.isfinite(logs[name][-1]), name
  assert logs["pi"][-1] == pytest.approx(4 / 6)
  assert logs["consistency"][-1] > 0 and logs["grad_norm"][-1] > 0
  assert logs["loss"][-1] == pytest.approx(
    logs["neg_elbo"][-1] + 1.5 * logs["consistency"][-1] - 0.5 * logs["mutual_information"][-1],
    rel=1e-4,
  )
  assert int(model.student_step.numpy()) == 3
  for before, w in zip(teacher_before, model.teacher.weights):
    np.testing.assert_array_equal(before, w.numpy())
  assert any(
    np.abs(b - w.numpy()).max() > 0 for b, w in zip(student_before, model.student_variables)
  )


def test_temperature_tracker_follows_student_step(rng):
  config = make_config(tau_rate=0.1, tau_update_every=2, tau_min=0.5)
  model = make_student(config, J, rng)
  data = rng.uniform(size=(4 * B, *IMAGE_SHAPE)).astype(np.float32)
  logs = model.fit(data, batch_size=B, epochs=2, verbose=0, shuffle=False).history
  taus = [float(latents.temperature(t, latents.TemperatureSchedule.of(config))) for t in range(8)]
  assert logs["temperature"] == pytest.approx([np.mean(taus[:4]), np.mean(taus[4:])], rel=1e-5)
  assert logs["pi"] == [0.0, 0.0]


def test_call_sample_encode(rng):
  model = make_student(make_config(), J, rng)
  x = rng.uniform(size=(B, *IMAGE_SHAPE)).astype(np.float32)
  assert model(x).shape == (B, *IMAGE_SHAPE)
  logits, loc, scale = model.encode(x)
  assert (logits.shape, loc.shape, scale.shape) == ((B, J), (B, F), (B, F))
  samples = model.sample(5, seed=1).numpy()
  assert samples.shape == (5, *IMAGE_SHAPE) and samples.min() >= 0 and samples.max() <= 1
  np.testing.assert_array_equal(samples, model.sample(5, seed=1))
  assert np.abs(samples - model.sample(5).numpy()).max() > 0
  one = model.sample(3, component=2, seed=1).numpy()
  normal = tf.random.stateless_normal(
    [3, F], tf.unstack(tf.random.experimental.stateless_split(tf.constant([1, 0], tf.int64), 2))[1]
  )
  z = np.concatenate([np.tile(np.eye(J)[2], (3, 1)), normal.numpy()], -1)
  np.testing.assert_allclose(one, special.expit(numpy_mlp_decoder(model.decoder, z)), atol=1e-5)


def test_needs_teacher_for_replay(rng):
  config = make_config()
  model = make_student(config, 1, rng)
  with pytest.raises(ValueError, match="teacher"):
    lifelong_vae.LifelongVAE(
      model.encoder,
      model.decoder,
      model.objective,
      model.replay,
      1,
      IMAGE_SHAPE,
      num_seen=1,
      seed=0,
    )


def test_checkpoint_round_trip(rng, tmp_path):
  model = make_student(make_config(), J, rng, teacher_categories=J_T)
  path = tf.train.Checkpoint(student=model).write(str(tmp_path / "ckpt"))
  other = make_student(make_config(), J, np.random.default_rng(99), teacher_categories=J_T)
  tf.train.Checkpoint(student=other).read(path).assert_consumed()
  assert len(model.weights) == len(other.weights)
  for a, b in zip(model.weights, other.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_jit_compiled_step(rng):
  model = make_student(make_config(jit_compile=True), J, rng, teacher_categories=J_T)
  data = rng.uniform(size=(2 * model.real_batch_size(B), *IMAGE_SHAPE)).astype(np.float32)
  logs = model.fit(data, batch_size=model.real_batch_size(B), verbose=0).history
  assert np.isfinite(logs["loss"][-1])


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras saving
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer:UserWarning")
def test_keras_file_round_trip(rng, tmp_path):
  model = make_student(make_config(), J, rng, teacher_categories=J_T)
  model.save(tmp_path / "student.keras")
  loaded = keras.models.load_model(tmp_path / "student.keras")
  assert (loaded.num_categories, loaded.num_seen, loaded.teacher.num_categories) == (J, J_T, J_T)
  assert not loaded.teacher.trainable
  for a, b in zip(model.weights, loaded.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  x = rng.uniform(size=(B, *IMAGE_SHAPE)).astype(np.float32)
  np.testing.assert_array_equal(model(x), loaded(x))


def test_teacher_replay_latents_logits_and_images(rng):
  model = make_student(make_config(replay_sample_pixels=False), J, rng, teacher_categories=J_T)
  made = model.teacher_replay(5, seed=9)
  z, logits, x = made["z"].numpy(), made["logits"].numpy(), made["x"].numpy()
  assert z.shape == (5, J + F) and logits.shape == (5, *IMAGE_SHAPE)
  np.testing.assert_array_equal(z[:, J_T:J], 0.0)  # the student's new category
  np.testing.assert_array_equal(z[:, :J_T].sum(-1), 1.0)
  teacher_z = np.concatenate([z[:, :J_T], z[:, J:]], -1)
  expected = numpy_mlp_decoder(model.teacher.decoder, teacher_z).reshape(logits.shape)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(x, special.expit(logits), rtol=1e-6)
  np.testing.assert_array_equal(x, model.teacher_samples(5, seed=9))


def test_decoder_distillation_term_matches_numpy(rng):
  config = make_config(decoder_distillation=0.3)
  model = make_student(config, J, rng, teacher_categories=J_T)
  real = rng.uniform(size=(2, *IMAGE_SHAPE)).astype(np.float32)
  x, omega, made = model.replay_batch(real, tf.constant([3, 4], tf.int64), with_latents=True)
  noise = model.draw_noise(B, tf.constant([1, 2], tf.int64))
  plain = model.per_example_terms(x, omega, noise, training=False, num_real=2)
  got = model.per_example_terms(x, omega, noise, training=False, num_real=2, replay=made)
  s = numpy_mlp_decoder(model.decoder, made["z"].numpy()).astype(np.float64)
  p = special.expit(made["logits"].numpy().astype(np.float64)).reshape(4, -1)
  q = special.expit(s).reshape(4, -1)
  kl = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).sum(-1)
  np.testing.assert_allclose(got["decoder_distillation"].numpy(), [0, 0, *kl], rtol=1e-3, atol=1e-3)
  np.testing.assert_array_equal(plain["decoder_distillation"].numpy(), 0.0)
  for name in ("neg_elbo", "consistency", "mutual_information"):
    np.testing.assert_allclose(got[name].numpy(), plain[name].numpy(), rtol=1e-5, err_msg=name)
  np.testing.assert_allclose(
    got["loss"].numpy(), plain["loss"].numpy() + 0.3 * np.array([0, 0, *kl]), rtol=1e-4, atol=1e-3
  )


def test_fit_with_decoder_distillation_logs_and_adds_it(rng):
  config = make_config(consistency_weight=1.5, mi_weight=0.5, decoder_distillation=2.0)
  model = make_student(config, J, rng, teacher_categories=J_T)
  data = rng.uniform(size=(3 * model.real_batch_size(B), *IMAGE_SHAPE)).astype(np.float32)
  logs = model.fit(
    data, batch_size=model.real_batch_size(B), epochs=1, verbose=0, shuffle=False
  ).history
  assert logs["decoder_distillation"][-1] > 0
  assert logs["loss"][-1] == pytest.approx(
    logs["neg_elbo"][-1]
    + 1.5 * logs["consistency"][-1]
    - 0.5 * logs["mutual_information"][-1]
    + 2.0 * logs["decoder_distillation"][-1],
    rel=1e-4,
  )


def test_discrete_prior_is_checked_and_old_specs_still_load():
  from tf_lifelong import config as config_lib
  from tf_lifelong.model import student_objective

  with pytest.raises(config_lib.ConfigError, match="discrete_prior must be one of uniform, mix"):
    make_config(discrete_prior="learned")
  spec = student_objective.ObjectiveSpec.of(make_config(discrete_prior="mix"))
  assert spec.discrete_prior == "mix"
  saved = spec.to_dict()
  del saved["discrete_prior"]  # a model saved before the option existed
  assert student_objective.ObjectiveSpec.from_dict(saved).discrete_prior == "uniform"


def test_component_anchor_targets_the_interval_and_the_making_component(rng):
  """Real rows: -log q(z_d = anchor_component | x); synthetic rows: -log q(z_d = j | x) with
  j the one-hot that made them; the loss adds alpha times it on every row."""
  config = make_config(anchor_weight=0.5)
  model = make_student(config, J, rng, teacher_categories=J_T)
  model.anchor_component.assign(2)
  real = rng.uniform(size=(2, *IMAGE_SHAPE)).astype(np.float32)
  x, omega, made = model.replay_batch(real, tf.constant([3, 4], tf.int64), with_latents=True)
  noise = model.draw_noise(B, tf.constant([1, 2], tf.int64))
  got = model.per_example_terms(x, omega, noise, training=False, num_real=2, replay=made)
  logits, _, _ = numpy_mlp_encoder(model.encoder, x.numpy())
  log_q = log_softmax(logits)
  making = np.argmax(made["z"].numpy()[:, :J_T], -1)
  expected = -np.concatenate([log_q[:2, 2], log_q[np.arange(2, B), making]])
  np.testing.assert_allclose(got["anchor"].numpy(), expected, rtol=1e-4, atol=1e-4)
  off = make_student(make_config(), J, rng, teacher_categories=J_T)
  off.set_weights(model.get_weights())
  plain = off.per_example_terms(x, omega, noise, training=False, num_real=2, replay=made)
  np.testing.assert_array_equal(plain["anchor"].numpy(), 0.0)
  np.testing.assert_allclose(
    got["loss"].numpy(), plain["loss"].numpy() + 0.5 * expected, rtol=1e-4, atol=1e-3
  )
  model.anchor_component.assign(-1)  # no component: real rows carry no anchor
  none = model.per_example_terms(x, omega, noise, training=False, num_real=2, replay=made)
  np.testing.assert_allclose(none["anchor"].numpy()[:2], 0.0)
  np.testing.assert_allclose(none["anchor"].numpy()[2:], expected[2:], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("binarize", [False, True])
def test_test_step_scores_the_pixels_as_given_binarize_or_not(rng, binarize):
  """One rule (docs/model.md): --binarize binarises the training batches; every score,
  Keras' evaluate (test_step) as Learner.evaluate and the run's evaluation, takes grey
  pixels as the Bernoulli targets. Same seed, same images: the same -ELBO."""
  from tf_lifelong.model import inference

  model = make_student(make_config(binarize=binarize), J, rng)
  x = rng.uniform(0.2, 0.8, size=(B, *IMAGE_SHAPE)).astype(np.float32)
  state = model.seed_generator.state.numpy()
  logs = model.evaluate(x, batch_size=B, verbose=0, return_dict=True)
  model.seed_generator.state.assign(state)  # the step's seed again, as test_step draws it
  step_seed = tf.random.experimental.stateless_fold_in(
    tf.cast(model.seed_generator.next(), tf.int64), 0
  )
  seed_bin, seed = tf.unstack(tf.random.experimental.stateless_split(step_seed, 2))
  given = float(tf.reduce_mean(inference.neg_elbo(model, x, "sample", seed)))
  assert logs["neg_elbo"] == pytest.approx(given, rel=1e-5)
  binary = replay_mix.binarize(tf.constant(x), seed_bin)
  as_binary = float(tf.reduce_mean(inference.neg_elbo(model, binary, "sample", seed)))
  assert abs(as_binary - given) > 1e-3 * abs(given)  # the rule is visible in the number
