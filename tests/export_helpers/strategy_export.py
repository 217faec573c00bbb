"""Exports a tiny model whose variables were created under MirroredStrategy.

Run as a script (it must configure two logical CPUs before TensorFlow starts):

  python strategy_export.py OUT_DIR

Builds the model under a 2-replica MirroredStrategy, exports it once from
inside the strategy scope (OUT_DIR/inside) and once from outside
(OUT_DIR/outside), and saves the parent's reference outputs (computed with the
model's own variables, outside any strategy) to OUT_DIR/reference.npz.
"""

import os
import sys

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tiny_model

from tf_lifelong.serving import export


def main(out_dir: str) -> None:
  """Builds, exports twice and writes the reference outputs."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  assert strategy.num_replicas_in_sync == 2
  with strategy.scope():
    encoder, decoder = tiny_model.build(seed=3)
  kinds = {type(v.value).__name__ for v in encoder.weights + decoder.weights}
  assert any("Mirrored" in k for k in kinds), kinds
  kwargs = dict(
    num_categories=tiny_model.J,
    continuous_dim=tiny_model.F,
    image_shape=(tiny_model.H, tiny_model.W, tiny_model.C),
    metadata={"strategy": "mirrored"},
  )
  with strategy.scope():
    export.export(encoder, decoder, path=os.path.join(out_dir, "inside"), **kwargs)
  export.export(encoder, decoder, path=os.path.join(out_dir, "outside"), **kwargs)
  x = np.random.default_rng(0).uniform(size=(4, tiny_model.H, tiny_model.W, 1)).astype("f4")
  logits, loc, scale = encoder(x, training=False)
  np.savez(
    os.path.join(out_dir, "reference.npz"),
    x=x,
    logits=logits.numpy(),
    loc=loc.numpy(),
    scale=scale.numpy(),
  )
  print("variable types:", sorted(kinds))


if __name__ == "__main__":
  main(sys.argv[1])
