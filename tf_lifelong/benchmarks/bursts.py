"""The bursts the step benchmarks time, and the models and data they run on.

- `train_burst`: training steps of a compiled model, through Keras' train
  function (what `fit` runs per step, without fit's callbacks);
- `matmul_burst`: the step's matmuls alone (flops.matmul_step_plan), in a
  given dtype;
- `pipeline_burst`: batches of the training input pipeline alone.

`students` builds the benchmarked models (the student with a teacher after
hand-overs, and the plain VAE), `real_rows` the pipeline of their real rows,
`random_images` a batch of noise for steps whose speed is all that counts.
The step benchmark (steps.py) and the scaling benchmark
(scaling.py) both time these.
"""

from __future__ import annotations

import math

import numpy as np

from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks.flops import Matmul
from tf_lifelong.benchmarks.measuring import Burst


def students(config: config_lib.Config, image_shape, categories: int):
  """(student with teacher, k = categories - 1; plain VAE with J = categories), compiled."""
  from tf_lifelong.model import handover  # noqa: PLC0415
  from tf_lifelong.model import student as student_lib  # noqa: PLC0415

  before = student_lib.new_student(config, image_shape, categories - 1)
  lgm = handover.handover(before, is_new=True, config=config)
  plain = student_lib.new_student(config, image_shape, categories)
  return lgm, plain


def random_images(image_shape, rows: int, seed: int):
  """An endless dataset of one batch of uniform [0, 1) images [rows, H, W, C] (speed only)."""
  import tensorflow as tf  # noqa: PLC0415

  images = np.random.default_rng(seed).random((rows, *image_shape), dtype=np.float32)
  return tf.data.Dataset.from_tensors(images).repeat()


def real_rows(split, rows: int, seed: int):
  """The training pipeline of train_interval, batches of `rows` real images."""
  from tf_lifelong.data import streams  # noqa: PLC0415

  return streams.as_dataset(
    split, rows, shuffle=True, seed=seed, repeat=True, drop_remainder=True
  ).map(lambda x, y: x)


def train_burst(name: str, model, dataset, steps: int) -> Burst:
  """Times `steps` training steps of a compiled model through its Keras train function."""
  spe = model.steps_per_execution
  calls = max(1, math.ceil(steps / spe))
  if not model.optimizer.built:
    model.optimizer.build(model.trainable_variables)  # What fit does before its first step.
  model.make_train_function()
  iterator = iter(dataset)
  function = model.train_function
  for _ in range(2):  # Tracing (and XLA compilation) happen here, outside the timing.
    function(iterator)

  def run():
    logs = None
    for _ in range(calls):
      logs = function(iterator)
    float(logs["loss"])

  return Burst(name, calls * spe, run)


def matmul_burst(
  plan: list[Matmul], steps: int, seed: int, dtype: str = "float32", name: str = "matmul"
) -> Burst:
  """Times the step's matmuls alone: `steps` repetitions of the whole plan.

  `dtype`: the operands' dtype (bfloat16 / float16: the matmuls of a mixed policy).
  """
  import tensorflow as tf  # noqa: PLC0415

  rng = np.random.default_rng(seed)

  def operand(rows, cols):
    return tf.cast(tf.constant(rng.standard_normal((rows, cols)).astype(np.float32)), dtype)

  pairs = []
  for m in plan:
    a = operand(m.k, m.m) if m.transpose_a else operand(m.m, m.k)
    b = operand(m.n, m.k) if m.transpose_b else operand(m.k, m.n)
    pairs.append((a, b, m.transpose_a, m.transpose_b))

  @tf.function
  def once():
    # Each product is consumed (one element), so none is pruned away.
    return tf.add_n(
      [
        tf.cast(tf.matmul(a, b, transpose_a=ta, transpose_b=tb)[0, 0], tf.float32)
        for a, b, ta, tb in pairs
      ]
    )

  float(once())

  def run():
    out = None
    for _ in range(steps):
      out = once()
    float(out)

  return Burst(name, steps, run)


def pipeline_burst(name: str, split, batch_size: int, batches: int, seed: int) -> Burst:
  """Times `batches` batches of the training pipeline, consumed inside TensorFlow."""
  import tensorflow as tf  # noqa: PLC0415

  from tf_lifelong.data import streams  # noqa: PLC0415

  dataset = streams.as_dataset(
    split, batch_size, shuffle=True, seed=seed, repeat=True, drop_remainder=True
  )
  iterator = iter(dataset)

  @tf.function
  def drain(n):
    count = tf.constant(0, tf.int64)
    for _ in tf.range(n):
      images, _ = next(iterator)
      count += tf.cast(tf.shape(images)[0], tf.int64)
    return count

  n = tf.constant(batches, tf.int64)
  drain(n)

  def run():
    int(drain(n))

  return Burst(name, batches, run)
