"""Array transforms applied once to whole splits: resize, grey->RGB, rotation; and the
one conversion of uint8 pixels to the model's inputs (`unit_float`).

Every transform takes and returns uint8 images [N, H, W, C] and is computed
once, on the arrays, when a stream is built (never per batch). Resizing and
rotation are linear maps of the pixels: each is built as one sparse matrix
[H_out * W_out, H_in * W_in] (bilinear weights, at most four non-zeros per
output pixel when upsampling or rotating) and applied to all images and
channels with a sparse-dense product, in chunks to bound memory.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import sparse

_CHUNK = 1024
"""Rows (image channels) per sparse product; small enough that the transposes stay
in cache."""


def unit_float(images: np.ndarray) -> np.ndarray:
  """uint8 pixels [N, H, W, C] -> float32 x / 255 in [0, 1], what the networks take.

  The one place of this conversion on arrays; the training pipeline does the same in
  its tf.data graph (streams.as_dataset).
  """
  return np.asarray(images).astype(np.float32) / 255.0


def _check_images(images: np.ndarray) -> None:
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(f"expected uint8 images [N, H, W, C], got {images.dtype} {list(images.shape)}")


def _apply(images: np.ndarray, matrix: sparse.csr_matrix, out_hw: tuple[int, int]) -> np.ndarray:
  """Applies a pixel operator to every image and channel; rounds to uint8."""
  n, h, w, c = images.shape
  planes = images.transpose(0, 3, 1, 2).reshape(n * c, h * w)
  out = np.empty((n * c, out_hw[0] * out_hw[1]), np.uint8)
  for start in range(0, n * c, _CHUNK):
    # csr @ C-contiguous [pixels, rows] is scipy's fast path.
    chunk = np.ascontiguousarray(planes[start : start + _CHUNK].T, dtype=np.float32)
    values = matrix @ chunk
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    out[start : start + _CHUNK] = values.astype(np.uint8).T
  return out.reshape(n, c, *out_hw).transpose(0, 2, 3, 1).copy()


# ------------------------------------------------------------------ resize
def _axis_weights(size_in: int, size_out: int) -> np.ndarray:
  """Triangle-filter weights [size_out, size_in] (bilinear; antialiased down).

  Pixel centres are aligned (half-pixel convention, as PIL and tf.image do);
  when shrinking, the filter widens by the scale so every input pixel counts.
  """
  scale = size_in / size_out
  support = max(1.0, scale)
  centres = (np.arange(size_out) + 0.5) * scale - 0.5
  distance = np.abs(centres[:, None] - np.arange(size_in)[None, :])
  weights = np.maximum(0.0, 1.0 - distance / support)
  return weights / weights.sum(axis=1, keepdims=True)


@functools.lru_cache(maxsize=32)
def _resize_matrix(h_in: int, w_in: int, h_out: int, w_out: int) -> sparse.csr_matrix:
  rows = sparse.csr_matrix(_axis_weights(h_in, h_out))
  cols = sparse.csr_matrix(_axis_weights(w_in, w_out))
  return sparse.kron(rows, cols, format="csr").astype(np.float32)


def resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Resizes uint8 images [N, H, W, C] to [N, size[0], size[1], C] (bilinear).

  Args:
    images: uint8 [N, H, W, C].
    size: (height, width) of the result.

  Returns:
    uint8 [N, height, width, C]; the input itself when the size already fits.
  """
  _check_images(images)
  h, w = images.shape[1:3]
  if (h, w) == tuple(size):
    return images
  return _apply(images, _resize_matrix(h, w, size[0], size[1]), tuple(size))


def grey_to_rgb(images: np.ndarray) -> np.ndarray:
  """Repeats the single channel of grey images [N, H, W, 1] three times."""
  _check_images(images)
  if images.shape[-1] == 3:
    return images
  if images.shape[-1] != 1:
    raise ValueError(f"grey_to_rgb needs 1 or 3 channels, got {images.shape[-1]}")
  return np.repeat(images, 3, axis=-1)


def to_rgb32(images: np.ndarray) -> np.ndarray:
  """Resizes to 32x32 and makes RGB: the common form of the cross-domain streams."""
  return grey_to_rgb(resize(images, (32, 32)))


# ----------------------------------------------------------------- rotate
@functools.lru_cache(maxsize=64)
def _rotation_matrix(h: int, w: int, degrees: float) -> sparse.csr_matrix:
  """Bilinear operator rotating an h x w image counter-clockwise (as displayed).

  Rotation is about the image centre; pixels that come from outside the image
  are 0 (black).
  """
  theta = math.radians(degrees)
  cos, sin = math.cos(theta), math.sin(theta)
  cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
  r_out, c_out = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  u, v = c_out - cx, cy - r_out  # x right, y up
  # Inverse map: the source of each output pixel is rotated by -theta.
  c_in = np.round(cx + cos * u + sin * v, 9).ravel()
  r_in = np.round(cy - (-sin * u + cos * v), 9).ravel()
  r0, c0 = np.floor(r_in).astype(np.int64), np.floor(c_in).astype(np.int64)
  fr, fc = r_in - r0, c_in - c0
  out_index = np.arange(h * w)
  rows, cols, vals = [], [], []
  for dr, dc, weight in (
    (0, 0, (1 - fr) * (1 - fc)),
    (0, 1, (1 - fr) * fc),
    (1, 0, fr * (1 - fc)),
    (1, 1, fr * fc),
  ):
    r, c = r0 + dr, c0 + dc
    keep = (r >= 0) & (r < h) & (c >= 0) & (c < w) & (weight > 0)
    rows.append(out_index[keep])
    cols.append(r[keep] * w + c[keep])
    vals.append(weight[keep])
  return sparse.csr_matrix(
    (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
    shape=(h * w, h * w),
  )


def rotate(images: np.ndarray, degrees: float) -> np.ndarray:
  """Rotates uint8 images [N, H, W, C] counter-clockwise by `degrees` (bilinear).

  The image keeps its size; corners that leave the frame are cut and corners
  that enter it are black. Rotating by a multiple of 360 returns a copy of the
  input unchanged; by 90 it equals np.rot90 for square images.

  Args:
    images: uint8 [N, H, W, C].
    degrees: angle in degrees, counter-clockwise as displayed (row 0 on top).

  Returns:
    uint8 [N, H, W, C].
  """
  _check_images(images)
  degrees = float(degrees) % 360.0
  if degrees == 0.0:
    return images.copy()
  h, w = images.shape[1:3]
  return _apply(images, _rotation_matrix(h, w, degrees), (h, w))
