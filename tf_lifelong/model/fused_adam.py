"""Adam applied with TensorFlow's fused kernel: the training step's fast update.

Keras 3's Adam issues about a dozen elementwise ops per variable; TensorFlow's
ResourceApplyAdam does the same update in one pass over memory. `bin/benchmark`
measures what it buys (`lgm_fused_over_keras_adam_rate`, docs/performance.md,
"The fast step"). It reads three private parts of Keras' Adam, `_momentums`,
`_velocities` and `_get_variable_index`: where a Keras release changes them,
`apply` falls back to Keras' own update with a warning, and
tests/test_fast_step.py fails, naming them.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import logging

ENABLED = True
"""Read when the step is traced; False gives Keras' own Adam update (for comparisons)."""

KERAS_INTERNALS = ("_momentums", "_velocities", "_get_variable_index")
"""The private attributes of keras.optimizers.Adam that `apply` reads."""

_warned: list[str] = []


def keras_internals_present(optimizer) -> bool:
  """Whether `optimizer` (a built Adam) has every attribute of KERAS_INTERNALS; warns once if not."""
  missing = [name for name in KERAS_INTERNALS if not hasattr(optimizer, name)]
  if missing and not _warned:
    _warned.append(keras.__version__)
    logging.warning(
      "Keras %s's Adam lacks %s: the fused Adam update is off, Keras' own applies (slower)",
      keras.__version__,
      ", ".join(missing),
    )
  return not missing


def fusable(optimizer, grads, variables) -> bool:
  """Whether `apply` can do `optimizer`'s update of `variables` by `grads` exactly.

  Only for `keras.optimizers.Adam` itself with nothing on top (no clipping,
  weight decay, EMA, AMSGrad, gradient accumulation or loss scaling; a
  LossScaleOptimizer is another type), built, outside any distribution
  strategy, on dense float32 gradients (which mixed_bfloat16 gives: the
  variables stay float32), while Keras keeps the internals it reads
  (`keras_internals_present`); and while ENABLED.
  """
  blocked = (
    not ENABLED
    or type(optimizer) is not keras.optimizers.Adam
    or not optimizer.built
    or tf.distribute.has_strategy()
    or tf.distribute.in_cross_replica_context()
    or optimizer.amsgrad
    or optimizer.clipnorm
    or optimizer.clipvalue
    or optimizer.global_clipnorm
    or optimizer.weight_decay
    or optimizer.use_ema
    or optimizer.gradient_accumulation_steps
    or optimizer.loss_scale_factor
    or any(not isinstance(g, tf.Tensor) or g.dtype != tf.float32 for g in grads)
    or any(v.dtype != "float32" or getattr(v, "overwrite_with_gradient", False) for v in variables)
    or not keras_internals_present(optimizer)
  )
  return not blocked


def apply(optimizer, grads, variables) -> bool:
  """Applies a plain Adam with one fused kernel per variable; False if it cannot.

  Keras' Adam issues about a dozen elementwise ops per variable, each a pass
  over memory; TensorFlow's ResourceApplyAdam does the same update in one
  pass: alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t), m += (g - m)(1 -
  beta_1), v += (g^2 - v)(1 - beta_2), var -= alpha m / (sqrt(v) + epsilon),
  t = iterations + 1, on the optimizer's own m and v; then iterations += 1 as
  Keras does. The only difference is rounding: the kernel forms 1 - beta in
  float32 from the float32 beta (Keras rounds it from float64), so results
  agree with Keras' Adam to float32 rounding, like any fusion (XLA's too).

  Only where `fusable`; otherwise returns False and the caller uses
  `optimizer.apply`.
  """
  if not fusable(optimizer, grads, variables):
    return False
  with tf.name_scope("fused_adam"):
    local_step = tf.cast(optimizer.iterations + 1, tf.float32)
    beta_1 = tf.constant(optimizer.beta_1, tf.float32)
    beta_2 = tf.constant(optimizer.beta_2, tf.float32)
    epsilon = tf.constant(optimizer.epsilon, tf.float32)
    lr = tf.cast(optimizer.learning_rate, tf.float32)
    beta_1_power, beta_2_power = tf.pow(beta_1, local_step), tf.pow(beta_2, local_step)
    for grad, variable in zip(grads, variables):
      index = optimizer._get_variable_index(variable)
      tf.raw_ops.ResourceApplyAdam(
        var=variable.value.handle,
        m=optimizer._momentums[index].value.handle,
        v=optimizer._velocities[index].value.handle,
        beta1_power=beta_1_power,
        beta2_power=beta_2_power,
        lr=lr,
        beta1=beta_1,
        beta2=beta_2,
        epsilon=epsilon,
        grad=grad,
      )
    optimizer.iterations.assign_add(1)
  return True
