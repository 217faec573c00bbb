"""Teacher freeze, student growth and weight transfer at a transition (method.md section 5).

Ramapuram, Gregorova, Kalousis, "Lifelong Generative Modeling", section 4:
when an interval ends, the student becomes the teacher and a new student
starts from its weights, with one more category of z_d if the next
distribution is new.

The count k of the new student (`num_seen`): the number of distinct
distributions seen before its interval. Each new distribution adds one
category and the first student has J = 1, so the old student's J = J_T counts
the distinct distributions seen so far, and k = J_T in both cases:

- new distribution: all J_T seen distributions differ from it; J = J_T + 1,
  pi = J_T / (J_T + 1): each of the J_T + 1 distributions gets 1 / (J_T + 1)
  of the batch (the teacher samples its J_T categories uniformly).
- repeat: the current distribution is one of the J_T seen ones; J = J_T and
  k = J_T (seen before the interval, it counts). The current distribution
  then gets its real share plus its share of the replay, 2 / (J_T + 1)
  against 1 / (J_T + 1) for each other one, the closest to equal
  representation that a teacher sampling uniformly over J_T allows (k =
  J_T - 1 would give the current one (2 J_T - 1) / J_T^2 against
  (J_T - 1) / J_T^2, further from equal).
"""

from __future__ import annotations

import keras
import numpy as np

from tf_lifelong.model.lifelong_vae import LifelongVAE
from tf_lifelong.model.networks import NetworkSpec, build_networks
from tf_lifelong.model.student import assemble, compile_student, new_student

__all__ = [
  "frozen_copy",
  "grow_slice",
  "handover",
  "new_student",
  "reset_batch_norm_statistics",
  "transfer_weights",
]


def _layer_pairs(old, new):
  """(old_layer, new_layer) for the direct sub-layers of two networks of the same class."""
  if type(old) is not type(new) or len(old.layers) != len(new.layers):
    raise ValueError(f"cannot transfer weights from {type(old).__name__} to {type(new).__name__}")
  return zip(old.layers, new.layers)


def grow_slice(old: np.ndarray, fresh: np.ndarray, axis: int, insert_at: int) -> np.ndarray:
  """Old values in the enlarged array; the new entries (at `insert_at`) keep `fresh`.

  Along `axis`, old indices [0, insert_at) stay in place and the following
  ones move up by the number of new entries (fresh.shape[axis] -
  old.shape[axis]). Other axes must match.
  """
  grown = fresh.shape[axis] - old.shape[axis]
  if grown < 0:
    raise ValueError(f"cannot shrink {old.shape} to {fresh.shape}")
  out = np.array(fresh, copy=True)
  moved_old = np.moveaxis(old, axis, 0)
  target = np.moveaxis(out, axis, 0)
  target[:insert_at] = moved_old[:insert_at]
  target[insert_at + grown :] = moved_old[insert_at:]
  return out


def transfer_weights(old, new, *, grow_init: str = "glorot", insert_at: int = 0) -> None:
  """Copies every weight of `old` whose shape is unchanged into `new`.

  Weights whose shape grew (only in `new.grown_layer`) keep the fresh Glorot
  (kernel) / zero (bias) initialisation of `new` with grow_init="glorot";
  with "keep_old" the old values are copied into the old slice and only the
  new rows/columns (inserted at index `insert_at`, the old J) keep it.
  """
  for old_layer, new_layer in _layer_pairs(old, new):
    for old_var, new_var in zip(old_layer.weights, new_layer.weights):
      if tuple(old_var.shape) == tuple(new_var.shape):
        new_var.assign(old_var.value)
        continue
      if new_layer is not new.grown_layer:
        raise ValueError(
          f"unexpected shape change in {new_layer.name}: {old_var.shape} -> {new_var.shape}"
        )
      if grow_init == "keep_old":
        axis = new.GROWN_KERNEL_AXIS if len(new_var.shape) > 1 else -1
        new_var.assign(grow_slice(old_var.numpy(), new_var.numpy(), axis, insert_at))
      elif grow_init != "glorot":
        raise ValueError(f"grow_init must be glorot or keep_old, not {grow_init!r}")


def reset_batch_norm_statistics(network) -> None:
  """Moving mean <- 0, moving variance <- 1 in every BatchNormalization layer."""
  for layer in network.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      layer.moving_mean.assign(np.zeros(layer.moving_mean.shape, "float32"))
      layer.moving_variance.assign(np.ones(layer.moving_variance.shape, "float32"))


def frozen_copy(model: LifelongVAE, config) -> LifelongVAE:
  """A teacher: a copy of `model`'s networks in new variables, without its teacher, frozen.

  Every variable (batch-norm statistics included) is copied; trainable is
  False, the student calls it with training=False and never gives its
  variables to the optimizer.
  """
  encoder, decoder = build_networks(
    NetworkSpec.of(config, model.arch),
    model.image_shape,
    model.num_categories,
    model.continuous_dim,
  )
  transfer_weights(model.encoder, encoder)
  transfer_weights(model.decoder, decoder)
  teacher = assemble(
    config, encoder, decoder, model.num_categories, model.image_shape, name="teacher"
  )
  teacher.trainable = False
  return teacher


def handover(student: LifelongVAE, *, is_new: bool, config) -> LifelongVAE:
  """The next interval's compiled student; call inside the caller's strategy scope.

  1. teacher <- frozen copy of `student` (separate variables);
  2. J <- J_T + 1 if `is_new` else J_T;
  3. every weight (variable) of unchanged shape copied from the student;
     the grown ones, encoder.latent_projection's kernel and bias and
     decoder.latent_input's kernel, per config.grow_init (glorot: fresh
     Glorot kernel, zero bias; keep_old: old slices kept). The bias of
     decoder.latent_input keeps its shape [width] and is copied;
  4. fresh Adam(config.learning_rate), batch-norm moving statistics reset,
     step counter (temperature) at 0, k = J_T (see the module docstring). The
     random stream continues from the student's.
  """
  j_teacher = student.num_categories
  j = j_teacher + 1 if is_new else j_teacher
  teacher = frozen_copy(student, config)
  encoder, decoder = build_networks(
    NetworkSpec.of(config, student.arch), student.image_shape, j, student.continuous_dim
  )
  for old, new in ((student.encoder, encoder), (student.decoder, decoder)):
    transfer_weights(old, new, grow_init=config.grow_init, insert_at=j_teacher)
    reset_batch_norm_statistics(new)
  model = assemble(
    config, encoder, decoder, j, student.image_shape, teacher=teacher, num_seen=j_teacher
  )
  model.seed_generator.state.assign(student.seed_generator.state.value)
  model.anchor_component.assign(j_teacher if is_new else -1)  # a repeat's: the caller's
  return compile_student(model, config)
