"""Time-ordered, unlabelled image sources: a stream read a chunk at a time.

    source = frames.open_frames("folder:~/camera/monday")
    for chunk in frames.Chunks(source, 1000).from_chunk(0):
      learner.observe(chunk.images, truth=chunk.truth)

Three spellings are streams (one distribution with told boundaries, where they
are loaded whole; cut into chunks with `--boundaries=detect`, where they are
read a chunk at a time):

- `npz:PATH` whose archive has an array `images` (in time order) and no
  `distribution`. With `distribution` (the truth of each row), it is a stream
  too in detect mode when no --order or --num_intervals schedules its
  distributions (`reads_as_stream`): the truth is then only written down beside
  the decisions. The `images` member is read with `npy_rows`, stored or
  deflated, never whole.
- `npy:PATH`: one .npy array of images, rows in time order (read the same way,
  with seeks).
- `folder:PATH` whose directory holds PNG/JPEG files and no sub-folders (one
  sub-folder per distribution is the labelled layout, `formats.read_image_folder`):
  the files in natural name order (`frame2` before `frame10`), decoded a chunk
  at a time.

Pixels are checked as they are read (uint8, integers in 0..255, or floats in
[0, 1]); a bad row or a frame of another size is found when its chunk is read,
and the DataError names the file and the row.
"""

from __future__ import annotations

import dataclasses
import os
import re
import zipfile
from collections.abc import Iterator

import numpy as np

from tf_lifelong.data import formats
from tf_lifelong.data.npy_rows import NpyRows
from tf_lifelong.data.splits import DataError, first_line

STREAM_PREFIXES = ("npz:", "npy:", "folder:")
"""The source spellings that may be streams (see the module docstring)."""


class Frames:
  """A time-ordered source: `count` images of one `shape` [H, W, C], read by rows."""

  name: str
  count: int
  shape: tuple[int, int, int]
  has_truth: bool = False

  def read(self, start: int, stop: int) -> np.ndarray:
    """Images start..stop-1 as checked uint8 [n, H, W, C]."""
    raise NotImplementedError

  def truth(self, start: int, stop: int) -> np.ndarray | None:
    """The true distribution id of rows start..stop-1 (None: the source has none)."""
    return None

  @property
  def rows_read(self) -> int:
    """Images materialised so far."""
    raise NotImplementedError

  def close(self) -> None:
    """Releases open files."""

  def read_all(self) -> np.ndarray:
    """Every image (told boundaries: one distribution, loaded whole)."""
    return self.read(0, self.count)


class _ArrayFrames(Frames):
  """The rows of a .npy array (a file, or the `images` of an .npz)."""

  def __init__(self, name: str, rows: NpyRows, truth: NpyRows | None):
    self.name, self._rows, self._truth = name, rows, truth
    self.count = len(rows)
    self.has_truth = truth is not None
    dims = rows.shape[1:]
    if len(dims) == 2:
      dims = (*dims, 1)
    if len(dims) != 3 or dims[2] not in (1, 3) or rows.dtype.kind not in "uif":
      raise DataError(
        f"{rows.where}: images must be [N, H, W] or [N, H, W, C] with C = 1 or 3, uint8 or "
        f"float in [0, 1]; got {rows.dtype} {list(rows.shape)}"
      )
    self.shape = dims
    if truth is not None and (truth.shape != (self.count,) or truth.dtype.kind not in "iu"):
      raise DataError(
        f"{truth.where} must be {self.count} integers (one per image), got "
        f"{truth.dtype} {list(truth.shape)}"
      )

  def read(self, start: int, stop: int) -> np.ndarray:
    block = self._rows.read(start, stop).reshape((-1, *self.shape))
    return _checked(block, self._rows.where, start)

  def truth(self, start: int, stop: int) -> np.ndarray | None:
    if self._truth is None:
      return None
    ids = self._truth.read(start, stop).astype(np.int64)
    if len(ids) and ids.min() < 0:
      row = start + int(np.argmax(ids < 0))
      raise DataError(f"{self._truth.where}: row {row} holds a negative id; use ids >= 0")
    return ids

  @property
  def rows_read(self) -> int:
    return self._rows.rows_read

  def close(self) -> None:
    self._rows.close()
    if self._truth is not None:
      self._truth.close()


class _FolderFrames(Frames):
  """Image files of one directory, in natural name order, decoded when read."""

  def __init__(self, name: str, path: str, files: list[str]):
    self.name, self._path, self._files = name, path, files
    self.count = len(files)
    self._first = os.path.join(path, files[0])
    self.shape = tuple(formats.read_image(self._first).shape)
    self._read = 0

  def read(self, start: int, stop: int) -> np.ndarray:
    out = []
    for file in self._files[start:stop]:
      path = os.path.join(self._path, file)
      image = formats.read_image(path)
      if image.shape != self.shape:
        raise DataError(
          f"{path} (frame {start + len(out)}) is {formats.shape_text(image.shape)} but "
          f"{self._first} is {formats.shape_text(self.shape)}; every frame must share one "
          "size and channel count (resize or convert it, or remove it)"
        )
      out.append(image)
    self._read += len(out)
    return np.stack(out) if out else np.zeros((0, *self.shape), np.uint8)

  @property
  def rows_read(self) -> int:
    return self._read


def _checked(block: np.ndarray, where: str, start: int) -> np.ndarray:
  """`block` (rows from `start` on) as uint8; a bad pixel's row named in the DataError."""
  if block.dtype == np.uint8:
    return block
  if block.dtype.kind == "f":
    bad = ~np.isfinite(block) | (block < 0) | (block > 1)
    what = "float pixels must be finite and lie in [0, 1]"
  else:
    bad = (block < 0) | (block > 255)
    what = "integer pixels must lie in [0, 255]"
  rows = np.flatnonzero(bad.reshape(len(block), -1).any(axis=1))
  if len(rows):
    value = block[rows[0]][bad[rows[0]]].flat[0].item()
    raise DataError(f"{where}: row {start + int(rows[0])} holds {value!r}; {what}")
  if block.dtype.kind == "f":
    return np.rint(block * 255).astype(np.uint8)
  return block.astype(np.uint8)


# ------------------------------------------------------------------ which sources
def _path(dataset: str) -> str:
  return os.path.expanduser(dataset.split(":", 1)[1])


def _npz_members(path: str) -> list[str]:
  """The array names of the .npz at `path` (its zip directory only)."""
  if not os.path.isfile(path):
    raise DataError(f"{path} not found" if not os.path.exists(path) else f"{path} is not a file")
  try:
    with zipfile.ZipFile(path) as archive:
      names = archive.namelist()
  except (OSError, zipfile.BadZipFile) as e:
    raise DataError(f"{path} is not a readable .npz file ({first_line(e)})") from None
  return [n[: -len(".npy")] for n in names if n.endswith(".npy")]


def _natural(name: str) -> list:
  """Sort key: digit runs compare as numbers (frame2 < frame10)."""
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def folder_layout(path: str) -> tuple[list[str], list[str]]:
  """(image files, sub-folders) directly in `path`, hidden ones aside; images in natural order.

  Raises:
    DataError: no such directory, or one holding neither (an empty source).
  """
  if not os.path.isdir(path):
    raise DataError(
      f"{path} is not a directory; folder:PATH needs a directory of PNG/JPEG frames (a "
      "stream) or of one sub-folder of images per distribution"
    )
  names = [n for n in os.listdir(path) if not n.startswith(".")]
  subs = sorted(n for n in names if os.path.isdir(os.path.join(path, n)))
  images = sorted((n for n in names if n.lower().endswith(formats.IMAGE_SUFFIXES)), key=_natural)
  if not images and not subs:
    raise DataError(
      f"{path} holds no PNG or JPEG images and no sub-folders: an empty source (put the "
      "frames of a stream in it, or one sub-folder of images per distribution)"
    )
  return images, subs


def is_stream_source(dataset: str) -> bool:
  """Whether `dataset` is a time-ordered source by its files (see the module docstring).

  Raises:
    DataError: a missing path, an unreadable archive, a folder with both frames and
      sub-folders (which of the two layouts is meant?), or an empty folder.
  """
  if dataset.startswith("npy:"):
    return True
  if dataset.startswith("npz:"):
    return "distribution" not in _npz_members(_path(dataset))
  if dataset.startswith("folder:"):
    path = _path(dataset)
    images, subs = folder_layout(path)
    if images and subs:
      raise DataError(
        f"{path} holds both images ({images[0]}, ...) and sub-folders ({subs[0]}, ...); "
        "a stream of frames has no sub-folders, a labelled source one sub-folder per "
        "distribution and no loose images: move one or the other"
      )
    return bool(images)
  return False


def reads_as_stream(config) -> bool:
  """Whether a run of `config` reads its dataset as a stream, a chunk at a time: detect
  mode on a stream source, or on an npz with `distribution` that no --order or
  --num_intervals schedules (the truth then only written beside the decisions)."""
  if config.boundaries != "detect" or not config.dataset.startswith(STREAM_PREFIXES):
    return False
  if is_stream_source(config.dataset):
    return True
  labelled_npz = config.dataset.startswith("npz:")
  return labelled_npz and config.order is None and config.num_intervals is None


def open_frames(dataset: str) -> Frames:
  """The Frames of a stream source (`npz:`, `npy:` or a flat `folder:`).

  Raises:
    DataError: not a stream source, missing or malformed files, no images.
  """
  path = _path(dataset)
  if dataset.startswith("folder:"):
    images, subs = folder_layout(path)
    if subs or not images:
      raise DataError(f"{path} holds sub-folders, not a stream of frames")
    source = _FolderFrames(dataset, path, images)
  elif dataset.startswith("npy:"):
    if not os.path.isfile(path):
      raise DataError(f"{path} not found")
    source = _ArrayFrames(dataset, NpyRows.in_file(path), None)
  elif dataset.startswith("npz:"):
    members = _npz_members(path)
    if "images" not in members:
      raise DataError(
        f"{path} has no array 'images' (it has: {', '.join(members) or 'none'}); save the "
        "frames with np.savez(path, images=...)"
      )
    truth = NpyRows.in_npz(path, "distribution") if "distribution" in members else None
    source = _ArrayFrames(dataset, NpyRows.in_npz(path, "images"), truth)
  else:
    raise DataError(f"{dataset} is not a stream source ({', '.join(STREAM_PREFIXES)})")
  if source.count == 0:
    raise DataError(f"{path} holds no images: an empty source")
  return source


def display_name(dataset: str) -> str:
  """A stream source's name as one distribution: its file or folder name."""
  base = os.path.basename(os.path.normpath(_path(dataset)))
  return os.path.splitext(base)[0] if dataset.startswith(("npz:", "npy:")) else base


# ------------------------------------------------------------------ chunks
@dataclasses.dataclass(frozen=True)
class Chunk:
  """One chunk of a stream: its images, rows, and the truth where the source has it."""

  images: np.ndarray
  start: int
  truth: int | np.ndarray | None = None
  """One id, or one per row where the chunk changes inside (Learner.observe takes both)."""
  truth_name: str | None = None


class Chunks:
  """A source cut into chunks of `size` rows in time order: max(1, N // size) chunks,
  the last taking the remainder (fewer than 2 * size rows), as labelled streams are cut."""

  def __init__(self, source: Frames, size: int):
    self.source, self.size = source, size

  def __len__(self) -> int:
    return max(1, self.source.count // self.size)

  def bounds(self, k: int) -> tuple[int, int]:
    """Rows start, stop of chunk k."""
    stop = self.source.count if k == len(self) - 1 else (k + 1) * self.size
    return k * self.size, stop

  def from_chunk(self, first: int) -> Iterator[Chunk]:
    """Chunks first, first + 1, ... read one at a time (the earlier ones are not read)."""
    for k in range(first, len(self)):
      start, stop = self.bounds(k)
      images = self.source.read(start, stop)
      truth = self.source.truth(start, stop)
      ids = np.unique(truth) if truth is not None else ()
      if not len(ids):
        chunk = Chunk(images, start)
      elif len(ids) == 1:
        chunk = Chunk(images, start, int(ids[0]), f"distribution {int(ids[0])}")
      else:  # A change inside the chunk: one id per row, each segment's truth its rows'.
        chunk = Chunk(images, start, truth)
      del images, truth  # Only the caller holds the chunk while the next one is read.
      yield chunk
      del chunk


# ------------------------------------------------------------------ requests
def check_request(config) -> None:
  """What a run of `config` cannot honour on a time-ordered source, found from the files'
  headers and names only (bin/train asks before TensorFlow loads).

  Raises:
    DataError: --order or --num_intervals on a source with no distributions; an npz
      without `images`; an empty source; a stream read in chunks with fewer images than
      one batch.
  """
  dataset = config.dataset
  if not dataset.startswith(STREAM_PREFIXES):
    return
  if dataset.startswith("npz:"):
    members = _npz_members(_path(dataset))
    if "images" not in members:
      raise DataError(
        f"{_path(dataset)} has no array 'images' (it has: {', '.join(members) or 'none'}); "
        "save it with np.savez(path, images=...)"
      )
  structural, streaming = is_stream_source(dataset), reads_as_stream(config)
  if not (structural or streaming):
    return
  for flag, value in (("order", config.order), ("num_intervals", config.num_intervals)):
    if structural and value is not None:
      raise DataError(
        f"--{flag} cannot be honoured on {dataset}: it has no distributions to schedule "
        "(one stream in time order: no `distribution` array, no sub-folders); drop --"
        f"{flag} (with --boundaries=detect the learner finds the changes itself)"
      )
  source = open_frames(dataset)
  source.close()
  if streaming and source.count < config.batch_size:
    raise DataError(
      f"{dataset} holds {source.count} images, fewer than --batch_size "
      f"({config.batch_size}): not one chunk's batch"
    )
