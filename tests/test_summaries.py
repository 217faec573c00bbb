"""Image grids, PNG files and TensorBoard events read back."""

import numpy as np
from PIL import Image

from tf_lifelong import summaries


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
