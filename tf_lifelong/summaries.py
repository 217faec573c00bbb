"""TensorBoard summaries, image grids and PNG files.

The run writes its own summaries (not Keras' TensorBoard callback, which loses
epoch summaries when steps per epoch do not divide evenly) and flushes them, so
that a TensorBoard started at any moment sees everything written so far.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
from PIL import Image

from tf_lifelong import artifacts


def image_grid(images: np.ndarray, pad: int = 1) -> np.ndarray:
  """Tiles images [R, C, H, W, ch] in [0, 1] into one uint8 image.

  Args:
    images: float array [R, C, H, W, ch] (ch 1 or 3), values in [0, 1].
    pad: pixels of white between tiles.

  Returns:
    uint8 array [R*(H+pad)+pad, C*(W+pad)+pad, ch].
  """
  rows, cols, h, w, ch = images.shape
  grid = np.ones((rows * (h + pad) + pad, cols * (w + pad) + pad, ch), np.float32)
  for r in range(rows):
    for c in range(cols):
      top, left = pad + r * (h + pad), pad + c * (w + pad)
      grid[top : top + h, left : left + w] = images[r, c]
  return np.round(np.clip(grid, 0.0, 1.0) * 255).astype(np.uint8)


def write_png(path: str, grid: np.ndarray, scale: int = 2) -> None:
  """Writes a uint8 grid [H, W, ch] as PNG (atomically), enlarged `scale` times."""
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with artifacts.atomic_path(path) as tmp:
    img.save(tmp, format="PNG")


class SummaryWriter:
  """Scalars and images under workdir/tensorboard, flushed after each write."""

  def __init__(self, logdir: str, enabled: bool = True):
    self.enabled = enabled
    self._writer = tf.summary.create_file_writer(logdir) if enabled else None

  def scalars(self, values: Mapping[str, float], step: int, prefix: str = "") -> None:
    if not self.enabled:
      return
    with self._writer.as_default(step=int(step)):
      for name, value in values.items():
        if value is None or not np.isfinite(value):
          continue
        tf.summary.scalar(prefix + name, float(value))
    self._writer.flush()

  def image(self, name: str, grid: np.ndarray, step: int, description: str = "") -> None:
    if not self.enabled:
      return
    with self._writer.as_default(step=int(step)):
      tf.summary.image(name, grid[None], step=int(step), description=description or None)
    self._writer.flush()

  def text(self, name: str, value: str, step: int) -> None:
    if not self.enabled:
      return
    with self._writer.as_default(step=int(step)):
      tf.summary.text(name, value)
    self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
