"""Encoders and decoders: shapes, grown layers, checkpoint tracking (method.md section 2)."""

import numpy as np
import pytest
import tensorflow as tf

from tf_lifelong.model import networks

from .conftest import IMAGE_SHAPE, make_config

B, J, F = 6, 3, 4


def test_mlp_shapes_and_layers():
  config = make_config()
  enc, dec = networks.build_networks(networks.NetworkSpec.of(config, "mlp"), IMAGE_SHAPE, J, F)
  logits, loc, scale = enc(np.random.rand(B, *IMAGE_SHAPE).astype(np.float32), training=True)
  assert (logits.shape, loc.shape, scale.shape) == ((B, J), (B, F), (B, F))
  assert np.all(scale.numpy() > 0)
  assert dec(np.zeros((B, J + F), np.float32)).shape == (B, *IMAGE_SHAPE)
  assert enc.latent_projection.kernel.shape == (9, J + 2 * F)
  assert dec.latent_input.kernel.shape == (J + F, 9)
  assert dec.output_layer.kernel.shape == (9, 35)
  assert enc.grown_layer is enc.latent_projection and dec.grown_layer is dec.latent_input
  assert len(enc.trainable_weights) == 10 and len(dec.trainable_weights) == 10


def test_conv_shapes_for_32x32x3():
  config = make_config(conv_filters=2)
  enc, dec = networks.build_networks(networks.NetworkSpec.of(config, "conv"), (32, 32, 3), J, F)
  x = np.random.rand(2, 32, 32, 3).astype(np.float32)
  logits, loc, scale = enc(x)
  assert (logits.shape, loc.shape, scale.shape) == ((2, J), (2, F), (2, F))
  assert dec(np.zeros((2, J + F), np.float32), training=True).shape == (2, 32, 32, 3)
  assert [enc.conv_1.filters, enc.conv_2.filters, enc.conv_3.filters, enc.conv_4.filters] == [
    2,
    4,
    8,
    16,
  ]
  assert enc.latent_projection.kernel.shape == (1, 1, 16, J + 2 * F)
  assert dec.latent_input.kernel.shape == (1, 1, J + F, 16)
  assert [dec.deconv_1.filters, dec.deconv_2.filters, dec.deconv_3.filters] == [8, 4, 2]
  with pytest.raises(ValueError, match="power-of-two"):
    networks.build_networks(networks.NetworkSpec.of(config, "conv"), (28, 28, 1), J, F)
  with pytest.raises(ValueError, match="arch"):
    networks.build_networks(networks.NetworkSpec.of(config, "rnn"), IMAGE_SHAPE, J, F)


def test_checkpoint_tracks_every_variable(tmp_path):
  config = make_config()
  enc, dec = networks.build_networks(networks.NetworkSpec.of(config, "mlp"), IMAGE_SHAPE, J, F)
  path = tf.train.Checkpoint(encoder=enc, decoder=dec).write(str(tmp_path / "nets"))
  names = [name for name, _ in tf.train.list_variables(path) if "OPTIMIZER" not in name]
  assert len([n for n in names if n.endswith(".ATTRIBUTES/VARIABLE_VALUE")]) == len(
    enc.weights
  ) + len(dec.weights)
  enc2, dec2 = networks.build_networks(networks.NetworkSpec.of(config, "mlp"), IMAGE_SHAPE, J, F)
  tf.train.Checkpoint(encoder=enc2, decoder=dec2).read(path).assert_consumed()
  for a, b in zip(enc.weights + dec.weights, enc2.weights + dec2.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
