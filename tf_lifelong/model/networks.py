"""Encoders and decoders (method.md section 2; Ramapuram et al., section 6).

Encoder: x [B, H, W, C] -> (logits [B, J], loc [B, F], scale [B, F]) for
q(z_d|x) = Cat/Relaxed(softmax(logits)) and q(z_c|x) = N(loc, diag(scale^2)).
The last layer (`latent_projection`) outputs J + 2F numbers per example laid
out as [logits (J) | loc (F) | raw scale (F)], scale = softplus(raw) + 1e-6.

Decoder: z = [z_d, z_c] [B, J + F] -> Bernoulli logits [B, H, W, C]. Its first
layer (`latent_input`) reads the J + F inputs in that order.

Those two layers are the only ones whose shape depends on J; when a new
category is added at the hand-over, it is inserted at index J_T (after the old
categories) of the encoder's output axis and of the decoder's input axis
(`GROWN_LAYER`, `GROWN_KERNEL_AXIS`, `GROWN_BIAS` on each class).

Batch normalisation is synchronised across replicas (`synchronized=True`) so
that a step on N replicas sees the statistics of the global batch, as on one
device. Every layer is its own attribute so that checkpoints track it.

Precision (config.precision): every layer of a network takes the network's own
dtype policy (`float32`, `mixed_bfloat16` or `mixed_float16`), never the
process-global one, so two models in one process may differ. Under a mixed
policy the variables stay float32 (so do checkpoints), the dense and conv
layers compute in bfloat16/float16, batch norm computes in float32 (Keras
upcasts its inputs), and the networks cast what they return (logits, loc,
scale, decoder logits) to float32, so the TFP distributions and the objective
never see a low-precision tensor.
"""

from __future__ import annotations

import dataclasses
import math

import keras
from keras import layers, ops

from tf_lifelong.config import PRECISIONS
from tf_lifelong.model import latents

_INIT = "glorot_uniform"


def split_latent(out, num_categories: int, continuous_dim: int):
  """[B, J + 2F] -> float32 (logits [B, J], loc [B, F], scale [B, F]); scale = softplus + 1e-6."""
  j, f = num_categories, continuous_dim
  out = ops.cast(out, "float32")  # A no-op in float32; the way out of a mixed policy.
  return out[:, :j], out[:, j : j + f], latents.scale_from_raw(out[:, j + f : j + 2 * f])


def _norm(dtype):
  return layers.BatchNormalization(synchronized=True, dtype=dtype)


class _Network(keras.Model):
  """Common constructor arguments and config of the four networks."""

  arch = ""
  GROWN_LAYER = ""
  GROWN_KERNEL_AXIS = -1
  GROWN_BIAS = False

  def __init__(self, image_shape, num_categories, continuous_dim, width, dtype="float32", **kwargs):
    super().__init__(dtype=dtype, **kwargs)
    self.image_shape = tuple(int(d) for d in image_shape)
    self.num_categories = int(num_categories)
    self.continuous_dim = int(continuous_dim)
    self.width = int(width)

  def get_config(self):
    return {
      "image_shape": self.image_shape,
      "num_categories": self.num_categories,
      "continuous_dim": self.continuous_dim,
      "width": self.width,
      "name": self.name,
      "dtype": self.dtype_policy.name,
    }

  def build_with_zeros(self):
    """Creates the variables by calling the network once on zeros (inference mode)."""
    if self.GROWN_LAYER == "latent_projection":
      self(ops.zeros((1, *self.image_shape)), training=False)
    else:
      self(ops.zeros((1, self.num_categories + self.continuous_dim)), training=False)
    return self

  @property
  def grown_layer(self):
    """The layer whose shape depends on J (re-initialised when J grows)."""
    return getattr(self, self.GROWN_LAYER)


@keras.saving.register_keras_serializable(package="tf_lifelong")
class MlpEncoder(_Network):
  """D -> width -> width -> (J + 2F); dense + batch norm + ELU, linear projection.

  `width` is config.hidden_units (512 in the paper).
  """

  arch = "mlp"
  GROWN_LAYER = "latent_projection"
  GROWN_KERNEL_AXIS = -1  # kernel [width, J + 2F]
  GROWN_BIAS = True

  def __init__(self, image_shape, num_categories, continuous_dim, width, **kwargs):
    super().__init__(image_shape, num_categories, continuous_dim, width, **kwargs)
    dtype = self.dtype_policy
    self.flatten = layers.Flatten(dtype=dtype)
    self.hidden_1 = layers.Dense(self.width, kernel_initializer=_INIT, dtype=dtype)
    self.norm_1 = _norm(dtype)
    self.hidden_2 = layers.Dense(self.width, kernel_initializer=_INIT, dtype=dtype)
    self.norm_2 = _norm(dtype)
    self.latent_projection = layers.Dense(
      self.num_categories + 2 * self.continuous_dim, kernel_initializer=_INIT, dtype=dtype
    )

  def call(self, x, training=False):
    h = ops.elu(self.norm_1(self.hidden_1(self.flatten(x)), training=training))
    h = ops.elu(self.norm_2(self.hidden_2(h), training=training))
    return split_latent(self.latent_projection(h), self.num_categories, self.continuous_dim)


@keras.saving.register_keras_serializable(package="tf_lifelong")
class MlpDecoder(_Network):
  """(J + F) -> width -> width -> D Bernoulli logits; dense + batch norm + ELU."""

  arch = "mlp"
  GROWN_LAYER = "latent_input"
  GROWN_KERNEL_AXIS = -2  # kernel [J + F, width]
  GROWN_BIAS = False

  def __init__(self, image_shape, num_categories, continuous_dim, width, **kwargs):
    super().__init__(image_shape, num_categories, continuous_dim, width, **kwargs)
    dtype = self.dtype_policy
    self.latent_input = layers.Dense(self.width, kernel_initializer=_INIT, dtype=dtype)
    self.norm_1 = _norm(dtype)
    self.hidden_2 = layers.Dense(self.width, kernel_initializer=_INIT, dtype=dtype)
    self.norm_2 = _norm(dtype)
    self.output_layer = layers.Dense(
      math.prod(self.image_shape), kernel_initializer=_INIT, dtype=dtype
    )
    self.unflatten = layers.Reshape(self.image_shape, dtype=dtype)

  def call(self, z, training=False):
    h = ops.elu(self.norm_1(self.latent_input(z), training=training))
    h = ops.elu(self.norm_2(self.hidden_2(h), training=training))
    return ops.cast(self.unflatten(self.output_layer(h)), "float32")


def _num_downsamplings(image_shape) -> int:
  """Stride-2 layers taking H x W down to 4 x 4 (H == W, a power of two >= 8)."""
  h, w = image_shape[0], image_shape[1]
  if h != w or h < 8 or h & (h - 1):
    raise ValueError(
      f"conv networks need square images with a power-of-two side >= 8, got {tuple(image_shape)}"
    )
  return int(math.log2(h)) - 2


@keras.saving.register_keras_serializable(package="tf_lifelong")
class ConvEncoder(_Network):
  """Strided convolutions, filters doubling; 1 x 1 projection to the latent.

  For 32x32xC and width f (config.conv_filters): conv_1..conv_3 (4x4, stride
  2, f, 2f, 4f filters; 32 -> 16 -> 8 -> 4), conv_4 (4x4 valid, 8f; 4 -> 1),
  each with batch norm + ELU, then `latent_projection`, a 1x1 convolution to
  J + 2F channels (no activation).
  """

  arch = "conv"
  GROWN_LAYER = "latent_projection"
  GROWN_KERNEL_AXIS = -1  # kernel [1, 1, 8f, J + 2F]
  GROWN_BIAS = True

  def __init__(self, image_shape, num_categories, continuous_dim, width, **kwargs):
    super().__init__(image_shape, num_categories, continuous_dim, width, **kwargs)
    dtype = self.dtype_policy
    self.num_down = _num_downsamplings(self.image_shape)
    for i in range(1, self.num_down + 1):
      setattr(
        self,
        f"conv_{i}",
        layers.Conv2D(
          self.width * 2 ** (i - 1),
          4,
          strides=2,
          padding="same",
          kernel_initializer=_INIT,
          dtype=dtype,
        ),
      )
      setattr(self, f"norm_{i}", _norm(dtype))
    last = self.num_down + 1
    setattr(
      self,
      f"conv_{last}",
      layers.Conv2D(
        self.width * 2**self.num_down, 4, padding="valid", kernel_initializer=_INIT, dtype=dtype
      ),
    )
    setattr(self, f"norm_{last}", _norm(dtype))
    self.latent_projection = layers.Conv2D(
      self.num_categories + 2 * self.continuous_dim, 1, kernel_initializer=_INIT, dtype=dtype
    )

  def call(self, x, training=False):
    h = x
    for i in range(1, self.num_down + 2):
      h = getattr(self, f"conv_{i}")(h)
      h = ops.elu(getattr(self, f"norm_{i}")(h, training=training))
    out = ops.reshape(
      self.latent_projection(h), (-1, self.num_categories + 2 * self.continuous_dim)
    )
    return split_latent(out, self.num_categories, self.continuous_dim)


@keras.saving.register_keras_serializable(package="tf_lifelong")
class ConvDecoder(_Network):
  """1 x 1 input convolution, then transposed convolutions halving the filters.

  For 32x32xC and width f: z [B, J + F] viewed as [B, 1, 1, J + F];
  `latent_input` (1x1 conv, 8f), deconv_1 (4x4 valid, 4f; 1 -> 4),
  deconv_2, deconv_3 (stride 2, 2f, f; 4 -> 8 -> 16), each with batch norm +
  ELU, and `output_layer` (stride 2, C channels; 16 -> 32), Bernoulli logits.
  """

  arch = "conv"
  GROWN_LAYER = "latent_input"
  GROWN_KERNEL_AXIS = -2  # kernel [1, 1, J + F, 8f]
  GROWN_BIAS = False

  def __init__(self, image_shape, num_categories, continuous_dim, width, **kwargs):
    super().__init__(image_shape, num_categories, continuous_dim, width, **kwargs)
    dtype = self.dtype_policy
    self.num_down = _num_downsamplings(self.image_shape)
    n = self.num_down
    self.latent_input = layers.Conv2D(self.width * 2**n, 1, kernel_initializer=_INIT, dtype=dtype)
    self.norm_0 = _norm(dtype)
    self.deconv_1 = layers.Conv2DTranspose(
      self.width * 2 ** (n - 1), 4, padding="valid", kernel_initializer=_INIT, dtype=dtype
    )
    self.norm_1 = _norm(dtype)
    for i in range(2, n + 1):
      setattr(
        self,
        f"deconv_{i}",
        layers.Conv2DTranspose(
          self.width * 2 ** (n - i),
          4,
          strides=2,
          padding="same",
          kernel_initializer=_INIT,
          dtype=dtype,
        ),
      )
      setattr(self, f"norm_{i}", _norm(dtype))
    self.output_layer = layers.Conv2DTranspose(
      self.image_shape[-1], 4, strides=2, padding="same", kernel_initializer=_INIT, dtype=dtype
    )

  def call(self, z, training=False):
    h = ops.reshape(z, (-1, 1, 1, self.num_categories + self.continuous_dim))
    h = ops.elu(self.norm_0(self.latent_input(h), training=training))
    for i in range(1, self.num_down + 1):
      h = getattr(self, f"deconv_{i}")(h)
      h = ops.elu(getattr(self, f"norm_{i}")(h, training=training))
    return ops.cast(self.output_layer(h), "float32")


_NETWORKS = {"mlp": (MlpEncoder, MlpDecoder), "conv": (ConvEncoder, ConvDecoder)}


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
  """The networks' own settings: what `build_networks` needs besides the sizes."""

  arch: str
  """mlp or conv."""
  width: int
  """The mlp's hidden units, or the conv encoder's first-layer filters."""
  precision: str = "float32"
  """The Keras dtype policy of every layer (PRECISIONS)."""

  @classmethod
  def of(cls, config, arch: str | None = None) -> NetworkSpec:
    """The spec of a run's Config (`arch` overrides the config's resolved arch)."""
    arch = arch or config.resolved_arch
    width = config.hidden_units if arch == "mlp" else config.conv_filters
    return cls(arch, int(width), getattr(config, "precision", "float32"))


def build_networks(spec: NetworkSpec, image_shape, num_categories: int, continuous_dim: int):
  """Creates and builds an encoder/decoder pair (variables exist on return).

  Call inside the caller's distribution strategy scope.

  Args:
    spec: the architecture, its width and its dtype policy.
    image_shape: (H, W, C).
    num_categories: J, categories of z_d.
    continuous_dim: F, dimensions of z_c.

  Returns:
    (encoder, decoder): encoder(x [B,H,W,C], training) -> (logits [B,J],
    loc [B,F], scale [B,F]); decoder(z [B,J+F], training) -> logits [B,H,W,C];
    all outputs float32 whatever the precision.
  """
  arch, width, dtype = spec.arch, spec.width, spec.precision
  if arch not in _NETWORKS:
    raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(_NETWORKS)}")
  encoder_cls, decoder_cls = _NETWORKS[arch]
  if dtype not in PRECISIONS:
    raise ValueError(f"unknown precision {dtype!r}; choose one of {', '.join(PRECISIONS)}")
  sizes = (image_shape, num_categories, continuous_dim, width)
  encoder = encoder_cls(*sizes, name="encoder", dtype=dtype)
  decoder = decoder_cls(*sizes, name="decoder", dtype=dtype)
  return encoder.build_with_zeros(), decoder.build_with_zeros()
