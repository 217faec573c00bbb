"""Shared helpers of the data tests: real-data locations and tiny files in the official layouts."""

import gzip
import os
import struct

import numpy as np
import pytest
from PIL import Image

MNIST_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
MNIST_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
MNIST_TRAIN_MEAN = 0.1306605
"""Mean train pixel / 255 (shared/data/README.md)."""

# Real data are part of the test environment (scripts/setup installs Debian's
# Fashion-MNIST; MNIST lies in ../shared/data): a test that needs them fails,
# naming the missing file, rather than skipping.
needs_mnist = pytest.mark.real_data
needs_fashion = pytest.mark.real_data


def write_idx(path, array: np.ndarray, magic: int | None = None, compress=True) -> str:
  """Writes uint8 `array` as an IDX file (gzip unless compress=False)."""
  array = np.asarray(array, np.uint8)
  magic = (2048 + array.ndim) if magic is None else magic
  data = struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()
  with open(path, "wb") as f:
    f.write(gzip.compress(data) if compress else data)
  return str(path)


def write_idx_dir(folder, n_train=12, n_test=5, seed=0):
  """A small MNIST-layout folder with random pixels and labels 0..9; returns the arrays."""
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
    images = rng.integers(0, 256, (n, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    write_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"), images)
    write_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"), labels)
    arrays[split] = (images, labels)
  return arrays


def write_png(path, array: np.ndarray) -> str:
  """Writes a uint8 [H, W] (grey) or [H, W, 3] (RGB) array as a PNG."""
  Image.fromarray(np.asarray(array, np.uint8)).save(path)
  return str(path)


def write_image_folder(root, counts: dict[str, int], shape=(4, 5), seed=0) -> dict:
  """One sub-folder of grey PNGs per name; returns {name: [H, W] arrays in file order}."""
  rng = np.random.default_rng(seed)
  written = {}
  for name, count in counts.items():
    os.makedirs(os.path.join(root, name), exist_ok=True)
    images = rng.integers(0, 256, (count, *shape), dtype=np.uint8)
    for i, image in enumerate(images):
      write_png(os.path.join(root, name, f"img{i:03d}.png"), image)
    written[name] = images
  return written


def rows(images: np.ndarray) -> list[bytes]:
  """Images as a sorted list of byte strings: equal lists = equal multisets of images."""
  return sorted(image.tobytes() for image in images)
