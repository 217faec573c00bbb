"""The replay mix: a training batch of real rows and the frozen teacher's synthetic rows.

method.md section 5; Ramapuram, Gregorova, Kalousis, "Lifelong Generative
Modeling", section 4. With k distinct distributions seen before the current
one, a global batch of B rows holds n_syn = `synthetic_batch_size(k, B)` =
round(B k / (k + 1)) synthetic rows, so the synthetic fraction is pi = k / (k +
1) and every distribution seen gets the same share; the data pipeline is batched
with the other B - n_syn rows. `ReplaySpec.weight` = r (an extension, 1 in
method.md) gives each old distribution r times the new one's share: pi = r k /
(r k + 1); `ReplaySpec.fraction` = f > 0 (another extension) fixes pi = f for
every k >= 1 instead, the schedule of replay methods that add a replay batch of
the real batch's size (f = 1/2; Avalanche's generative replay). Each replica
appends its share of the synthetic rows to its real rows inside the compiled
step: z_d one-hot uniform over the teacher's J_T categories, z_c ~ N(0, I_F),
x = sigmoid(teacher decoder logits) (the Bernoulli mean; Bernoulli pixels with
`ReplaySpec.sample_pixels`). omega = 1 on real rows, 0 on synthetic rows.

Plain functions of a student (a `LifelongVAE` with `teacher`, `num_categories`,
`num_seen`, `replay` and `seed_generator`); its methods of the same names call
them.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_lifelong.model import inference, replicas


@dataclasses.dataclass(frozen=True)
class ReplaySpec:
  """How the training step builds its batch: the student's share of the run's Config."""

  batch_size: int
  """B, the global batch: real and synthetic rows of all replicas (config.batch_size)."""
  sample_pixels: bool
  """Synthetic pixels x ~ Bernoulli(teacher mean) rather than the mean (replay_sample_pixels)."""
  binarize: bool
  """Dynamic binarisation of every training batch (config.binarize); scores take the
  pixels as given (test_step, validation, test, Learner.evaluate, the export)."""
  weight: float = 1.0
  """r, each old distribution's share of the mix relative to the new one's (replay_weight)."""
  fraction: float = 0.0
  """f: 0, pi = r k / (r k + 1); f in (0, 1), pi = f whatever k >= 1 (replay_fraction)."""

  @classmethod
  def of(cls, config) -> ReplaySpec:
    """The spec of a run's Config (batch_size, replay_sample_pixels, binarize, replay_*)."""
    return cls(
      int(config.batch_size),
      bool(config.replay_sample_pixels),
      bool(config.binarize),
      float(config.replay_weight),
      float(config.replay_fraction),
    )


def binarize(x, seed):
  """Dynamic binarisation: x_bin ~ Bernoulli(x) elementwise, stateless `seed` [2]."""
  return tf.cast(tf.random.stateless_uniform(tf.shape(x), seed) < x, x.dtype)


def replay_fraction(num_seen: int, weight: float = 1.0, fraction: float = 0.0) -> float:
  """The synthetic share of a batch after k old distributions: r k / (r k + 1), or f.

  0 at k = 0 (no teacher); f whatever k >= 1 when `fraction` f > 0.
  """
  if num_seen == 0:
    return 0.0
  if fraction > 0:
    return fraction
  rk = weight * num_seen
  return rk / (rk + 1)


def synthetic_batch_size(
  num_seen: int,
  global_batch_size: int,
  weight: float = 1.0,
  replicas: int = 1,
  fraction: float = 0.0,
) -> int:
  """Synthetic rows in a global batch of B: R round(B r k / ((r k + 1) R)) (half up), at most B - R.

  A whole number of rows per replica, so that the real rows, B minus these, split
  evenly over the R replicas as well (B is a multiple of R, runtime.py checks it):
  every replica's batch has the same shape, which MirroredStrategy's and
  MultiWorkerMirroredStrategy's all-reduces need. With R = 1 it is round(B pi).

  Args:
    num_seen: k, the distinct distributions seen before the current one.
    global_batch_size: B.
    weight: r > 0, each old distribution's share relative to the new one's (1: k / (k + 1)).
    replicas: R, the replicas in sync that share the batch.
    fraction: f > 0 fixes pi = f for every k >= 1 (0: pi = r k / (r k + 1)).
  """
  if num_seen == 0:
    return 0
  per_replica = global_batch_size / replicas * replay_fraction(num_seen, weight, fraction)
  return min(int(per_replica + 0.5) * replicas, global_batch_size - replicas)


def teacher_replay(student, num: int, seed=None) -> dict[str, tf.Tensor]:
  """`num` synthetic rows of the student's teacher, with what made them.

  Args:
    student: a LifelongVAE with a teacher.
    num: rows (Python int).
    seed: None (the student's generator), an int or a stateless [2] tensor.

  Returns:
    dict: x [num, H, W, C] (the synthetic images), z [num, J + F] (their
    latents in the student's layout: the teacher's one-hot z_d padded with
    zeros for the student's new categories, then z_c), logits [num, H, W, C]
    (the teacher decoder's Bernoulli logits at z).
  """
  teacher = student.teacher
  if teacher is None:
    raise ValueError("this student has no teacher")
  seed_z, seed_x = tf.unstack(
    tf.random.experimental.stateless_split(inference.stateless_seed(student, seed), 2)
  )
  z = teacher.prior_latents(num, seed_z)
  logits = teacher.decoder(z, training=False)
  mean = tf.sigmoid(logits)
  grown = student.num_categories - teacher.num_categories
  z_d, z_c = z[:, : teacher.num_categories], z[:, teacher.num_categories :]
  z = tf.concat([tf.pad(z_d, [[0, 0], [0, grown]]), z_c], -1)
  x = binarize(mean, seed_x) if student.replay.sample_pixels else mean
  return {"x": x, "z": z, "logits": logits}


def replay_batch(student, real, seed, with_latents=False):
  """Appends this replica's synthetic rows from the teacher to the real rows.

  Args:
    student: a LifelongVAE (no rows are added without a teacher).
    real: real images [b, H, W, C].
    seed: stateless seed [2].
    with_latents: also return the synthetic rows' latents and teacher logits.

  Returns:
    (x [b + n, H, W, C], omega [b + n]) with omega 1 on real, 0 on synthetic
    rows; with `with_latents` a third element, `teacher_replay`'s dict for the
    n synthetic rows (None without a teacher).
  """
  n = replicas.share(student.synthetic_batch_size(student.replay.batch_size))
  ones = tf.ones(tf.shape(real)[:1])
  if student.teacher is None or n == 0:
    return (real, ones, None) if with_latents else (real, ones)
  made = student.teacher_replay(n, seed)
  x, omega = tf.concat([real, made["x"]], 0), tf.concat([ones, tf.zeros([n])], 0)
  return (x, omega, made) if with_latents else (x, omega)
