"""The task-free interval being built from chunks: its identity, its data, and its
chunk files (chunk_files.py) read back or removed (task_free.py)."""

from __future__ import annotations

import dataclasses

import numpy as np

from tf_lifelong.data import sources
from tf_lifelong.train import chunk_files


@dataclasses.dataclass
class OpenInterval:
  """The interval being built from chunks: its identity and its data so far."""

  index: int
  ident: int
  component: int | None
  decision: str
  first_chunk: int
  first_start: int = 0
  """The row of `first_chunk` where it starts (not 0: a chunk cut by segmenting.py)."""
  chunks: list[int] = dataclasses.field(default_factory=list)
  """The chunk of each piece of its data, in time order (a chunk that was cut may give an
  interval several pieces: segments all decided *same*)."""
  starts: list[int] = dataclasses.field(default_factory=list)
  """Each piece's first row in its chunk (0 for a whole chunk)."""
  truths: list = dataclasses.field(default_factory=list)
  steps: int = 0
  """Chunk training steps so far (part of the interval's budget)."""
  decision_seconds: float = 0.0
  chunk_train_seconds: float = 0.0
  teacher_truths: list = dataclasses.field(default_factory=list)
  carried: list = dataclasses.field(default_factory=list)
  """The pieces (`files`) of the interval that this one continues (the last one of an
  earlier bin/train part): their files stay in W/detect/, their data are this interval's
  too. A bare chunk number (records from before chunks were cut) is the whole chunk."""
  train: list = dataclasses.field(default_factory=list, repr=False)
  held: list = dataclasses.field(default_factory=list, repr=False)

  def __post_init__(self):
    self.starts = list(self.starts) + [0] * (len(self.chunks) - len(self.starts))

  def meta(self) -> dict:
    """What a checkpoint record keeps (the data are in the chunk files)."""
    return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("train", "held")}

  def split(self, which: str) -> sources.Split:
    """Its chunks' `train` or `held` (held-out) shares as one Split."""
    images = np.concatenate(getattr(self, which))
    return sources.Split(images, np.zeros(len(images), np.int64))

  @property
  def files(self) -> list[tuple[int, int]]:
    """(chunk, start row) of the files that hold its data (carried ones first)."""
    carried = [(c, 0) if isinstance(c, int) else (int(c[0]), int(c[1])) for c in self.carried]
    return carried + list(zip(self.chunks, self.starts))

  @property
  def chunk_count(self) -> int:
    """How many chunks gave it data (a chunk cut into several pieces counts once)."""
    return len(set(self.chunks))


def reopen(workdir: str, meta: dict | None) -> OpenInterval | None:
  """The interval of a checkpoint record (`meta`), its data read back from W/detect/.

  Raises:
    DataError: a chunk file is missing or unreadable.
  """
  if not meta:
    return None
  interval = OpenInterval(**meta)
  for c, start in interval.files:
    train, held = chunk_files.read(workdir, c, start)
    interval.train.append(train)
    interval.held.append(held)
  return interval


def remove_files(workdir: str, interval: OpenInterval) -> None:
  """Removes an ended interval's chunk files."""
  for c, start in interval.files:
    chunk_files.remove(workdir, c, start)
