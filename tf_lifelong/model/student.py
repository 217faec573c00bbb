"""The student: a VAE with discrete + continuous latents trained with replay.

method.md sections 4-5; Ramapuram, Gregorova, Kalousis, "Lifelong Generative
Modeling", section 4 (student-teacher, eq. 3), section 4.1 (mutual
information). The frozen teacher (a previous student, `handover.py`) generates
the synthetic share of every batch inside the compiled training step.

One training step, with b real rows and k distinct distributions seen before
the current one:

1. n_syn synthetic rows from the teacher: z_d one-hot uniform over its J_T
   categories, z_c ~ N(0, I_F), x = sigmoid(teacher decoder logits) (the
   Bernoulli mean; Bernoulli pixels with `replay_sample_pixels`). With
   `synthetic_batch_size(B) = round(B k / (k + 1))` the synthetic fraction is
   pi = k / (k + 1) of the global batch B = config.batch_size; the data
   pipeline is batched with `real_batch_size(B)` rows.
2. omega = 1 on real rows, 0 on synthetic rows.
3. loss_b = -ELBO_b + gamma [omega_b = 0] KL(q_S(z_d|x_b) || q_T(z_d|x_b))
   - lambda mi_b, one reparameterised sample (relaxed z_d at temperature
   tau(t), t this student's own step counter).
4. loss = sum_b loss_b / B_global, B_global = real + synthetic rows of ALL
   replicas. Keras 3 sums the replicas' gradients, so dividing each
   replica's sum by the global count gives the gradient of the global mean,
   the same as one device on the whole batch. The batch-norm statistics
   (`synchronized=True`) and the marginal q(z_d) of the mutual information
   (an all-reduce of sum_b softmax(l_b)) are global too, so 1 and N replicas
   compute the same loss and gradients (tested).

The trackers report global means per example: loss = neg_elbo +
gamma * consistency - lambda * mutual_information, where consistency is the
sum over synthetic rows divided by B_global (its contribution to the loss).
"""

from __future__ import annotations

import logging
import math

import keras
import tensorflow as tf

from tf_lifelong import config as config_lib
from tf_lifelong.model import fused_adam, inference, latents, networks, objectives

TERMS = (
  "loss",
  "neg_elbo",
  "reconstruction",
  "kl_continuous",
  "kl_discrete",
  "consistency",
  "mutual_information",
  "decoder_distillation",
)
"""Per-example terms reported by the training step (global means)."""


def _all_reduce_sum(value):
  """Sum over the replicas in sync (identity on one replica or outside a replica context)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return value
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def _replica():
  """(replica id as a Python int, number of replicas in sync)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return 0, 1
  return int(tf.get_static_value(ctx.replica_id_in_sync_group)), ctx.num_replicas_in_sync


def _images(data):
  """Images from a batch that is images or (images, labels[, weights])."""
  if isinstance(data, (tuple, list)):
    data = data[0]
  return tf.cast(data, tf.float32)


def binarize(x, seed):
  """Dynamic binarisation: x_bin ~ Bernoulli(x) elementwise, stateless `seed` [2]."""
  return tf.cast(tf.random.stateless_uniform(tf.shape(x), seed) < x, x.dtype)


@keras.saving.register_keras_serializable(package="tf_lifelong")
class LifelongVAE(keras.Model):
  """Student VAE with latent [z_d (J categories), z_c (F dims)] and an optional teacher.

  Build it inside the strategy scope it will train in (`new_student`,
  `handover.handover` do and also compile it).

  Args:
    encoder, decoder: built networks from `networks.build_networks` with J
      = `num_categories` and F = config.continuous_dim.
    config: the run's Config (gamma, lambda, consistency options, teacher_pad_eps,
      temperature schedule, replay_sample_pixels, binarize, batch_size, seed).
    num_categories: J.
    image_shape: (H, W, C).
    teacher: a frozen LifelongVAE (set non-trainable here) or None.
    num_seen: k >= 0; needs a teacher when positive.
    seed: seed of the SeedGenerator (default config.seed).

  Attributes:
    encoder, decoder: the networks (`networks.build_networks`).
    teacher: frozen LifelongVAE with J_T <= J categories, or None.
    num_categories: J.
    num_seen: k, distinct distributions seen before the current interval
      (0 for the first student); the synthetic fraction is k / (k + 1).
    student_step: this student's training steps (drives the temperature).
  """

  def __init__(
    self,
    encoder,
    decoder,
    config,
    num_categories,
    image_shape,
    teacher=None,
    num_seen=0,
    seed=None,
    **kwargs,
  ):
    super().__init__(**kwargs)
    if num_seen > 0 and teacher is None:
      raise ValueError(f"num_seen={num_seen} needs a teacher to replay the seen distributions")
    self.encoder = encoder
    self.decoder = decoder
    self.config = config
    self.num_categories = int(num_categories)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.continuous_dim = int(config.continuous_dim)
    self.arch = encoder.arch
    self.num_seen = int(num_seen) if teacher is not None else 0
    self.teacher = teacher
    if teacher is not None:
      teacher.trainable = False
    self.seed_generator = keras.random.SeedGenerator(config.seed if seed is None else seed)
    self.temperature_schedule = latents.TemperatureSchedule.of(config)
    self.student_step = self.add_weight(
      shape=(),
      dtype="int64",
      initializer="zeros",
      trainable=False,
      name="student_step",
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
      "config": self.config.to_dict(),
      "num_categories": self.num_categories,
      "image_shape": self.image_shape,
      "num_seen": self.num_seen,
      "teacher": None if self.teacher is None else serialize(self.teacher),
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
    values["config"] = config_lib.Config.from_dict(values["config"])
    return cls(**values)

  # ------------------------------------------------------------------ sizes
  @property
  def replay_fraction(self) -> float:
    """pi = k / (k + 1)."""
    return self.num_seen / (self.num_seen + 1)

  def synthetic_batch_size(self, global_batch_size: int) -> int:
    """round(B k / (k + 1)) (half up) synthetic rows in a global batch of B, at most B - 1.

    The training step adds this many rows (split over the replicas) for
    B = config.batch_size, whatever the size of the real batch it gets.
    """
    if self.num_seen == 0:
      return 0
    n = int(global_batch_size * self.num_seen / (self.num_seen + 1) + 0.5)
    return min(n, global_batch_size - 1)

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
    return latents.temperature(self.student_step, self.temperature_schedule)

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

  def replay_batch(self, real, seed, with_latents=False):
    """Appends this replica's synthetic rows from the teacher to the real rows.

    Args:
      real: real images [b, H, W, C].
      seed: stateless seed [2].
      with_latents: also return the synthetic rows' latents and teacher logits.

    Returns:
      (x [b + n, H, W, C], omega [b + n]) with omega 1 on real, 0 on synthetic
      rows; with `with_latents` a third element, `teacher_replay`'s dict for the
      n synthetic rows (None without a teacher).
    """
    replica, replicas = _replica()
    total = self.synthetic_batch_size(self.config.batch_size)
    n = total // replicas + (1 if replica < total % replicas else 0)
    ones = tf.ones(tf.shape(real)[:1])
    if self.teacher is None or n == 0:
      return (real, ones, None) if with_latents else (real, ones)
    made = self.teacher_replay(n, seed)
    x, omega = tf.concat([real, made["x"]], 0), tf.concat([ones, tf.zeros([n])], 0)
    return (x, omega, made) if with_latents else (x, omega)

  def teacher_samples(self, num: int, seed=None):
    """Synthetic images of the teacher, [num, H, W, C] (method.md section 5).

    z_d one-hot uniform over the teacher's J_T categories, z_c ~ N(0, I),
    x = sigmoid(teacher decoder logits), or x ~ Bernoulli(that) with
    config.replay_sample_pixels. `seed`: None (the student's generator), an
    int or a stateless [2] tensor.
    """
    return self.teacher_replay(num, seed)["x"]

  def teacher_replay(self, num: int, seed=None) -> dict[str, tf.Tensor]:
    """`teacher_samples` with what made them.

    Returns:
      dict: x [num, H, W, C] (the synthetic images), z [num, J + F] (their
      latents in the student's layout: the teacher's one-hot z_d padded with
      zeros for the student's new categories, then z_c), logits [num, H, W, C]
      (the teacher decoder's Bernoulli logits at z).
    """
    if self.teacher is None:
      raise ValueError("this student has no teacher")
    seed_z, seed_x = tf.unstack(
      tf.random.experimental.stateless_split(inference.stateless_seed(self, seed), 2)
    )
    z = self.teacher.prior_latents(num, seed_z)
    logits = self.teacher.decoder(z, training=False)
    mean = tf.sigmoid(logits)
    grown = self.num_categories - self.teacher.num_categories
    z_d, z_c = z[:, : self.teacher.num_categories], z[:, self.teacher.num_categories :]
    z = tf.concat([tf.pad(z_d, [[0, 0], [0, grown]]), z_c], -1)
    x = binarize(mean, seed_x) if self.config.replay_sample_pixels else mean
    return {"x": x, "z": z, "logits": logits}

  def draw_noise(self, batch, seed):
    """Noise of one reparameterised sample: gumbel [B, J], normal [B, F]."""
    seed_d, seed_c = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    return {
      "gumbel": latents.gumbel_noise([batch, self.num_categories], seed_d),
      "normal": tf.random.stateless_normal([batch, self.continuous_dim], seed_c),
    }

  # -------------------------------------------------------------- objective
  def per_example_terms(self, x, omega, noise, training=True, num_real=None, replay=None):
    """Named per-example terms [B] of the student objective for a given batch and noise.

    Args:
      x: images [B, H, W, C] (real and synthetic rows; the Bernoulli targets).
      omega: [B], 1 real, 0 synthetic.
      noise: dict from `draw_noise` (gumbel [B, J], normal [B, F]).
      training: batch-norm mode of the student's networks.
      num_real: None, or the number of leading rows that are real (omega 1
        exactly on rows [0, num_real), as `replay_batch` lays them out). Then
        the teacher's encoder runs on the synthetic rows only, the only ones
        the masked consistency keeps; the terms are the same (a speed-up,
        method.md section 4 is unchanged).
      replay: None, or `teacher_replay`'s dict for the synthetic rows [num_real,
        B) (needs num_real): then the decoder also runs, in the same pass, on
        their latents z, and `decoder_distillation` holds
        objectives.decoder_distillation on those rows (an option beyond
        method.md, weighted by config.decoder_distillation in the loss).

    Returns:
      dict of [B]: reconstruction, kl_continuous, kl_discrete, neg_elbo,
      consistency (0 on real rows), mutual_information, conditional_entropy,
      decoder_distillation (0 on real rows, or everywhere without `replay`),
      loss. The marginal of the MI term is the global batch's.
    """
    logits, loc, scale = self.encoder(x, training=training)
    z_d = latents.relaxed_one_hot_sample(logits, self.temperature(), noise["gumbel"])
    z_c = latents.gaussian_sample(loc, scale, noise["normal"])
    z = tf.concat([z_d, z_c], -1)
    if replay is not None and num_real is None:
      raise ValueError("per_example_terms: `replay` needs `num_real`")
    if replay is None:
      dec = self.decoder(z, training=training)
      distill = tf.zeros(tf.shape(x)[:1])
    else:
      both = self.decoder(tf.concat([z, replay["z"]], 0), training=training)
      rows = tf.shape(z)[0]
      dec = both[:rows]
      distill = objectives.decoder_distillation(replay["logits"], both[rows:])
      distill = tf.concat([tf.zeros([num_real], distill.dtype), distill], 0)
    terms = objectives.neg_elbo_terms(x, dec, logits, loc, scale)
    terms["decoder_distillation"] = distill
    count = _all_reduce_sum(tf.cast(tf.shape(x)[0], tf.float32))
    marginal = _all_reduce_sum(objectives.batch_marginal_sum(logits)) / count
    terms.update(objectives.mutual_information_terms(logits, marginal))
    if self.teacher is None:
      terms["consistency"] = tf.zeros_like(terms["neg_elbo"])
    else:
      # With num_real, rows [num_real, B) are the synthetic ones: only they need
      # the teacher (the teacher's batch norm is in inference mode, so each row's
      # posterior does not depend on the others); real rows get 0 as the mask does.
      rows = (lambda t: t) if num_real is None else (lambda t: t[num_real:])
      t_logits, t_loc, t_scale = self.teacher.encoder(rows(x), training=False)
      gaussian = self.config.consistency_gaussian
      cons = objectives.consistency_terms(
        rows(logits),
        t_logits,
        eps=self.config.teacher_pad_eps,
        direction=self.config.consistency_kl,
        student_gaussian=(rows(loc), rows(scale)) if gaussian else None,
        teacher_gaussian=(t_loc, t_scale) if gaussian else None,
      )["consistency"]
      if num_real is not None:
        cons = tf.concat([tf.zeros([num_real], cons.dtype), cons], 0)
      terms["consistency"] = objectives.masked_consistency(cons, omega)
    terms["loss"] = objectives.student_loss(
      terms["neg_elbo"],
      terms["consistency"],
      terms["mutual_information"],
      omega,
      gamma=self.config.consistency_weight,
      lam=self.config.mi_weight,
      distillation=distill,
      delta=self.config.decoder_distillation,
    )
    return terms

  def loss_and_gradients(self, x, omega, noise, num_real=None, replay=None, loss_scale=None):
    """This replica's loss (sum / global batch size), its gradients and the terms.

    `num_real`, `replay`: see `per_example_terms`. `loss_scale`: None, or a
    scalar the loss is multiplied by before it is differentiated (mixed_float16's
    dynamic loss scale, so that small float16 gradients do not underflow); the
    gradients returned are then scaled by it, the loss is not.

    Returns:
      (loss scalar, gradients aligned with `student_variables`, terms dict,
      global row count). Summing loss and gradients over replicas gives those
      of one device on the whole batch.
    """
    with tf.GradientTape() as tape:
      terms = self.per_example_terms(
        x, omega, noise, training=True, num_real=num_real, replay=replay
      )
      count = _all_reduce_sum(tf.cast(tf.shape(x)[0], tf.float32))
      loss = tf.reduce_sum(terms["loss"]) / count
      scaled = loss if loss_scale is None else loss * tf.cast(loss_scale, loss.dtype)
    grads = tape.gradient(scaled, self.student_variables)
    return loss, grads, terms, count

  # ------------------------------------------------------------------ steps
  def _step_seed(self):
    """A fresh stateless seed per step, distinct on each replica."""
    seed = tf.cast(self.seed_generator.next(), tf.int64)
    replica, _ = _replica()
    return tf.random.experimental.stateless_fold_in(seed, replica)

  def train_step(self, data):
    """One step: replay, loss, gradients, update, trackers; all inside the compiled graph.

    Performance (docs/performance.md): the teacher's encoder sees only the
    synthetic rows (`num_real`), and a plain Adam is applied with one fused
    kernel per variable (fused_adam.py) instead of a dozen elementwise
    ops; the update is Keras' Adam formula.
    """
    seed_replay, seed_bin, seed_noise = tf.unstack(
      tf.random.experimental.stateless_split(self._step_seed(), 3)
    )
    real = _images(data)
    num_real = real.shape[0] if real.shape[0] is not None else tf.shape(real)[0]
    distill = self.config.decoder_distillation > 0
    x, omega, *made = self.replay_batch(real, seed_replay, with_latents=distill)
    if self.config.binarize:
      x = binarize(x, seed_bin)
    noise = self.draw_noise(tf.shape(x)[0], seed_noise)
    tau = self.temperature()
    replay = made[0] if made else None
    scale = _loss_scale(self.optimizer)
    _, grads, terms, count = self.loss_and_gradients(
      x, omega, noise, num_real=num_real, replay=replay, loss_scale=scale
    )
    # A LossScaleOptimizer (mixed_float16) is never fused: its `apply` unscales the
    # gradients and skips the step (halving the scale) when they are not finite.
    if not fused_adam.apply(self.optimizer, grads, self.student_variables):
      self.optimizer.apply(grads, self.student_variables)
    self.student_step.assign_add(1)
    sums = tf.stack([tf.reduce_sum(terms[name]) for name in TERMS] + [tf.reduce_sum(1.0 - omega)])
    means = tf.unstack(_all_reduce_sum(sums) / count)
    for name, value in zip(TERMS, means):
      self.trackers[name].update_state(value)
    self.trackers["pi"].update_state(means[-1])
    self.trackers["temperature"].update_state(tau)
    _, replicas = _replica()
    full_grads = _all_reduce_sum(grads) if replicas > 1 else grads
    norm = tf.linalg.global_norm(full_grads)
    if scale is None:
      self.trackers["grad_norm"].update_state(norm)
    else:  # The unscaled norm; a step the LossScaleOptimizer skipped (not finite) counts not.
      finite = tf.math.is_finite(norm)
      self.trackers["grad_norm"].update_state(
        tf.where(finite, norm / scale, 0.0), sample_weight=tf.cast(finite, tf.float32)
      )
    return _logs(self.metrics)

  def test_step(self, data):
    """-ELBO with a hard z_d on real rows (method.md section 3); updates the ELBO trackers."""
    seed_bin, seed = tf.unstack(tf.random.experimental.stateless_split(self._step_seed(), 2))
    x = _images(data)
    if self.config.binarize:
      x = binarize(x, seed_bin)
    terms = inference.neg_elbo_terms(self, x, "sample", seed)
    count = _all_reduce_sum(tf.cast(tf.shape(x)[0], tf.float32))
    names = ("neg_elbo", "reconstruction", "kl_continuous", "kl_discrete")
    sums = tf.stack([tf.reduce_sum(terms[name]) for name in names])
    means = tf.unstack(_all_reduce_sum(sums) / count)
    for name, value in zip(names, means):
      self.trackers[name].update_state(value)
    self.trackers["loss"].update_state(means[0])
    return _logs(self.metrics)


def _logs(metrics) -> dict[str, tf.Tensor]:
  """The step's logs: each metric's result (the same on every replica).

  Under MultiWorkerMirroredStrategy Keras reduces each log with
  `strategy.reduce(MEAN, value, axis=0)`, which needs an axis: there each result
  is given as a [1] vector, whose mean over the replicas is the result again.
  """
  strategy = tf.distribute.get_strategy()
  multi_worker = (
    isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    and strategy.extended._in_multi_worker_mode()
  )  # A private method, which Keras itself calls for this question.
  return {m.name: tf.reshape(m.result(), [1]) if multi_worker else m.result() for m in metrics}


def _loss_scale(optimizer):
  """The current loss scale of a LossScaleOptimizer (float32 scalar), None for any other."""
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return tf.convert_to_tensor(optimizer.scale_loss(1.0), tf.float32)
  return None


def compile_student(model: LifelongVAE, config) -> LifelongVAE:
  """Compiles `model` with a fresh Adam(config.learning_rate); returns it.

  Call inside the strategy scope the model was built in. jit_compile and
  steps_per_execution come from `config` (XLA fails under MirroredStrategy
  on CPU; see ../shared/docs/stack-notes.md). With config.precision mixed_float16 the
  Adam is wrapped in Keras' LossScaleOptimizer (dynamic loss scaling).
  """
  optimizer = keras.optimizers.Adam(config.learning_rate)
  if getattr(config, "precision", "float32") == "mixed_float16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  model.compile(
    optimizer=optimizer,
    jit_compile=config.jit_compile,
    steps_per_execution=effective_steps_per_execution(config),
  )
  return model


_said_spe = False


def effective_steps_per_execution(config) -> int:
  """config.steps_per_execution as it can be used; call in the strategy's scope.

  Training runs epochs of `eval_every` steps, the last one ending at
  `max_steps_per_interval`; Keras rounds an epoch up to a whole number of
  executions (25 steps at 10 per execution run 30), so the value used is
  gcd(steps_per_execution, eval_every, max_steps_per_interval) (and chunk_steps with
  boundaries=detect). With more than one
  replica it is 1: Keras 3.15's multi-step loop fails under MirroredStrategy
  with 2 replicas ("You must feed a value for placeholder tensor"). Either
  change is said once in the log.
  """
  global _said_spe
  asked = config.steps_per_execution
  spe, why = (
    math.gcd(asked, config.eval_every, config.max_steps_per_interval),
    f"it does not divide eval_every = {config.eval_every} or "
    f"max_steps_per_interval = {config.max_steps_per_interval}",
  )
  if getattr(config, "boundaries", "given") == "detect" and config.chunk_steps % spe:
    spe, why = (
      math.gcd(spe, config.chunk_steps),
      f"it does not divide chunk_steps = {config.chunk_steps}",
    )
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  if replicas > 1 and spe > 1:
    spe, why = 1, f"more than one step per execution fails with {replicas} replicas"
  if spe != asked and not _said_spe:
    _said_spe = True
    logging.getLogger(__name__).warning(
      "steps_per_execution: using %d, not %d: %s", spe, asked, why
    )
  return spe


def new_student(config, image_shape, num_categories: int = 1) -> LifelongVAE:
  """The first interval's model: a plain compiled VAE, no teacher, pi = 0.

  J = 1 for a lifelong run; the batch baseline starts with J = the number of
  distributions. Call inside the caller's strategy scope.
  """
  return build_student(config, image_shape, num_categories)


def build_student(
  config,
  image_shape,
  num_categories: int,
  *,
  arch: str | None = None,
  teacher_num_categories: int | None = None,
  num_seen: int = 0,
) -> LifelongVAE:
  """A compiled student with fresh networks (and a fresh frozen teacher of J_T categories).

  The one place a student is made from sizes alone: the first interval's
  (`new_student`), and the model a checkpoint is restored into. Call inside
  the caller's strategy scope.
  """
  spec = networks.NetworkSpec.of(config, arch)
  teacher = None
  if teacher_num_categories is not None:
    t_encoder, t_decoder = networks.build_networks(
      spec, image_shape, int(teacher_num_categories), config.continuous_dim
    )
    teacher = assemble(
      config, t_encoder, t_decoder, int(teacher_num_categories), image_shape, name="teacher"
    )
    teacher.trainable = False
  encoder, decoder = networks.build_networks(
    spec, image_shape, num_categories, config.continuous_dim
  )
  model = assemble(
    config, encoder, decoder, num_categories, image_shape, teacher=teacher, num_seen=num_seen
  )
  return compile_student(model, config)


def assemble(
  config,
  encoder,
  decoder,
  num_categories: int,
  image_shape,
  *,
  teacher: LifelongVAE | None = None,
  num_seen: int = 0,
  name: str | None = None,
) -> LifelongVAE:
  """A LifelongVAE (not compiled) around given networks: every student and teacher is made here."""
  kwargs = {} if name is None else {"name": name}
  return LifelongVAE(
    encoder,
    decoder,
    config,
    num_categories=num_categories,
    image_shape=tuple(image_shape),
    teacher=teacher,
    num_seen=num_seen,
    **kwargs,
  )


def without_teacher(model: LifelongVAE, config) -> LifelongVAE:
  """The same networks as a compiled student with no teacher and no replay.

  The naive sequential baseline: after the hand-over has grown J, training
  sees only the current interval's data (pi = 0, no consistency term).
  """
  plain = assemble(config, model.encoder, model.decoder, model.num_categories, model.image_shape)
  plain.seed_generator.state.assign(model.seed_generator.state.value)
  return compile_student(plain, config)
