"""A tiny encoder/decoder pair that follows the model contract of tf_lifelong.serving.signatures.

Used by tests/test_export.py and the scripts it runs in subprocesses.
"""

import keras

H, W, C = 6, 5, 1
J, F = 3, 2


def build(seed: int = 0, num_categories: int = J, continuous_dim: int = F):
  """Returns (encoder, decoder): Keras functional models with batch norm.

  encoder(x [B,H,W,C]) -> (logits [B,J], loc [B,F], scale [B,F] > 0);
  decoder(z [B,J+F]) -> Bernoulli logits [B,H,W,C].
  """
  keras.utils.set_random_seed(seed)
  x = keras.Input((H, W, C))
  h = keras.layers.Flatten()(x)
  h = keras.layers.Dense(8, activation="elu")(h)
  h = keras.layers.BatchNormalization()(h)
  logits = keras.layers.Dense(num_categories)(h)
  loc = keras.layers.Dense(continuous_dim)(h)
  scale = keras.layers.Dense(continuous_dim, activation="softplus")(h)
  scale = keras.layers.Lambda(lambda s: s + 1e-6)(scale)
  encoder = keras.Model(x, (logits, loc, scale), name="encoder")
  z = keras.Input((num_categories + continuous_dim,))
  g = keras.layers.Dense(8, activation="elu")(z)
  g = keras.layers.BatchNormalization()(g)
  g = keras.layers.Dense(H * W * C)(g)
  out = keras.layers.Reshape((H, W, C))(g)
  decoder = keras.Model(z, out, name="decoder")
  return encoder, decoder
