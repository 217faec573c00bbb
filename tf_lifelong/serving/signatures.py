"""The serving module: a `tf.Module` whose `tf.function`s are the export's signatures.

`ServingModule` wraps a trained encoder and decoder; `export.py` saves it as a
SavedModel. Every op its functions trace is a plain TensorFlow op (the math is
`model/inference.py`'s, the KLs written out by hand), so the saved graph needs
neither tf_lifelong nor TensorFlow Probability to run.

Model contract (method.md section 2; J categories, F continuous dimensions,
images H x W x C):

- `encoder(x [B,H,W,C] float32 in [0,1], training=False)` returns
  `(logits [B,J], loc [B,F], scale [B,F])`: q(z_d|x) = Cat(softmax(logits)) at
  evaluation, q(z_c|x) = N(loc, diag(scale^2)).
- `decoder(z [B,J+F], training=False)` returns Bernoulli logits [B,H,W,C],
  with z = concat(one_hot(z_d), z_c).
- Priors: z_d uniform over the J categories, z_c ~ N(0, I_F).

Signatures (all inputs are required; a signature has no optional inputs):

- `sample(num_samples int32 [], component int32 [], seed int32 [])` ->
  `images` [N,H,W,C] (Bernoulli means sigmoid(decoder logits)), `component`
  [N] int32, `z_continuous` [N,F]. `component` in [0, J) decodes that category
  for every sample; -1 draws each sample's category uniformly over the J
  categories (every category counted in J is one the model has seen: J grows
  only when a new distribution arrives). z_c ~ N(0, I). The draws are
  stateless: the same (num_samples, component, seed) give the same output.
- `encode(images float32 [None,H,W,C])` -> `probs` [B,J] = softmax(logits),
  `component` [B] int32 = argmax, `mean` [B,F] = loc, `stddev` [B,F] = scale.
- `reconstruct(images)` -> `images` [B,H,W,C]: sigmoid(decoder(concat(
  one_hot(argmax logits), loc))).
- `elbo(images)` -> `neg_elbo` [B] in nats per example, and its terms
  `nll` [B], `kl_continuous` [B], `kl_discrete` [B] (see `ServingModule.elbo`).
- `metadata(key string [])` -> `json`: a scalar string, the JSON document also
  written to `assets/tf_lifelong.json` (read it with `read_metadata`, which
  needs no TensorFlow), and `value`: the JSON of the document's entry `key`
  (the whole document for `key=""`; an unknown key is refused). The input is
  there because `saved_model_cli run` and TF Serving cannot call a signature
  without inputs.
- `serving_default`: the same function as `elbo` (`DEFAULT_SIGNATURE_OF`), for
  clients that call the default signature (TF Serving without
  `signature_name`, `saved_model_cli run --signature_def serving_default`).

Refused inputs (all raise at call time; the loaded signatures raise
`tf.errors.InvalidArgumentError`):

- images whose dtype is not float32: the signatures' TensorSpec. Tensors of
  another dtype are refused; NumPy arrays and Python lists are converted to
  float32 by TensorFlow before the call, as for any signature;
- images whose shape is not [B,H,W,C]: a `tf.ensure_shape` in the graph (a
  loaded signature does not check runtime shapes against its TensorSpec by
  itself), "Shape of tensor images [...] is not compatible with expected shape
  [?,H,W,C]";
- pixels that are not finite or not in [0, 1]: `tf.debugging` assertions whose
  message starts with "tf_lifelong serving:";
- in `sample`, a `component` outside [-1, J), a negative `num_samples` or
  non-scalar arguments, the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from tf_lifelong.model import inference
from tf_lifelong.serving import metadata as metadata_lib

SIGNATURES = ("sample", "encode", "reconstruct", "elbo", "metadata")
DEFAULT_SIGNATURE = "serving_default"
DEFAULT_SIGNATURE_OF = "elbo"
"""`serving_default` is `elbo`: the model's density estimate of each image. Its
one input is a batch of images and every output has that batch as its first
dimension, so it also answers TF Serving's row format (`{"instances": [...]}`),
which `sample` (three scalar inputs) cannot."""
ELBO_SEED = (20181, 7)
"""Stateless seed of the z_c noise of the `elbo` signature (int32 pair)."""


def _checked_sizes(
  num_categories: int, continuous_dim: int, image_shape: tuple[int, int, int] | list[int]
) -> tuple[int, int, tuple[int, int, int]]:
  """(J, F, (H, W, C)) as Python ints.

  Raises:
    ValueError: J < 1, F < 1, or an image shape that is not three positive sizes.
  """
  num_categories, continuous_dim = int(num_categories), int(continuous_dim)
  if num_categories < 1:
    raise ValueError(f"num_categories must be >= 1, got {num_categories}")
  if continuous_dim < 1:
    raise ValueError(f"continuous_dim must be >= 1, got {continuous_dim}")
  image_shape = tuple(int(d) for d in image_shape)
  if len(image_shape) != 3 or min(image_shape) < 1:
    raise ValueError(f"image_shape must be (H, W, C) with positive sizes, got {image_shape}")
  return num_categories, continuous_dim, image_shape


class _Networks:
  """Holds the encoder and decoder out of TensorFlow's object tracking.

  A Keras 3 variable saved as part of its layer is written as a wrapper object
  whose restore target, in the exported graph, is a copy of the variable
  (`keras.src.backend.tensorflow.core.Variable._export_to_saved_model_graph`)
  rather than the variable the traced functions read. `tf.saved_model.load`
  copes, but TensorFlow's session loader (`saved_model_cli run`, TF Serving's
  `LoadSavedModel`) restores the copy and leaves the variables the signatures
  read uninitialised ("Could not find variable decoder/kernel_2";
  tensorflow/serving#2250, keras-team/keras#20095). So the module tracks the
  plain `tf.Variable`s that the traced functions capture
  (`ServingModule.serving_variables`), and never the layers: a plain Python
  object such as this one is not tracked.
  """

  def __init__(self, encoder: Any, decoder: Any):
    self.encoder = encoder
    self.decoder = decoder


class ServingModule(tf.Module):
  """Encoder, decoder and metadata with the serving `tf.function`s.

  Each public method is a `tf.function` with a fixed input signature; `export.export`
  saves them as the SavedModel signatures of the same names (see the module
  docstring for their inputs and outputs).

  Attributes:
    encoder: the encoder (a Keras model or any trackable callable).
    decoder: the decoder.
    num_categories: J.
    continuous_dim: F.
    image_shape: (H, W, C).
    metadata_json: the metadata JSON document (a Python string).
  """

  def __init__(
    self,
    encoder: Any,
    decoder: Any,
    *,
    num_categories: int,
    continuous_dim: int,
    image_shape: tuple[int, int, int] | list[int],
    metadata: Mapping[str, Any] | None = None,
    name: str | None = "tf_lifelong_serving",
  ):
    """Builds the module; traces nothing yet.

    Args:
      encoder: callable `encoder(x, training=False) -> (logits, loc, scale)`.
      decoder: callable `decoder(z, training=False) -> logits [B,H,W,C]`.
      num_categories: J >= 1.
      continuous_dim: F >= 1.
      image_shape: (H, W, C), positive ints.
      metadata: JSON-serialisable mapping merged into the exported metadata
        (e.g. distributions seen, configuration). It may repeat but not
        contradict the reserved keys (num_categories, image_shape, ...).
      name: the tf.Module name.

    Raises:
      ValueError: bad sizes or metadata.
    """
    super().__init__(name=name)
    num_categories, continuous_dim, image_shape = _checked_sizes(
      num_categories, continuous_dim, image_shape
    )
    # Kept out of TensorFlow's object tracking: see `_Networks`.
    self._networks = _Networks(encoder, decoder)
    self.num_categories = num_categories
    self.continuous_dim = continuous_dim
    self.image_shape = image_shape
    self.metadata_json = metadata_lib.build_metadata(metadata, self.facts())

    images = tf.TensorSpec([None, *image_shape], tf.float32, name="images")
    self.sample = tf.function(
      self._sample,
      input_signature=[
        tf.TensorSpec([], tf.int32, name="num_samples"),
        tf.TensorSpec([], tf.int32, name="component"),
        tf.TensorSpec([], tf.int32, name="seed"),
      ],
    )
    self.encode = tf.function(self._encode, input_signature=[images])
    self.reconstruct = tf.function(self._reconstruct, input_signature=[images])
    self.elbo = tf.function(self._elbo, input_signature=[images])
    self.metadata = tf.function(
      self._metadata, input_signature=[tf.TensorSpec([], tf.string, name="key")]
    )

  def facts(self) -> dict[str, Any]:
    """The module's own facts, reserved keys of its metadata document (JSON values)."""
    return {
      "num_categories": self.num_categories,
      "continuous_dim": self.continuous_dim,
      "image_shape": list(self.image_shape),
      "signatures": list(SIGNATURES),
      "default_signature": DEFAULT_SIGNATURE_OF,
      "elbo_seed": list(ELBO_SEED),
    }

  @property
  def encoder(self) -> Any:
    return self._networks.encoder

  @property
  def decoder(self) -> Any:
    return self._networks.decoder

  # --- building blocks (traced inside the tf.functions) ---

  def _check_images(self, images: tf.Tensor) -> tf.Tensor:
    """Checks shape, then finite pixels in [0, 1]; returns `images` depending on the checks.

    The loaded signatures do not check the runtime shape of their inputs against
    the TensorSpec (a [B,W,H,C] batch with as many pixels would pass silently),
    so `tf.ensure_shape` checks it at run time.
    """
    images = tf.ensure_shape(images, [None, *self.image_shape], name="check_image_shape")
    checks = [
      tf.debugging.assert_all_finite(
        images, "tf_lifelong serving: images must be finite (found NaN or inf pixels)"
      ),
      tf.debugging.assert_greater_equal(
        images, 0.0, message="tf_lifelong serving: pixels must be in [0, 1] (found < 0)"
      ),
      tf.debugging.assert_less_equal(
        images, 1.0, message="tf_lifelong serving: pixels must be in [0, 1] (found > 1)"
      ),
    ]
    with tf.control_dependencies(checks):
      return tf.identity(images)

  def _posterior(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Runs the encoder (inference mode) and checks the shapes of its outputs."""
    logits, loc, scale = self.encoder(images, training=False)
    j, f = self.num_categories, self.continuous_dim
    logits = tf.ensure_shape(tf.cast(logits, tf.float32), [None, j])
    loc = tf.ensure_shape(tf.cast(loc, tf.float32), [None, f])
    scale = tf.ensure_shape(tf.cast(scale, tf.float32), [None, f])
    return logits, loc, scale

  def _decode(self, z: tf.Tensor) -> tf.Tensor:
    """Decoder logits for z = [z_d, z_c] [N, J + F], shape-checked."""
    logits = self.decoder(z, training=False)
    return tf.ensure_shape(tf.cast(logits, tf.float32), [None, *self.image_shape])

  # --- signatures ---

  def _sample(self, num_samples, component, seed):
    """Draws `num_samples` images (see the module docstring)."""
    j = self.num_categories
    num_samples = tf.ensure_shape(num_samples, [], name="check_num_samples_scalar")
    component = tf.ensure_shape(component, [], name="check_component_scalar")
    seed = tf.ensure_shape(seed, [], name="check_seed_scalar")
    checks = [
      tf.debugging.assert_non_negative(
        num_samples, message="tf_lifelong serving: num_samples must be >= 0"
      ),
      tf.debugging.assert_greater_equal(
        component,
        -1,
        message=f"tf_lifelong serving: component must be -1 (uniform) or in [0, {j})",
      ),
      tf.debugging.assert_less(
        component,
        j,
        message=f"tf_lifelong serving: component must be -1 (uniform) or in [0, {j})",
      ),
    ]
    with tf.control_dependencies(checks):
      num_samples = tf.identity(num_samples)
    seed_z = tf.stack([seed, tf.constant(1, tf.int32)])
    seed_d = tf.stack([seed, tf.constant(2, tf.int32)])
    z, components = inference.prior_latents(
      num_samples, j, self.continuous_dim, seed_d, seed_z, component
    )
    return {
      "images": tf.sigmoid(self._decode(z)),
      "component": components,
      "z_continuous": z[:, j:],
    }

  def _encode(self, images):
    """Posterior summaries of a batch (see the module docstring)."""
    logits, loc, scale = self._posterior(self._check_images(images))
    return {
      "probs": tf.nn.softmax(logits, axis=-1),
      "component": tf.argmax(logits, axis=-1, output_type=tf.int32),
      "mean": loc,
      "stddev": scale,
    }

  def _reconstruct(self, images):
    """Decoder mean at z_d = one_hot(argmax logits), z_c = posterior mean."""
    x = self._check_images(images)
    logits = inference.reconstruction_logits(self._posterior, self._decode, self.num_categories, x)
    return {"images": tf.sigmoid(logits)}

  def _elbo(self, images):
    """Per-example negative ELBO in nats, exact over z_d (method.md section 3).

    With p = softmax(l(x)) over the J categories, (mu, sigma) = (loc, scale),
    one reparameterised z_c = mu + sigma * eps, eps ~ N(0, I_F) drawn from a
    fixed stateless seed (`ELBO_SEED`; row b of the batch gets row b of that
    stream, so the same batch always gives the same values):

        nll(x)    = sum_j p_j * NLL_j,
        NLL_j     = -sum_pixels [x log s_j + (1 - x) log(1 - s_j)],
                    s_j = sigmoid(decoder(concat(e_j, z_c))), e_j the j-th one-hot,
                    pixels x in [0, 1] are the Bernoulli targets (not binarised);
        KL_c(x)   = KL(N(mu, diag sigma^2) || N(0, I))
                  = 1/2 sum_f (mu_f^2 + sigma_f^2 - 1 - 2 log sigma_f),
        KL_d(x)   = KL(Cat(p) || Uniform(J)) = sum_j p_j log p_j + log J,
        neg_elbo  = nll + KL_c + KL_d.

    The expectation over z_d is exact (enumeration of the J one-hots, sharing
    the z_c sample), the one over z_c a single sample. The discrete KL is
    between the categoricals, not the relaxed densities. The math is the one
    evaluation uses, `model.inference.enumerated_terms`, traced into the graph.
    """
    x = self._check_images(images)
    encoded = self._posterior(x)
    eps = tf.random.stateless_normal(
      [tf.shape(x)[0], self.continuous_dim], seed=tf.constant(ELBO_SEED, tf.int32)
    )
    terms = inference.enumerated_terms(encoded, self._decode, self.num_categories, x, eps)
    return {
      "neg_elbo": terms["neg_elbo"],
      "nll": terms["reconstruction"],
      "kl_continuous": terms["kl_continuous"],
      "kl_discrete": terms["kl_discrete"],
    }

  def _metadata(self, key):
    """The metadata JSON document, and the JSON of its entry `key` ("" for the whole document).

    The input makes the signature callable by every client: `saved_model_cli
    run` and TF Serving need at least one input. An unknown key is refused.
    """
    key = tf.ensure_shape(key, [], name="check_key_scalar")
    document = json.loads(self.metadata_json)
    keys = [""] + sorted(document)
    values = [self.metadata_json] + [
      json.dumps(document[k], sort_keys=True, allow_nan=False) for k in keys[1:]
    ]
    match = tf.equal(tf.constant(keys, tf.string), key)
    check = tf.debugging.Assert(
      tf.reduce_any(match),
      [f"tf_lifelong serving: unknown metadata key (known: {', '.join(keys[1:])}):", key],
    )
    with tf.control_dependencies([check]):
      index = tf.argmax(tf.cast(match, tf.int32), output_type=tf.int32)
    return {
      "json": tf.constant(self.metadata_json, tf.string),
      "value": tf.gather(tf.constant(values, tf.string), index),
    }

  def signatures(self) -> dict[str, Any]:
    """The concrete functions to save, keyed by signature name, `serving_default` included.

    Also tracks the variables they capture (`serving_variables`, see
    `_Networks`), so that saving writes them as plain variables that every
    loader restores.
    """
    functions = {name: getattr(self, name).get_concrete_function() for name in SIGNATURES}
    captured: dict[int, Any] = {}
    for function in functions.values():
      for variable in function.variables:
        captured.setdefault(id(variable), variable)
    self.serving_variables = list(captured.values())
    return {**functions, DEFAULT_SIGNATURE: functions[DEFAULT_SIGNATURE_OF]}

  def smoke_test(self) -> None:
    """Runs every function once on a tiny input; raises if any fails."""
    zeros = tf.zeros([2, *self.image_shape], tf.float32)
    self.sample(tf.constant(2), tf.constant(-1), tf.constant(0))
    self.sample(tf.constant(1), tf.constant(self.num_categories - 1), tf.constant(0))
    self.encode(zeros)
    self.reconstruct(zeros)
    out = self.elbo(zeros)
    if not bool(tf.reduce_all(tf.math.is_finite(out["neg_elbo"]))):
      raise ValueError("tf_lifelong export: the ELBO of a zero image is not finite")
    self.metadata(tf.constant(""))
