"""model/batching.py: the one batched pass equals the whole-array computation."""

import math

import numpy as np

from tf_lifelong.model import batching

IMAGES = np.random.default_rng(0).random((7, 3, 2, 1)).astype(np.float32)
"""N = 7 rows, not a multiple of the batch size 3: batches of 3, 3 and 1."""


def _row_sums(x, b):
  return np.asarray(x).reshape(len(x), -1).sum(-1) + 100 * b


def test_map_sees_every_row_once_with_its_batch_index():
  got = batching.batch_map(_row_sums, IMAGES, 3)
  want = IMAGES.reshape(7, -1).sum(-1) + 100 * np.array([0, 0, 0, 1, 1, 1, 2])
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sum_and_mean_equal_the_whole_array_ones():
  ones = lambda x, _: np.asarray(x).reshape(len(x), -1)  # [B, 6]: a vector per row  # noqa: E731
  np.testing.assert_allclose(batching.batch_sum(ones, IMAGES, 3), IMAGES.reshape(7, 6).sum(0))
  np.testing.assert_allclose(
    batching.batch_mean(ones, IMAGES, 2), IMAGES.reshape(7, 6).mean(0), rtol=1e-6
  )
  scalar = batching.batch_mean(lambda x, _: np.asarray(x).reshape(len(x), -1)[:, 0], IMAGES, 4)
  assert isinstance(scalar, float) and math.isclose(scalar, IMAGES[:, 0, 0, 0].mean(), rel_tol=1e-6)


def test_no_images():
  empty = IMAGES[:0]
  assert batching.batch_map(_row_sums, empty, 3).shape == (0,)
  assert math.isnan(batching.batch_mean(_row_sums, empty, 3))
