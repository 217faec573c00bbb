"""Batched passes over an in-memory array of images: one function of a batch, mapped or
summed over all the batches.

Every inference-mode pass of the library (the -ELBO of the evaluation and of early
stopping, IWAE, the -ELBO terms, posterior masses, the detection scores, classifier
predictions) runs its function on batches of at most `batch_size` rows so that memory
stays bounded; this is the one loop that does it. `fn(x, b)` receives the batch as a
tensor [B, ...] (converted from the array as it is) and the batch's index b = 0, 1, ...,
for stateless seeds that must differ between batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

BatchFn = Callable[[tf.Tensor, int], tf.Tensor]
"""fn(x [B, ...], batch index) -> per-example values [B, ...]."""


def batches(images: np.ndarray, batch_size: int) -> Iterator[tuple[int, tf.Tensor]]:
  """(b, images[b * batch_size : (b + 1) * batch_size] as a tensor) for every batch b."""
  for b, start in enumerate(range(0, len(images), batch_size)):
    yield b, tf.convert_to_tensor(images[start : start + batch_size])


def batch_map(fn: BatchFn, images: np.ndarray, batch_size: int) -> np.ndarray:
  """fn over every batch, concatenated along the rows: [N, ...] ([0] for no images)."""
  out = [np.asarray(fn(x, b)) for b, x in batches(images, batch_size)]
  return np.concatenate(out) if out else np.zeros([0])


def batch_sum(fn: BatchFn, images: np.ndarray, batch_size: int) -> np.ndarray | float:
  """The sum over all images of fn's per-example values (each batch reduced in fn's
  dtype, the batches accumulated in float64): a float for scalar values, else [...]."""
  total = 0.0
  for b, x in batches(images, batch_size):
    total = total + np.asarray(tf.reduce_sum(fn(x, b), axis=0), np.float64)
  return float(total) if np.ndim(total) == 0 else total


def batch_mean(fn: BatchFn, images: np.ndarray, batch_size: int) -> np.ndarray | float:
  """batch_sum / N: the mean per-example value (NaN for no images)."""
  if len(images) == 0:
    return math.nan
  return batch_sum(fn, images, batch_size) / len(images)
