"""1 vs 2 replicas of a student with a teacher; run as a subprocess by test_replicas.py.

Logical CPU devices must be configured before TensorFlow initialises, hence a
separate process. Prints one JSON line with:
- loss_1, loss_2: the loss of one device on the global batch and the sum of
  the two replicas' losses on its halves (same rows, omega and noise);
- grad_max_abs_diff, grad_max_abs: over all gradient entries;
- fit_pi, fit_loss, teacher_max_change, student_max_change, fit_steps: `model.fit`
  under MirroredStrategy.
"""

import json
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tf_lifelong.config import Config  # noqa: E402
from tf_lifelong.model.handover import handover, new_student  # noqa: E402

B, F, IMAGE = 8, 4, (5, 7, 1)


def make_student(strategy, config, rng_seed):
  """A J = 2 student (after a hand-over from a trained-free J = 1 student) and its teacher."""
  with strategy.scope():
    first = new_student(config, IMAGE)
    for var in first.encoder.trainable_weights + first.decoder.trainable_weights:
      var.assign(np.random.default_rng(rng_seed + len(var.path)).normal(0, 0.3, var.shape))
    return handover(first, is_new=True, config=config)


def copy_weights(src, dst):
  for a, b in zip(src.weights, dst.weights):
    b.assign(a.value)


def main():
  config = Config(
    continuous_dim=F,
    hidden_units=9,
    batch_size=B,
    learning_rate=1e-3,
    consistency_gaussian=True,
    mi_weight=2.0,
    consistency_weight=1.5,
    seed=3,
  )
  one = tf.distribute.OneDeviceStrategy("/cpu:0")
  two = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  single = make_student(one, config, 0)
  mirrored = make_student(two, config, 1)
  copy_weights(single, mirrored)

  rng = np.random.default_rng(0)
  x = rng.uniform(size=(B, *IMAGE)).astype(np.float32)
  omega = np.array([1, 1, 0, 0, 1, 0, 1, 1], np.float32)
  noise = {
    "gumbel": rng.gumbel(size=(B, 2)).astype(np.float32),
    "normal": rng.normal(size=(B, F)).astype(np.float32),
  }

  with one.scope():
    loss_1, grads_1, _, _ = tf.function(single.loss_and_gradients)(x, omega, noise)

  def shard(value):
    half = len(value) // 2
    return two.experimental_distribute_values_from_function(
      lambda ctx: value[
        ctx.replica_id_in_sync_group * half : (ctx.replica_id_in_sync_group + 1) * half
      ]
    )

  dist = (shard(x), shard(omega), {k: shard(v) for k, v in noise.items()})

  @tf.function
  def replicated(x, omega, noise):
    loss, grads, _, _ = two.run(mirrored.loss_and_gradients, args=(x, omega, noise))
    reduce = lambda v: two.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)  # noqa: E731
    return reduce(loss), [reduce(g) for g in grads]

  loss_2, grads_2 = replicated(*dist)
  diffs = [np.abs(a.numpy() - b.numpy()).max() for a, b in zip(grads_1, grads_2)]
  scale = max(np.abs(g.numpy()).max() for g in grads_1)

  before = [w.numpy().copy() for w in mirrored.teacher.weights]
  student_before = [w.numpy().copy() for w in mirrored.student_variables]
  data = tf.data.Dataset.from_tensor_slices(
    rng.uniform(size=(4 * mirrored.real_batch_size(B), *IMAGE)).astype(np.float32)
  )
  history = mirrored.fit(
    data.batch(mirrored.real_batch_size(B), drop_remainder=True), epochs=1, verbose=0
  )
  change = max(np.abs(b - w.numpy()).max() for b, w in zip(before, mirrored.teacher.weights))
  moved = max(
    np.abs(b - w.numpy()).max() for b, w in zip(student_before, mirrored.student_variables)
  )
  print(
    json.dumps(
      {
        "loss_1": float(loss_1),
        "loss_2": float(loss_2),
        "grad_max_abs_diff": float(max(diffs)),
        "grad_max_abs": float(scale),
        "num_grads": len(grads_1),
        "fit_pi": float(history.history["pi"][-1]),
        "fit_loss": float(history.history["loss"][-1]),
        "expected_pi": mirrored.synthetic_batch_size(B) / B,
        "teacher_max_change": float(change),
        "student_max_change": float(moved),
        "fit_steps": int(mirrored.optimizer.iterations.numpy()),
        "replicas": two.num_replicas_in_sync,
      }
    )
  )


if __name__ == "__main__":
  sys.exit(main())
