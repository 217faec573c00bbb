"""The optimizer update of a training step: loss scaling, Adam (fused where it can be), grad norm.

A plain Adam is applied with one fused kernel per variable (fused_adam.py;
docs/performance.md) instead of a dozen elementwise ops; the update is Keras'
Adam formula. With config.precision mixed_float16 the optimizer is Keras'
LossScaleOptimizer: the loss is multiplied by its dynamic scale before it is
differentiated, and its own `apply` unscales the gradients and skips the step
(halving the scale) when they are not finite, so it is never fused.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_lifelong.model import fused_adam, replicas


def loss_scale(optimizer):
  """The current loss scale of a LossScaleOptimizer (float32 scalar), None for any other."""
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    return tf.convert_to_tensor(optimizer.scale_loss(1.0), tf.float32)
  return None


def apply(optimizer, grads, variables) -> None:
  """Applies `grads` to `variables`: the fused Adam where it can, else `optimizer.apply`."""
  if not fused_adam.apply(optimizer, grads, variables):
    optimizer.apply(grads, variables)


def track_gradient_norm(tracker, grads, scale) -> None:
  """Adds the global norm of the global (all-replica) gradients to `tracker`.

  `scale`: `loss_scale`'s value for the step (the gradients are scaled by it)
  or None. The norm tracked is the unscaled one; a step the LossScaleOptimizer
  skipped (not finite) counts not.
  """
  norm = tf.linalg.global_norm(replicas.all_reduce_sum(grads))
  if scale is None:
    tracker.update_state(norm)
  else:
    finite = tf.math.is_finite(norm)
    tracker.update_state(
      tf.where(finite, norm / scale, 0.0), sample_weight=tf.cast(finite, tf.float32)
    )
