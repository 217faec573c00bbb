"""Making students from a run's Config: the one place a Config becomes a LifelongVAE.

The student (lifelong_vae.py) gets only its own settings: the objective's
(`ObjectiveSpec.of(config)`), the replay mix's (`ReplaySpec.of(config)`), its
networks' (`networks.NetworkSpec.of(config, arch)`) and the seed. Here they are
taken from the run's Config, the networks built, and the model compiled with
the optimizer, jit and steps per execution the Config asks for: the first
interval's student (`new_student`), the model a checkpoint is restored into
(`build_student`), every student and teacher (`assemble`, which
`handover.py` calls too) and the naive baseline's (`without_teacher`).
"""

from __future__ import annotations

import logging
import math

import keras
import tensorflow as tf

from tf_lifelong.model import networks
from tf_lifelong.model.lifelong_vae import LifelongVAE
from tf_lifelong.model.replay_mix import ReplaySpec
from tf_lifelong.model.student_objective import ObjectiveSpec


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
  """A LifelongVAE (not compiled) around given networks: every student and teacher is made here.

  The student takes its objective's and replay's settings and `config.seed`.
  """
  kwargs = {} if name is None else {"name": name}
  return LifelongVAE(
    encoder,
    decoder,
    ObjectiveSpec.of(config),
    ReplaySpec.of(config),
    num_categories=num_categories,
    image_shape=tuple(image_shape),
    teacher=teacher,
    num_seen=num_seen,
    seed=config.seed,
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
