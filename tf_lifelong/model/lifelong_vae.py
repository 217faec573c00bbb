"""The student's keras.Model: a VAE with discrete + continuous latents trained with replay.

method.md sections 4-5; Ramapuram, Gregorova, Kalousis, "Lifelong Generative
Modeling", section 4 (student-teacher, eq. 3), section 4.1 (mutual
information). The frozen teacher (a previous student, `handover.py`) generates
the synthetic share of every batch inside the compiled training step.

One training step (`LifelongVAE.train_step`), with b real rows and k distinct
distributions seen before the current one, only orchestrates:

1. the replay mix (replay_mix.py): n_syn synthetic rows from the teacher, the
   synthetic fraction pi = k / (k + 1) of the global batch B =
   ReplaySpec.batch_size, omega = 1 on real rows, 0 on synthetic rows;
2. the objective (student_objective.py): per-example terms and loss_b, loss =
   sum_b loss_b / B_global over the rows of ALL replicas, and its gradients;
3. the update (update.py): Adam, fused where it can be, loss scaling;
4. the trackers.

The batch-norm statistics (`synchronized=True`), the marginal q(z_d) of the
mutual information and every count are global (replicas.py), so 1 and N
replicas compute the same loss and gradients (tested).

The trackers report global means per example: loss = neg_elbo +
gamma * consistency - lambda * mutual_information, where consistency is the
sum over synthetic rows divided by B_global (its contribution to the loss).
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from tf_lifelong.model import inference, latents, replay_mix, replicas, student_objective, update
from tf_lifelong.model.replay_mix import ReplaySpec
from tf_lifelong.model.student_objective import ObjectiveSpec

TERMS = (
  "loss",
  "neg_elbo",
  "reconstruction",
  "kl_continuous",
  "kl_discrete",
  "consistency",
  "mutual_information",
  "decoder_distillation",
  "anchor",
)
"""Per-example terms reported by the training step (global means)."""

_TEST_TERMS = ("neg_elbo", "reconstruction", "kl_continuous", "kl_discrete")
"""The terms the test step reports (loss is neg_elbo there)."""


def _images(data):
  """Images from a batch that is images or (images, labels[, weights])."""
  if isinstance(data, (tuple, list)):
    data = data[0]
  return tf.cast(data, tf.float32)


@keras.saving.register_keras_serializable(package="tf_lifelong")
class LifelongVAE(keras.Model):
  """Student VAE with latent [z_d (J categories), z_c (F dims)] and an optional teacher.

  Build it inside the strategy scope it will train in (`student.new_student`,
  `handover.handover` do and also compile it; `student.assemble` makes every
  one from a run's Config).

  Args:
    encoder, decoder: built networks from `networks.build_networks` with J
      = `num_categories` (F is the encoder's continuous_dim).
    objective: the loss's weights and options, and the temperature schedule.
    replay: how the training step builds its batch (global size, synthetic
      pixels, binarisation).
    num_categories: J.
    image_shape: (H, W, C).
    teacher: a frozen LifelongVAE (set non-trainable here) or None.
    num_seen: k >= 0; needs a teacher when positive.
    seed: seed of the SeedGenerator (the run's config.seed).

  Attributes:
    encoder, decoder: the networks (`networks.build_networks`).
    objective, replay: the specs above.
    teacher: frozen LifelongVAE with J_T <= J categories, or None.
    num_categories: J.
    num_seen: k, distinct distributions seen before the current interval
      (0 for the first student); the synthetic fraction is k / (k + 1).
    student_step: this student's training steps (drives the temperature).
    anchor_component: int32 variable, the component the interval's real rows
      belong to, the target of the component anchor on them (-1: none;
      set by the hand-over's caller, saved in checkpoints).
  """

  def __init__(
    self,
    encoder,
    decoder,
    objective: ObjectiveSpec,
    replay: ReplaySpec,
    num_categories,
    image_shape,
    teacher=None,
    num_seen=0,
    *,
    seed: int,
    **kwargs,
  ):
    super().__init__(**kwargs)
    if num_seen > 0 and teacher is None:
      raise ValueError(f"num_seen={num_seen} needs a teacher to replay the seen distributions")
    self.encoder = encoder
    self.decoder = decoder
    self.objective = objective
    self.replay = replay
    self.num_categories = int(num_categories)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.continuous_dim = int(encoder.continuous_dim)
    self.arch = encoder.arch
    self.num_seen = int(num_seen) if teacher is not None else 0
    # R, the replicas of the strategy the model is built in: the batch splits over them.
    self.num_replicas = int(tf.distribute.get_strategy().num_replicas_in_sync)
    self.teacher = teacher
    if teacher is not None:
      teacher.trainable = False
    self.seed = int(seed)
    self.seed_generator = keras.random.SeedGenerator(self.seed)
    self.student_step = self.add_weight(
      shape=(),
      dtype="int64",
      initializer="zeros",
      trainable=False,
      name="student_step",
      aggregation="only_first_replica",
    )
    self.anchor_component = self.add_weight(
      shape=(),
      dtype="int32",
      initializer=keras.initializers.Constant(-1),
      trainable=False,
      name="anchor_component",
      aggregation="only_first_replica",
    )
    self.trackers = {
      name: keras.metrics.Mean(name=name) for name in (*TERMS, "temperature", "pi", "grad_norm")
    }
    self.built = True

  def get_config(self):
    serialize = keras.saving.serialize_keras_object
    return {
      "encoder": serialize(self.encoder),
      "decoder": serialize(self.decoder),
      "objective": self.objective.to_dict(),
      "replay": dataclasses.asdict(self.replay),
      "num_categories": self.num_categories,
      "image_shape": self.image_shape,
      "num_seen": self.num_seen,
      "teacher": None if self.teacher is None else serialize(self.teacher),
      "seed": self.seed,
      "name": self.name,
    }

  @classmethod
  def from_config(cls, config):
    """Rebuilds the model (networks built, weights fresh) from `get_config` output."""
    values = dict(config)
    for key in ("encoder", "decoder", "teacher"):
      if values.get(key) is not None:
        values[key] = keras.saving.deserialize_keras_object(values[key])
    for network in (values["encoder"], values["decoder"]):
      if not network.built:
        network.build_with_zeros()
    values["objective"] = ObjectiveSpec.from_dict(values["objective"])
    values["replay"] = ReplaySpec(**values["replay"])
    return cls(**values)

  # ------------------------------------------------------------------ sizes
  @property
  def replay_fraction(self) -> float:
    """pi = r k / (r k + 1) (k / (k + 1) with method.md's r = 1), or the fixed f."""
    return replay_mix.replay_fraction(self.num_seen, self.replay.weight, self.replay.fraction)

  def synthetic_batch_size(self, global_batch_size: int) -> int:
    """Synthetic rows in a global batch of B: round(B r k / (r k + 1)) with one replica.

    Under a strategy of R replicas, a multiple of R, at most B - R
    (replay_mix.synthetic_batch_size). The training step adds this many rows
    (split evenly over the replicas) for B = self.replay.batch_size, whatever
    the size of the real batch it gets.
    """
    return replay_mix.synthetic_batch_size(
      self.num_seen,
      global_batch_size,
      self.replay.weight,
      self.num_replicas,
      self.replay.fraction,
    )

  def real_batch_size(self, global_batch_size: int) -> int:
    """B - synthetic_batch_size(B): the batch size of the real data pipeline."""
    return global_batch_size - self.synthetic_batch_size(global_batch_size)

  # --------------------------------------------------------------- Keras API
  @property
  def metrics(self):
    return list(self.trackers.values())

  @property
  def student_variables(self):
    """The trainable variables of the student's own networks (never the teacher's)."""
    return self.encoder.trainable_weights + self.decoder.trainable_weights

  def call(self, x, training=False):
    """Deterministic reconstruction logits [B, H, W, C]: z = [one_hot(argmax l), mu]."""
    return inference.reconstruction_logits(
      lambda images: self.encoder(images, training=training),
      lambda z: self.decoder(z, training=training),
      self.num_categories,
      x,
    )

  def encode(self, x):
    """(logits [B, J], loc [B, F], scale [B, F]) of q(z|x), inference mode."""
    return self.encoder(tf.cast(x, tf.float32), training=False)

  def temperature(self):
    """tau of the Gumbel-softmax at this student's current step."""
    return latents.temperature(self.student_step, self.objective.temperature)

  # ---------------------------------------------------------------- sampling
  def prior_latents(self, num: int, seed, component=None):
    """z = [z_d, z_c] [num, J + F]: z_d one-hot (uniform over J, or `component`), z_c ~ N(0, I).

    Args:
      num: rows to draw (Python int).
      seed: stateless seed [2].
      component: None (uniform over J) or a category index.
    """
    seed_d, seed_c = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z, _ = inference.prior_latents(
      num, self.num_categories, self.continuous_dim, seed_d, seed_c, component
    )
    return z

  def decode_prior(self, num: int, seed, component=None, training=False):
    """Decoder logits [num, H, W, C] for z ~ `prior_latents(num, seed, component)`."""
    return self.decoder(self.prior_latents(num, seed, component), training=training)

  def sample(self, num: int, component=None, seed=None):
    """Images in [0, 1], [num, H, W, C]: Bernoulli means sigmoid(decoder(z)), z ~ prior."""
    seed = inference.stateless_seed(self, seed)
    return tf.sigmoid(self.decode_prior(num, seed, component))

  # ------------------------------------------------------------------ replay
  def replay_batch(self, real, seed, with_latents=False):
    """This replica's synthetic rows appended to the real ones: `replay_mix.replay_batch`."""
    return replay_mix.replay_batch(self, real, seed, with_latents)

  def teacher_samples(self, num: int, seed=None):
    """Synthetic images of the teacher, [num, H, W, C] (method.md section 5).

    z_d one-hot uniform over the teacher's J_T categories, z_c ~ N(0, I),
    x = sigmoid(teacher decoder logits), or x ~ Bernoulli(that) with
    self.replay.sample_pixels. `seed`: None (the student's generator), an int or a
    stateless [2] tensor.
    """
    return self.teacher_replay(num, seed)["x"]

  def teacher_replay(self, num: int, seed=None) -> dict[str, tf.Tensor]:
    """`teacher_samples` with what made them: `replay_mix.teacher_replay` (x, z, logits)."""
    return replay_mix.teacher_replay(self, num, seed)

  # -------------------------------------------------------------- objective
  def draw_noise(self, batch, seed):
    """Noise of one reparameterised sample: gumbel [B, J], normal [B, F]."""
    return student_objective.draw_noise(self.num_categories, self.continuous_dim, batch, seed)

  def per_example_terms(self, x, omega, noise, training=True, num_real=None, replay=None):
    """Named per-example terms [B] of the objective: `student_objective.per_example_terms`."""
    return student_objective.per_example_terms(self, x, omega, noise, training, num_real, replay)

  def loss_and_gradients(self, x, omega, noise, num_real=None, replay=None, loss_scale=None):
    """(loss, gradients, terms, global rows): `student_objective.loss_and_gradients`."""
    return student_objective.loss_and_gradients(self, x, omega, noise, num_real, replay, loss_scale)

  # ------------------------------------------------------------------ steps
  def _step_seed(self):
    """A fresh stateless seed per step, distinct on each replica."""
    seed = tf.cast(self.seed_generator.next(), tf.int64)
    index, _ = replicas.replica()
    return tf.random.experimental.stateless_fold_in(seed, index)

  def train_step(self, data):
    """One step: replay, loss, gradients, update, trackers; all inside the compiled graph.

    Performance (docs/performance.md): the teacher's encoder sees only the
    synthetic rows (`num_real`), and a plain Adam is applied with one fused
    kernel per variable (update.py, fused_adam.py).
    """
    seed_replay, seed_bin, seed_noise = tf.unstack(
      tf.random.experimental.stateless_split(self._step_seed(), 3)
    )
    real = _images(data)
    num_real = real.shape[0] if real.shape[0] is not None else tf.shape(real)[0]
    latents_needed = self.objective.decoder_distillation > 0 or self.objective.anchor_weight > 0
    x, omega, *made = self.replay_batch(real, seed_replay, with_latents=latents_needed)
    if self.replay.binarize:
      x = replay_mix.binarize(x, seed_bin)
    noise = self.draw_noise(tf.shape(x)[0], seed_noise)
    tau = self.temperature()
    scale = update.loss_scale(self.optimizer)
    _, grads, terms, count = self.loss_and_gradients(
      x, omega, noise, num_real=num_real, replay=made[0] if made else None, loss_scale=scale
    )
    update.apply(self.optimizer, grads, self.student_variables)
    self.student_step.assign_add(1)
    means = self._track_means(TERMS, terms, count, extra=[tf.reduce_sum(1.0 - omega)])
    self.trackers["pi"].update_state(means[-1])
    self.trackers["temperature"].update_state(tau)
    update.track_gradient_norm(self.trackers["grad_norm"], grads, scale)
    return replicas.step_logs(self.metrics)

  def test_step(self, data):
    """-ELBO with a hard z_d on real rows (method.md section 3); updates the ELBO trackers.

    The pixels are the Bernoulli targets as given, binarize or not: like every score
    (validation, test, Learner.evaluate, the export); --binarize binarises training batches.
    """
    _, seed = tf.unstack(tf.random.experimental.stateless_split(self._step_seed(), 2))
    x = _images(data)
    terms = inference.neg_elbo_terms(self, x, "sample", seed)
    means = self._track_means(_TEST_TERMS, terms, replicas.global_rows(x))
    self.trackers["loss"].update_state(means[0])
    return replicas.step_logs(self.metrics)

  def _track_means(self, names, terms, count, extra=()):
    """Adds the global means of `terms[name]` to their trackers; returns them, then extra's.

    One all-reduce of [sum_b terms[name]_b for names] + extra (sums too),
    divided by the global row count `count`.
    """
    sums = tf.stack([tf.reduce_sum(terms[name]) for name in names] + list(extra))
    means = tf.unstack(replicas.all_reduce_sum(sums) / count)
    for name, value in zip(names, means):
      self.trackers[name].update_state(value)
    return means
