"""Chunk files of the open task-free interval, W/detect/chunk-NNNNNN[-SSSSSS].npz: the
format of workdirs written before the open interval's reservoirs (open_interval.py).

Those versions wrote each chunk's (or segment's, SSSSSS its first row) training and
held-out shares as it joined the open interval. A checkpoint record of theirs lists the
files, and a resume reads them back into the reservoirs; the files are removed once the
interval has ended. New runs write snapshots instead (`write` stays for tests that make
such a workdir).
"""

from __future__ import annotations

import io
import os

import numpy as np

from tf_lifelong.data import sources
from tf_lifelong.state import files

CHUNKS = "detect"
"""The folder of the workdir that holds the open interval's chunks."""


def path(workdir: str, chunk: int, start: int = 0) -> str:
  """The file of chunk number `chunk` (of its segment from row `start`)."""
  tail = f"-{start:06d}" if start else ""
  return os.path.join(workdir, CHUNKS, f"chunk-{chunk:06d}{tail}.npz")


def write(workdir: str, chunk: int, train: np.ndarray, held: np.ndarray, start: int = 0) -> None:
  """Writes the chunk's (segment's) training and held-out images."""
  buffer = io.BytesIO()
  np.savez(buffer, train=train, held=held)
  files.makedirs(os.path.dirname(path(workdir, chunk, start)))
  files.write_bytes(path(workdir, chunk, start), buffer.getvalue())


def read(workdir: str, chunk: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The chunk's (training, held-out) images.

  Raises:
    DataError: the file is missing or unreadable.
  """
  try:
    with np.load(io.BytesIO(files.read_bytes(path(workdir, chunk, start)))) as f:
      return f["train"], f["held"]
  except (OSError, ValueError, KeyError, files.not_found()) as e:
    raise sources.DataError(
      f"cannot resume the open interval: chunk file {path(workdir, chunk, start)} is "
      f"unreadable ({e}); pass --overwrite to start afresh"
    ) from None


def remove(workdir: str, chunk: int, start: int = 0) -> None:
  """Removes the chunk's (segment's) file (none there is no error)."""
  try:
    files.remove(path(workdir, chunk, start))
  except (OSError, files.not_found()):
    pass
