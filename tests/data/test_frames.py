"""Time-ordered sources (data/frames.py, data/npy_rows.py): rows in order, read a chunk
at a time in bounded memory, defects found in the chunk that holds them, requests a
stream cannot honour refused in one line, and one distribution with told boundaries."""

import os
import tracemalloc

import numpy as np
import pytest

from tests.data.conftest import write_png
from tf_lifelong import config as config_lib
from tf_lifelong.data import formats, frames, streams
from tf_lifelong.data.sources import DataError, load_source


def _error(fn, *args) -> str:
  with pytest.raises(DataError) as info:
    fn(*args)
  message = str(info.value)
  assert "\n" not in message and message
  return message


def _images(n, shape=(6, 5), seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _write(tmp_path, kind, images, **extra):
  """The source string of `images` written as `kind`: npz (stored), npz_deflated or npy."""
  if kind == "npy":
    path = str(tmp_path / "day.npy")
    np.save(path, images)
    return f"npy:{path}"
  path = str(tmp_path / "day.npz")
  (np.savez_compressed if kind == "npz_deflated" else np.savez)(path, images=images, **extra)
  return f"npz:{path}"


# ------------------------------------------------------------------ rows in order
@pytest.mark.parametrize("kind", ["npz", "npz_deflated", "npy"])
def test_chunks_are_the_rows_in_time_order(tmp_path, kind):
  images = _images(1050)
  source = frames.open_frames(_write(tmp_path, kind, images))
  chunks = frames.Chunks(source, 200)
  assert (len(chunks), source.count, source.shape) == (5, 1050, (6, 5, 1))
  got = list(chunks.from_chunk(0))
  assert [c.start for c in got] == [0, 200, 400, 600, 800]
  assert [len(c.images) for c in got] == [200, 200, 200, 200, 250]  # the last: the remainder
  np.testing.assert_array_equal(np.concatenate([c.images for c in got]), images[..., None])
  assert all(c.truth is None for c in got)
  # From chunk 3 on: the same rows, and only those are read.
  again = frames.Chunks(frames.open_frames(_write(tmp_path, kind, images)), 200)
  later = list(again.from_chunk(3))
  np.testing.assert_array_equal(later[0].images, images[600:800, ..., None])
  assert again.source.rows_read == 450


def test_truth_of_a_chunk_is_one_id_or_one_per_row_and_float_pixels_are_scaled(tmp_path):
  pixels = _images(300).astype(np.float32) / 255
  truth = np.repeat([4, 1, 1], 100)
  truth[90:110] = 7  # chunk 0: 90 of 4, 10 of 7; chunk 1: 10 of 7, 90 of 1; chunk 2: all 1
  source = frames.open_frames(_write(tmp_path, "npz", pixels, distribution=truth))
  got = list(frames.Chunks(source, 100).from_chunk(0))
  # A chunk that changes inside gives its rows' ids, so that the learner's segments
  # (segmenting.py) each get their own truth; a chunk of one distribution gives its id.
  np.testing.assert_array_equal(got[0].truth, truth[:100])
  np.testing.assert_array_equal(got[1].truth, truth[100:200])
  assert [c.truth_name for c in got[:2]] == [None, None]
  assert (got[2].truth, got[2].truth_name) == (1, "distribution 1")
  np.testing.assert_array_equal(got[0].images[..., 0], _images(100))


def test_a_bad_pixel_is_found_when_its_chunk_is_read(tmp_path):
  pixels = _images(1000).astype(np.float32) / 255
  pixels[733, 2, 1] = 1.5
  source = frames.open_frames(_write(tmp_path, "npz_deflated", pixels))
  chunks = frames.Chunks(source, 200).from_chunk(0)
  for _ in range(3):
    next(chunks)  # rows 0..599 are fine
  message = _error(next, chunks)
  assert "day.npz, array images: row 733 holds 1.5" in message and "[0, 1]" in message


def test_a_truncated_npy_is_named_at_the_rows_it_lacks(tmp_path):
  source = _write(tmp_path, "npy", _images(400))
  path = source[len("npy:") :]
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 30 * 6 * 5)
  stream = frames.Chunks(frames.open_frames(source), 100).from_chunk(0)
  for _ in range(3):
    next(stream)
  assert "ends inside rows 300..399" in _error(next, stream)


# ------------------------------------------------------------------ bounded memory
@pytest.mark.parametrize("kind", ["npz", "npz_deflated"])
def test_reading_a_stream_holds_about_one_chunk_in_memory(tmp_path, kind):
  images = _images(20_000, (28, 28), seed=1)  # 15.7 MB; a chunk of 500 is 392 kB
  source_name = _write(tmp_path, kind, images)
  chunk_bytes = 500 * 28 * 28
  source = frames.open_frames(source_name)
  tracemalloc.start()
  try:
    total, start_peak = 0, tracemalloc.get_traced_memory()[1]
    for chunk in frames.Chunks(source, 500).from_chunk(0):
      total += int(chunk.images[:, 14, 14, 0].sum())  # used, then dropped
      del chunk
    peak = tracemalloc.get_traced_memory()[1] - start_peak
  finally:
    tracemalloc.stop()
  assert total == int(images[:, 14, 14].sum())
  assert source.rows_read == 20_000
  assert peak < 2.5 * chunk_bytes, f"peak {peak} bytes while reading chunks of {chunk_bytes}"
  # What the test tells apart: np.load, as a labelled npz is read, holds it all.
  tracemalloc.start()
  with np.load(source_name[len("npz:") :]) as npz:
    npz["images"].sum()
  whole = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  assert whole > images.nbytes


# ------------------------------------------------------------------ folders of frames
def _frames(folder, count, shape=(4, 5)):
  os.makedirs(folder, exist_ok=True)
  images = _images(count, shape, seed=2)
  for i in np.random.default_rng(3).permutation(count):  # written in no particular order
    write_png(os.path.join(folder, f"frame{i}.png"), images[i])
  return images


def test_a_folder_of_frames_is_read_in_name_order_a_chunk_at_a_time(tmp_path, monkeypatch):
  images = _frames(tmp_path / "day", 12)  # frame2 before frame10
  (tmp_path / "day" / "notes.txt").write_text("not a frame")
  decoded = []
  read_image = formats.read_image
  monkeypatch.setattr(formats, "read_image", lambda p: decoded.append(p) or read_image(p))
  source = frames.open_frames(f"folder:{tmp_path / 'day'}")
  assert (source.count, source.shape, len(decoded)) == (12, (4, 5, 1), 1)  # the first: its size
  chunks = frames.Chunks(source, 4).from_chunk(0)
  first = next(chunks)
  assert len(decoded) == 1 + 4
  rest = list(chunks)
  np.testing.assert_array_equal(
    np.concatenate([first.images] + [c.images for c in rest])[..., 0], images
  )


def test_a_frame_of_another_size_is_named_when_its_chunk_is_read(tmp_path):
  _frames(tmp_path / "day", 12)
  write_png(tmp_path / "day" / "frame9.png", np.zeros((8, 8), np.uint8))
  chunks = frames.Chunks(frames.open_frames(f"folder:{tmp_path / 'day'}"), 4).from_chunk(0)
  next(chunks)
  next(chunks)
  message = _error(next, chunks)
  assert str(tmp_path / "day" / "frame9.png") in message and "(frame 9)" in message
  assert "8x8 grey" in message and "frame0.png is 5x4 grey" in message


# ------------------------------------------------------------------ told boundaries
@pytest.mark.parametrize("kind", ["npz", "npy", "folder"])
def test_with_told_boundaries_a_stream_is_one_distribution(tmp_path, kind):
  if kind == "folder":
    images = _frames(tmp_path / "day", 40)
    name = f"folder:{tmp_path / 'day'}"
  else:
    images = _images(40)
    name = _write(tmp_path, kind, images)
  data = load_source(name)
  assert data.class_names == ("day",)
  both = np.concatenate([data.train.images, data.test.images])
  assert sorted(map(bytes, both)) == sorted(map(bytes, images[..., None]))
  assert len(data.test) == 4  # splits.TEST_FRACTION of it
  stream = streams.build_stream(config_lib.Config(dataset=name))
  assert [(i.distribution.name, i.is_new) for i in stream] == [("day", True)]


# ------------------------------------------------------------------ requests refused
def _config(dataset, **fields):
  return config_lib.Config(dataset=dataset, batch_size=32, chunk_size=100, **fields)


def test_what_a_stream_cannot_honour_is_one_line(tmp_path):
  name = _write(tmp_path, "npz", _images(300))
  frames.check_request(_config(name, boundaries="detect"))  # fine
  message = _error(frames.check_request, _config(name, order=(0, 0)))
  assert message.startswith(f"--order cannot be honoured on {name}: it has no distributions")
  assert "--num_intervals" in _error(frames.check_request, _config(name, num_intervals=2))
  few = _write(tmp_path / "few", "npy", _images(20)) if os.mkdir(tmp_path / "few") is None else 0
  assert "holds 20 images, fewer than --batch_size (32)" in _error(
    frames.check_request, _config(few, boundaries="detect")
  )
  empty = _write(tmp_path / "few", "npz", _images(0))
  assert "holds no images: an empty source" in _error(frames.check_request, _config(empty))
  no_images = str(tmp_path / "ids.npz")
  np.savez(no_images, distribution=np.zeros(3, int))
  assert "has no array 'images' (it has: distribution)" in _error(
    frames.check_request, _config(f"npz:{no_images}")
  )
  os.mkdir(tmp_path / "nothing")
  assert "an empty source" in _error(frames.check_request, _config(f"folder:{tmp_path}/nothing"))
  _frames(tmp_path / "both", 3)
  os.mkdir(tmp_path / "both" / "cats")
  assert "holds both images" in _error(frames.check_request, _config(f"folder:{tmp_path}/both"))


def test_a_labelled_npz_is_a_stream_only_in_detect_mode_without_a_schedule(tmp_path):
  name = _write(tmp_path, "npz", _images(300), distribution=np.repeat([0, 1, 0], 100))
  assert not frames.is_stream_source(name)
  assert frames.reads_as_stream(_config(name, boundaries="detect"))
  assert not frames.reads_as_stream(_config(name, boundaries="detect", order=(0, 1)))
  assert not frames.reads_as_stream(_config(name))
  frames.check_request(_config(name, order=(1, 0)))  # its distributions can be scheduled
