"""The student's objective on a training batch: per-example terms, loss and gradients.

method.md section 4; Ramapuram, Gregorova, Kalousis, "Lifelong Generative
Modeling", section 4 (student-teacher, eq. 3) and 4.1 (mutual information).
With omega from the replay mix (replay_mix.py), one reparameterised sample (relaxed
z_d at temperature tau(t), t the student's own step counter) and the frozen
teacher's posterior on the synthetic rows:

  loss_b = -ELBO_b + gamma [omega_b = 0] KL(q_S(z_d|x_b) || q_T(z_d|x_b))
           - lambda mi_b (+ delta [omega_b = 0] decoder distillation_b)
           (+ alpha anchor_b, anchor_b = -log q_S(z_d = c_b | x_b)),

where c_b is the row's component: the interval's (`LifelongVAE.anchor_component`)
on a real row, the one-hot z_d that made it on a synthetic row (an option beyond
method.md, `objectives.component_anchor`), and

where -ELBO_b's p(z_d) is uniform (method.md) or, with ObjectiveSpec.discrete_prior
= mix, the replay mix's categories' shares (`objectives.mix_log_prior`),

and loss = sum_b loss_b / B_global, B_global = real + synthetic rows of ALL
replicas. Keras 3 sums the replicas' gradients, so dividing each replica's sum
by the global count gives the gradient of the global mean, the same as one
device on the whole batch; the marginal q(z_d) of the mutual information (an
all-reduce of sum_b softmax(l_b)) is global too.

The math of each term is objectives.py's; here it meets the student's networks.
Plain functions of a student (a `LifelongVAE` with `encoder`, `decoder`,
`teacher`, `objective` and `temperature()`); its methods of the same names call
them.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_lifelong.model import latents, objectives, replicas


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
  """The student's loss: its weights, the consistency's options, the temperature schedule."""

  consistency_weight: float
  """gamma, the weight of the consistency on synthetic rows."""
  mi_weight: float
  """lambda, the weight of the mutual information (subtracted)."""
  decoder_distillation: float
  """delta, the weight of the decoder distillation on synthetic rows (0: off)."""
  consistency_kl: str
  """reverse KL(q_S || q_T) or forward KL(q_T || q_S)."""
  consistency_gaussian: bool
  """Whether the consistency adds the KL between the z_c posteriors."""
  teacher_pad_eps: float
  """The probability the padded teacher posterior gives each category it lacks."""
  temperature: latents.TemperatureSchedule
  """The Gumbel-softmax temperature of the relaxed z_d sample."""
  discrete_prior: str = "uniform"
  """p(z_d) in the training -ELBO: uniform (method.md) or mix (`objectives.mix_log_prior`)."""
  anchor_weight: float = 0.0
  """alpha, the weight of the component anchor (0: off, method.md)."""

  @classmethod
  def of(cls, config) -> ObjectiveSpec:
    """The spec of a run's Config (the fields of the same names, the tau_* schedule)."""
    return cls(
      consistency_weight=float(config.consistency_weight),
      mi_weight=float(config.mi_weight),
      decoder_distillation=float(config.decoder_distillation),
      consistency_kl=str(config.consistency_kl),
      consistency_gaussian=bool(config.consistency_gaussian),
      teacher_pad_eps=float(config.teacher_pad_eps),
      temperature=latents.TemperatureSchedule.of(config),
      discrete_prior=str(config.discrete_prior),
      anchor_weight=float(config.anchor_weight),
    )

  def to_dict(self) -> dict:
    """Plain values (the schedule a nested dict), for a Keras config."""
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, values: dict) -> ObjectiveSpec:
    """The spec `to_dict` gave."""
    values = dict(values)
    values["temperature"] = latents.TemperatureSchedule(**values["temperature"])
    values.setdefault("anchor_weight", 0.0)  # specs saved before the anchor existed
    return cls(**values)


def draw_noise(num_categories: int, continuous_dim: int, batch, seed) -> dict[str, tf.Tensor]:
  """Noise of one reparameterised sample: gumbel [B, J], normal [B, F]."""
  seed_d, seed_c = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
  return {
    "gumbel": latents.gumbel_noise([batch, num_categories], seed_d),
    "normal": tf.random.stateless_normal([batch, continuous_dim], seed_c),
  }


def per_example_terms(student, x, omega, noise, training=True, num_real=None, replay=None):
  """Named per-example terms [B] of the student objective for a given batch and noise.

  Args:
    student: the LifelongVAE whose objective this is.
    x: images [B, H, W, C] (real and synthetic rows; the Bernoulli targets).
    omega: [B], 1 real, 0 synthetic.
    noise: dict from `draw_noise` (gumbel [B, J], normal [B, F]).
    training: batch-norm mode of the student's networks.
    num_real: None, or the number of leading rows that are real (omega 1
      exactly on rows [0, num_real), as `replay_mix.replay_batch` lays them out).
      Then the teacher's encoder runs on the synthetic rows only, the only
      ones the masked consistency keeps; the terms are the same (a speed-up,
      method.md section 4 is unchanged).
    replay: None, or `replay_mix.teacher_replay`'s dict for the synthetic rows
      [num_real, B) (needs num_real): then the decoder also runs, in the same
      pass, on their latents z, and `decoder_distillation` holds
      objectives.decoder_distillation on those rows (an option beyond
      method.md, weighted by ObjectiveSpec.decoder_distillation in the loss);
      its one-hot z_d are the synthetic rows' targets of the component anchor.

  Returns:
    dict of [B]: reconstruction, kl_continuous, kl_discrete, neg_elbo,
    consistency (0 on real rows), mutual_information, conditional_entropy,
    decoder_distillation (0 on real rows, or everywhere without `replay`),
    anchor (0 with anchor_weight 0, on real rows without an interval
    component, and on synthetic rows without `replay`), loss. The marginal of the MI term is the global batch's.
  """
  encoded = student.encoder(x, training=training)
  if replay is not None and num_real is None:
    raise ValueError("per_example_terms: `replay` needs `num_real`")
  z = _relaxed_latents(student, encoded, noise)
  distilled = replay if student.objective.decoder_distillation > 0 else None
  dec, distill = _decode(student, z, training, distilled)
  if distilled is None:
    distill = tf.zeros(tf.shape(x)[:1])
  else:
    distill = tf.concat([tf.zeros([num_real], distill.dtype), distill], 0)
  logits, loc, scale = encoded
  count = replicas.global_rows(x)
  log_prior = _training_log_prior(student, omega, count)
  terms = objectives.neg_elbo_terms(x, dec, logits, loc, scale, log_prior)
  terms["decoder_distillation"] = distill
  marginal = replicas.all_reduce_sum(objectives.batch_marginal_sum(logits)) / count
  terms.update(objectives.mutual_information_terms(logits, marginal))
  terms["consistency"] = _consistency(student, x, encoded, omega, num_real)
  terms["anchor"] = _anchor(student, logits, omega, num_real, replay)
  terms["loss"] = _loss(student.objective, terms, omega)
  return terms


def _training_log_prior(student, omega, count):
  """None (uniform p(z_d)), or the replay mix's log p(z_d) [J] with `discrete_prior` = mix.

  The real fraction is the global batch's: sum of omega over all replicas / B_global.
  """
  if student.objective.discrete_prior != "mix" or student.teacher is None:
    return None
  real = replicas.all_reduce_sum(tf.reduce_sum(tf.cast(omega, tf.float32))) / count
  return objectives.mix_log_prior(student.num_categories, student.teacher.num_categories, real)


def _relaxed_latents(student, encoded, noise):
  """z = [z_d, z_c] [B, J + F]: the relaxed z_d at the student's temperature, z_c reparameterised."""
  logits, loc, scale = encoded
  z_d = latents.relaxed_one_hot_sample(logits, student.temperature(), noise["gumbel"])
  z_c = latents.gaussian_sample(loc, scale, noise["normal"])
  return tf.concat([z_d, z_c], -1)


def _decode(student, z, training, replay):
  """(decoder logits [B, H, W, C] at z, distillation [n] on the replay rows or None).

  With `replay` the decoder runs once on z and the synthetic rows' own latents.
  """
  if replay is None:
    return student.decoder(z, training=training), None
  both = student.decoder(tf.concat([z, replay["z"]], 0), training=training)
  rows = tf.shape(z)[0]
  return both[:rows], objectives.decoder_distillation(replay["logits"], both[rows:])


def _consistency(student, x, encoded, omega, num_real):
  """The masked consistency [B]: student vs teacher posterior on synthetic rows, 0 elsewhere.

  With num_real, rows [num_real, B) are the synthetic ones: only they need the
  teacher (the teacher's batch norm is in inference mode, so each row's
  posterior does not depend on the others); real rows get 0 as the mask does.
  """
  logits, loc, scale = encoded
  if student.teacher is None:
    return tf.zeros(tf.shape(logits)[:1], logits.dtype)
  spec = student.objective
  rows = (lambda t: t) if num_real is None else (lambda t: t[num_real:])
  t_logits, t_loc, t_scale = student.teacher.encoder(rows(x), training=False)
  gaussian = spec.consistency_gaussian
  cons = objectives.consistency_terms(
    rows(logits),
    t_logits,
    eps=spec.teacher_pad_eps,
    direction=spec.consistency_kl,
    student_gaussian=(rows(loc), rows(scale)) if gaussian else None,
    teacher_gaussian=(t_loc, t_scale) if gaussian else None,
  )["consistency"]
  if num_real is not None:
    cons = tf.concat([tf.zeros([num_real], cons.dtype), cons], 0)
  return objectives.masked_consistency(cons, omega)


def _anchor(student, logits, omega, num_real, replay):
  """The component anchor [B] (objectives.component_anchor); zeros when its weight is 0.

  Targets: on real rows (omega 1) one_hot(student.anchor_component), none where it
  is negative; on the synthetic rows [num_real, B) the one-hot z_d of `replay`'s
  latents, none without `replay`.
  """
  if not student.objective.anchor_weight:
    return tf.zeros(tf.shape(logits)[:1], logits.dtype)
  j = student.num_categories
  real = tf.one_hot(student.anchor_component, j, dtype=logits.dtype)  # zeros when < 0
  target = omega[:, tf.newaxis] * real[tf.newaxis, :]
  if replay is not None and num_real is not None:
    made = tf.cast(replay["z"][:, :j], logits.dtype)
    target = tf.concat([target[:num_real], made], 0)
  return objectives.component_anchor(logits, target)


def _loss(spec: ObjectiveSpec, terms, omega) -> tf.Tensor:
  """loss_b [B] from the terms, weighted by the spec (objectives.student_loss)."""
  return objectives.student_loss(
    terms["neg_elbo"],
    terms["consistency"],
    terms["mutual_information"],
    omega,
    gamma=spec.consistency_weight,
    lam=spec.mi_weight,
    distillation=terms["decoder_distillation"],
    delta=spec.decoder_distillation,
    anchor=terms["anchor"],
    alpha=spec.anchor_weight,
  )


def loss_and_gradients(student, x, omega, noise, num_real=None, replay=None, loss_scale=None):
  """This replica's loss (sum / global batch size), its gradients and the terms.

  `num_real`, `replay`: see `per_example_terms`. `loss_scale`: None, or a
  scalar the loss is multiplied by before it is differentiated (mixed_float16's
  dynamic loss scale, so that small float16 gradients do not underflow); the
  gradients returned are then scaled by it, the loss is not.

  Returns:
    (loss scalar, gradients aligned with `student.student_variables`, terms
    dict, global row count). Summing loss and gradients over replicas gives
    those of one device on the whole batch.
  """
  with tf.GradientTape() as tape:
    terms = student.per_example_terms(
      x, omega, noise, training=True, num_real=num_real, replay=replay
    )
    count = replicas.global_rows(x)
    loss = tf.reduce_sum(terms["loss"]) / count
    scaled = loss if loss_scale is None else loss * tf.cast(loss_scale, loss.dtype)
  grads = tape.gradient(scaled, student.student_variables)
  return loss, grads, terms, count
