"""The open task-free interval's chunks on disk: W/detect/chunk-NNNNNN.npz (task_free.py).

Each chunk's training and held-out shares are written as it joins the open
interval (chief only), read back when a killed run resumes inside that interval,
and removed once the interval has ended (its data are then in the model only).
"""

from __future__ import annotations

import io
import os

import numpy as np

from tf_lifelong.data import sources
from tf_lifelong.state import files

CHUNKS = "detect"
"""The folder of the workdir that holds the open interval's chunks."""


def path(workdir: str, chunk: int) -> str:
  """The file of chunk number `chunk`."""
  return os.path.join(workdir, CHUNKS, f"chunk-{chunk:06d}.npz")


def write(workdir: str, chunk: int, train: np.ndarray, held: np.ndarray) -> None:
  """Writes the chunk's training and held-out images."""
  buffer = io.BytesIO()
  np.savez(buffer, train=train, held=held)
  files.makedirs(os.path.dirname(path(workdir, chunk)))
  files.write_bytes(path(workdir, chunk), buffer.getvalue())


def read(workdir: str, chunk: int) -> tuple[np.ndarray, np.ndarray]:
  """The chunk's (training, held-out) images.

  Raises:
    DataError: the file is missing or unreadable.
  """
  try:
    with np.load(io.BytesIO(files.read_bytes(path(workdir, chunk)))) as f:
      return f["train"], f["held"]
  except (OSError, ValueError, KeyError, files.not_found()) as e:
    raise sources.DataError(
      f"cannot resume the open interval: chunk file {path(workdir, chunk)} is "
      f"unreadable ({e}); pass --overwrite to start afresh"
    ) from None


def remove(workdir: str, chunk: int) -> None:
  """Removes the chunk's file (none there is no error)."""
  try:
    files.remove(path(workdir, chunk))
  except (OSError, files.not_found()):
    pass
