"""A tiny synthetic stream for the loop, resume and CLI tests: no real data needed.

Ten distributions (ids 0..9, like MNIST's digits, so orders such as 3,7,3 read the
same), 120 images each, 28 x 28 x 1 uint8. Distribution d draws a bar of its own
orientation and position (d's template), shifted by up to 2 pixels per image, with
5% salt noise: the distributions differ (a VAE tells them apart in a few steps) and
each is learnable. The archive is written once per temporary folder, atomically, so
concurrent test processes (pytest-xdist workers, bin/train children) share it.

Real data stay where they are the point: loading (tests/data) and quality, "it
remembers" (tests/model/test_mnist.py, tests/test_learner.py).
"""

import os
import tempfile

import numpy as np

IDS = tuple(range(10))
PER_ID = 120
SIZE = 28
VERSION = 1
"""Bump when the images change, so a stale archive of an older version is not reused."""


def _template(d: int) -> np.ndarray:
  """Distribution d's clean image, float [SIZE, SIZE] in {0, 1}: a 4-pixel-wide bar."""
  yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
  angle = np.pi * d / len(IDS)  # ten orientations, 18 degrees apart
  offset = 4.0 * (d % 3 - 1)  # and three positions across the bar
  distance = np.abs(np.cos(angle) * xx + np.sin(angle) * yy - offset)
  return (distance < 2.0).astype(np.float32) * (np.hypot(xx, yy) < 12)


def images(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, SIZE, SIZE, 1], distribution ids int64 [N]) with N = 10 * PER_ID."""
  rng = np.random.default_rng(seed)
  out, ids = [], []
  for d in IDS:
    clean = _template(d)
    for _ in range(PER_ID):
      dy, dx = rng.integers(-2, 3, size=2)
      image = np.roll(clean, (dy, dx), axis=(0, 1))
      image = np.maximum(image, rng.random(image.shape) < 0.05)
      out.append(image)
      ids.append(d)
  pixels = (np.stack(out)[..., None] * 255).astype(np.uint8)
  return pixels, np.asarray(ids, np.int64)


def path() -> str:
  """The archive's path (written on first use): pass `--dataset=npz:<path>`."""
  folder = os.environ.get("TEST_TMPDIR") or tempfile.gettempdir()
  target = os.path.join(folder, f"tf_lifelong_synthetic_v{VERSION}.npz")
  if not os.path.exists(target):
    pixels, ids = images()
    handle, partial = tempfile.mkstemp(dir=folder, suffix=".npz")
    with os.fdopen(handle, "wb") as f:
      np.savez(f, images=pixels, distribution=ids)
    os.replace(partial, target)  # atomic: a reader sees no half-written archive
  return target


def dataset() -> str:
  """The `--dataset` value of the synthetic stream."""
  return f"npz:{path()}"
