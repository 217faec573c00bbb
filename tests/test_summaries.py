"""Image grids, PNG files and TensorBoard events read back."""

import glob
import os

import numpy as np
from PIL import Image

from tf_lifelong.monitor import summaries


def test_image_grid_places_tiles_row_major():
  images = np.zeros((2, 3, 4, 5, 1), np.float32)
  images[1, 2] = 1.0
  grid = summaries.image_grid(images, pad=1)
  assert grid.shape == (2 * 5 + 1, 3 * 6 + 1, 1) and grid.dtype == np.uint8
  assert grid[1 + 5 : 1 + 5 + 4, 1 + 12 : 1 + 12 + 5].min() == 255  # tile (1, 2) is white
  assert grid[1:5, 1:6].max() == 0  # tile (0, 0) is black


def test_png_round_trip(tmp_path):
  grid = (np.arange(3 * 4 * 3) % 255).astype(np.uint8).reshape(3, 4, 3)
  path = tmp_path / "s" / "g.png"
  summaries.write_png(str(path), grid, scale=1)
  assert np.array_equal(np.asarray(Image.open(path)), grid)


def test_summary_writer_events_hold_scalars_and_images(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator

  w = summaries.SummaryWriter(str(tmp_path))
  w.scalars({"loss": 1.5, "skipped": float("nan")}, step=3, prefix="train/")
  w.image("samples", np.zeros((4, 6, 1), np.uint8), step=3)
  w.close()
  acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
  acc.Reload()
  tags = acc.Tags()["tensors"]
  assert "train/loss" in tags and "samples" in tags and "train/skipped" not in tags
  value = acc.Tensors("train/loss")[0]
  assert value.step == 3


def _tag_steps(logdir) -> list[tuple[str, int]]:
  """(tag, step) of every summary value in logdir's event files, in file order."""
  import tensorflow as tf
  from tensorflow.core.util import event_pb2

  found = []
  for path in sorted(glob.glob(os.path.join(str(logdir), "*tfevents*"))):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      found.extend((v.tag, event.step) for v in event.summary.value)
  return found


def test_drop_events_keeps_what_came_before_the_checkpoint(tmp_path):
  w = summaries.SummaryWriter(str(tmp_path))
  for step in (10, 20, 30, 40):
    w.scalars({"loss": step / 10, "neg_elbo": step / 5}, step=step, prefix="train/")
  for index in (0, 1, 2):
    w.scalars({"test_neg_elbo_seen": 100.0 + index}, step=index, prefix="interval/")
    w.image("samples", np.zeros((4, 6, 1), np.uint8), step=index)
  w.close()
  with open(glob.glob(str(tmp_path / "*tfevents*"))[0], "ab") as f:
    f.write(b"\x17\x00\x00")  # A partial record, as a killed writer leaves.
  dropped = summaries.drop_events(str(tmp_path), summaries.keep_until(20, 2))
  assert dropped == 2 * 2 + 2  # train/ at 30 and 40; interval 2's scalar and image.
  assert _tag_steps(tmp_path) == [
    ("train/loss", 10),
    ("train/neg_elbo", 10),
    ("train/loss", 20),
    ("train/neg_elbo", 20),
    ("interval/test_neg_elbo_seen", 0),
    ("samples", 0),
    ("interval/test_neg_elbo_seen", 1),
    ("samples", 1),
  ]
  assert summaries.drop_events(str(tmp_path), summaries.keep_until(20, 2)) == 0
  assert summaries.drop_events(str(tmp_path / "missing"), summaries.keep_until(0, 0)) == 0
