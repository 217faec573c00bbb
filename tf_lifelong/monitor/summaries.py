"""TensorBoard summaries, image grids and PNG files.

The run writes its own summaries (not Keras' TensorBoard callback, which loses
epoch summaries when steps per epoch do not divide evenly) and flushes them, so
that a TensorBoard started at any moment sees everything written so far.

A resumed run first drops, from the event files, what the interrupted process
wrote after its last checkpoint (`drop_events`): the resumed process writes those
steps again, and TensorBoard would otherwise show them twice.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont
from tensorflow.core.util import event_pb2

from tf_lifelong.state import artifacts, files

LABEL_MARGIN = 4
"""Pixels of white left and right of the row labels of a PNG grid."""


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


def write_png(
  path: str,
  grid: np.ndarray,
  scale: int = 2,
  row_labels: Sequence[str] | None = None,
  pad: int = 1,
) -> None:
  """Writes a uint8 grid [H, W, ch] as PNG (atomically), enlarged `scale` times.

  Args:
    row_labels: one text per row of tiles of an `image_grid(..., pad)`, drawn
      (black, PIL's default font) on a white left margin at its row's middle.
  """
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
  if row_labels:
    img = label_rows(img, row_labels, pad * scale)
  buf = io.BytesIO()
  img.save(buf, format="PNG")
  files.write_bytes(path, buf.getvalue())


def label_rows(img: Image.Image, labels: Sequence[str], pad: int = 2) -> Image.Image:
  """`img` (rows of equal height separated by `pad` pixels) with a white left margin
  that holds labels[r] beside row r, vertically centred."""
  font = ImageFont.load_default()
  probe = ImageDraw.Draw(img)
  width = int(max(probe.textlength(t, font=font) for t in labels)) + 2 * LABEL_MARGIN
  out = Image.new(img.mode, (img.width + width, img.height), _white(img.mode))
  out.paste(img, (width, 0))
  draw = ImageDraw.Draw(out)
  row = (img.height - pad) / len(labels)
  for r, text in enumerate(labels):
    top, bottom = draw.textbbox((0, 0), text, font=font)[1::2]
    middle = pad + r * row + (row - pad) / 2
    draw.text((LABEL_MARGIN, middle - (top + bottom) / 2), text, fill=_black(img.mode), font=font)
  return out


def _white(mode: str):
  return 255 if mode == "L" else (255, 255, 255)


def _black(mode: str):
  return 0 if mode == "L" else (0, 0, 0)


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


KeepFn = Callable[[str, int], bool]
"""keep(tag, step): whether a summary value with this tag and step stays."""


def _read_events(path: str) -> list[bytes]:
  """The records of an event file; a partial last record (a killed writer) ends it."""
  records = []
  try:
    for record in tf.data.TFRecordDataset(path):
      records.append(record.numpy())
  except tf.errors.DataLossError:
    pass
  return records


def drop_events(logdir: str, keep: KeepFn) -> int:
  """Rewrites the event files in `logdir` without the summary values `keep` refuses.

  An event left with no value is dropped; events without summaries (the file
  header) stay. A file is rewritten (atomically) only if something goes.

  Args:
    logdir: a folder of TensorBoard event files (missing: nothing to do).
    keep: keep(tag, step) -> bool.

  Returns:
    The number of summary values dropped.
  """
  if not files.isdir(logdir):
    return 0
  dropped = 0
  for name in sorted(files.listdir(logdir)):
    path = os.path.join(logdir, name)
    if "tfevents" not in name or name.startswith(".") or not files.isfile(path):
      continue
    kept, changed = [], False
    for record in _read_events(path):
      event = event_pb2.Event.FromString(record)
      values = event.summary.value
      if not values:
        kept.append(record)
        continue
      stay = [v for v in values if keep(v.tag, event.step)]
      if len(stay) == len(values):
        kept.append(record)
        continue
      changed, dropped = True, dropped + len(values) - len(stay)
      if stay:
        del event.summary.value[:]
        event.summary.value.extend(stay)
        kept.append(event.SerializeToString())
    if changed:
      with artifacts.atomic_path(path) as tmp:
        with tf.io.TFRecordWriter(tmp) as writer:
          for record in kept:
            writer.write(record)
  return dropped


def keep_until(global_step: int, intervals: int) -> KeepFn:
  """What a run resumed from a checkpoint keeps: `train/` values up to `global_step`
  (their step is the global training step), the others (`interval/` scalars,
  sample and reconstruction images: their step is the interval index) of the
  first `intervals` intervals."""

  def keep(tag: str, step: int) -> bool:
    return step <= global_step if tag.startswith("train/") else step < intervals

  return keep
