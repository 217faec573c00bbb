"""Shared fixtures of the model tests: tiny configs and numpy reference forward passes.

Dims are small and distinct so that shape mix-ups fail: B = 6, J = 3, F = 4,
images 5 x 7 x 1 (D = 35).
"""

import gzip
import os

import numpy as np
import pytest

from tf_lifelong.config import Config

from ..paths import MNIST_DIR

IMAGE_SHAPE = (5, 7, 1)


def make_config(**overrides) -> Config:
  """A tiny configuration: F = 4, 9 hidden units, batch 6, method.md's replay and loss.

  replay_weight 1 (every distribution seen has the same share, pi = k / (k + 1)):
  the tests count a batch's rows with that formula; test_student.py's replay-weight
  test sets others. decoder_distillation 0: the loss is method.md's, which the tests
  rebuild from its logged terms; the distillation tests set it. anchor_weight 0 for the
  same reason; the anchor's tests set it.
  """
  values = dict(
    replay_weight=1.0,
    decoder_distillation=0.0,
    anchor_weight=0.0,
    continuous_dim=4,
    hidden_units=9,
    conv_filters=4,
    batch_size=6,
    arch="mlp",
    learning_rate=1e-3,
    seed=7,
  )
  values.update(overrides)
  return Config(**values)


@pytest.fixture
def config():
  return make_config()


@pytest.fixture
def rng():
  return np.random.default_rng(1234)


def softplus(a):
  return np.logaddexp(0.0, a)


def log_softmax(a):
  a = a - a.max(-1, keepdims=True)
  return a - np.log(np.exp(a).sum(-1, keepdims=True))


def _dense(layer, h):
  kernel, bias = (w.numpy().astype(np.float64) for w in layer.weights)
  return h @ kernel + bias


def _bn_inference(layer, h):
  gamma, beta, mean, var = (w.numpy().astype(np.float64) for w in layer.weights)
  return (h - mean) / np.sqrt(var + layer.epsilon) * gamma + beta


def _elu(h):
  return np.where(h > 0, h, np.expm1(np.minimum(h, 0)))


def numpy_mlp_encoder(encoder, x):
  """Inference-mode forward pass of an MlpEncoder in float64: (logits, loc, scale)."""
  h = np.asarray(x, np.float64).reshape(len(x), -1)
  h = _elu(_bn_inference(encoder.norm_1, _dense(encoder.hidden_1, h)))
  h = _elu(_bn_inference(encoder.norm_2, _dense(encoder.hidden_2, h)))
  out = _dense(encoder.latent_projection, h)
  j, f = encoder.num_categories, encoder.continuous_dim
  return out[:, :j], out[:, j : j + f], softplus(out[:, j + f :]) + 1e-6


def numpy_mlp_decoder(decoder, z):
  """Inference-mode forward pass of an MlpDecoder in float64: logits [B, H, W, C]."""
  h = _elu(_bn_inference(decoder.norm_1, _dense(decoder.latent_input, np.asarray(z, np.float64))))
  h = _elu(_bn_inference(decoder.norm_2, _dense(decoder.hidden_2, h)))
  return _dense(decoder.output_layer, h).reshape((len(z),) + decoder.image_shape)


def randomize_batch_norm(network, rng):
  """Non-trivial BN parameters and moving statistics so that inference mode is tested."""
  for layer in network.layers:
    if layer.__class__.__name__ == "BatchNormalization":
      gamma, beta, mean, var = layer.weights
      gamma.assign(rng.uniform(0.5, 1.5, gamma.shape).astype(np.float32))
      beta.assign(rng.normal(0, 0.3, beta.shape).astype(np.float32))
      mean.assign(rng.normal(0, 0.5, mean.shape).astype(np.float32))
      var.assign(rng.uniform(0.5, 2.0, var.shape).astype(np.float32))


def _read_idx(path):
  with gzip.open(path, "rb") as f:
    data = f.read()
  ndim = data[3]
  dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(split: str):
  """(images [N, 28, 28, 1] float32 in [0, 1], labels [N]) from the IDX gz files."""
  prefix = "train" if split == "train" else "t10k"
  images = _read_idx(os.path.join(MNIST_DIR, f"{prefix}-images-idx3-ubyte.gz"))
  labels = _read_idx(os.path.join(MNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
  return (images[..., None] / 255.0).astype(np.float32), labels.astype(np.int64)


def randomize(network, rng, scale=0.4):
  """Random kernels/biases (so copies and hand computations are not trivially 0/1)."""
  for var in network.trainable_weights:
    var.assign(rng.normal(0, scale, var.shape).astype(np.float32))
  randomize_batch_norm(network, rng)


def make_student(config, num_categories, rng, teacher_categories=None):
  """A LifelongVAE with random weights; with a random teacher of `teacher_categories`."""
  from tf_lifelong.model import networks, student

  teacher = None
  if teacher_categories is not None:
    t_enc, t_dec = networks.build_networks(
      networks.NetworkSpec.of(config, "mlp"), IMAGE_SHAPE, teacher_categories, config.continuous_dim
    )
    randomize(t_enc, rng)
    randomize(t_dec, rng)
    teacher = student.assemble(config, t_enc, t_dec, teacher_categories, IMAGE_SHAPE)
  enc, dec = networks.build_networks(
    networks.NetworkSpec.of(config, "mlp"), IMAGE_SHAPE, num_categories, config.continuous_dim
  )
  randomize(enc, rng)
  randomize(dec, rng)
  model = student.assemble(
    config, enc, dec, num_categories, IMAGE_SHAPE, teacher=teacher, num_seen=teacher_categories or 0
  )
  return student.compile_student(model, config)
