"""The task-free interval being built from chunks: its identity, its data in bounded memory,
and their snapshots on disk (task_free.py).

The data are two reservoirs (interval_buffer.py): the training share and the held-out
share of every segment that joined the interval, at most `--interval_buffer` examples
together (the held-out share's part is `validation_fraction` of it). While an interval
holds fewer examples than that, the reservoirs hold them all, in time order.

On disk, each checkpoint whose record has an open (or kept) interval names a snapshot of
its reservoirs, W/detect/interval-XXX-NNNNNN.npz (XXX the interval, NNNNNN the pieces it
had been given), written once per content (`persist`) and removed once no checkpoint
record names it (`prune`). Disk is therefore flat in the interval's length, like memory.
Records from before the reservoirs (a list of chunk files, chunk_files.py) are still read.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re

import numpy as np

from tf_lifelong.data import sources
from tf_lifelong.state import files
from tf_lifelong.train import chunk_files
from tf_lifelong.train.interval_buffer import IntervalBuffer

_SNAPSHOT = re.compile(r"^interval-\d+-\d+\.npz$")
_HELD_SALT = 1
"""Keys the held-out reservoir's random numbers apart from the training one's."""


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
  """The pieces (chunk, start) of the interval this one continued (a bin/train part's last):
  in a workdir from before the reservoirs, chunk files that this interval's data came from
  too (read back on resume, removed when it ends)."""
  snapshot: str | None = None
  """The file in W/detect/ that holds its reservoirs as of the latest checkpoint."""
  transition: dict | None = None
  """A gradual transition (gradual.py): {"from": p, "to": q, "share": its latest newer share}."""
  train: IntervalBuffer | None = dataclasses.field(default=None, repr=False)
  held: IntervalBuffer | None = dataclasses.field(default=None, repr=False)
  latest: np.ndarray | None = dataclasses.field(default=None, repr=False)
  """The held-out rows of the piece that joined it last (not in the record)."""

  def __post_init__(self):
    self.starts = list(self.starts) + [0] * (len(self.chunks) - len(self.starts))

  def meta(self) -> dict:
    """What a checkpoint record keeps (the data are in the snapshot)."""
    return {
      k: v for k, v in dataclasses.asdict(self).items() if k not in ("train", "held", "latest")
    }

  def make_buffers(self, capacity: int, validation_fraction: float, seed: int) -> None:
    """Empty reservoirs: `capacity` examples in all, the held-out share's part of it."""
    held = max(1, round(capacity * validation_fraction)) if validation_fraction > 0 else 1
    self.train = IntervalBuffer(capacity - held if validation_fraction > 0 else capacity, seed)
    self.held = IntervalBuffer(held, seed * 7919 + _HELD_SALT)

  def add(self, key: tuple[int, int], train: np.ndarray, held: np.ndarray) -> None:
    """Adds a piece's training and held-out shares (`key`: its chunk and first row)."""
    self.train.add(train, key)
    self.held.add(held, key)
    self.latest = held

  def split(self, which: str) -> sources.Split:
    """Its `train` or `held` (held-out) reservoir as a Split (a copy)."""
    buffer = getattr(self, which)
    images = buffer.images().copy() if buffer.seen else np.zeros((0,), np.uint8)
    return sources.Split(images, np.zeros(len(images), np.int64))

  @property
  def files(self) -> list[tuple[int, int]]:
    """(chunk, start row) of the chunk files of a record from before the reservoirs."""
    carried = [(c, 0) if isinstance(c, int) else (int(c[0]), int(c[1])) for c in self.carried]
    return carried + list(zip(self.chunks, self.starts))

  @property
  def chunk_count(self) -> int:
    """How many chunks gave it data (a chunk cut into several pieces counts once)."""
    return len(set(self.chunks))


def _path(workdir: str, name: str) -> str:
  return os.path.join(workdir, chunk_files.CHUNKS, name)


def persist(workdir: str, interval: OpenInterval | None, chief: bool) -> None:
  """Names the interval's snapshot for its current data, and (chief) writes it if new."""
  if interval is None:
    return
  name = f"interval-{interval.index:03d}-{len(interval.chunks):06d}.npz"
  if name == interval.snapshot:
    return  # Written already: its data have not changed since.
  if chief:
    buffer = io.BytesIO()
    arrays = {f"train_{k}": v for k, v in interval.train.state().items()}
    arrays.update({f"held_{k}": v for k, v in interval.held.state().items()})
    np.savez(buffer, **arrays)
    files.makedirs(os.path.dirname(_path(workdir, name)))
    files.write_bytes(_path(workdir, name), buffer.getvalue())
  interval.snapshot = name


def prune(workdir: str, records: list[dict]) -> None:
  """Removes the snapshots in W/detect/ that no checkpoint record (`records`) names (never
  fatal): each lives as long as a checkpoint that a resume may start from."""
  referenced = {
    ((record.get("detect") or {}).get(key) or {}).get("snapshot")
    for record in records
    for key in ("open", "last")
  }
  try:
    names = files.listdir(os.path.join(workdir, chunk_files.CHUNKS))
  except (OSError, files.not_found()):
    return
  for name in names:
    if _SNAPSHOT.match(name) and name not in referenced:
      try:
        files.remove(_path(workdir, name))
      except (OSError, files.not_found()):
        pass


def reopen(workdir: str, meta: dict | None, config) -> OpenInterval | None:
  """The interval of a checkpoint record (`meta`), its reservoirs read back from W/detect/.

  Raises:
    DataError: the snapshot (or, in an older record, a chunk file) is missing or unreadable.
  """
  if not meta:
    return None
  interval = OpenInterval(**meta)
  if interval.snapshot is None:  # A record from before the reservoirs: one file per piece.
    interval.make_buffers(config.interval_buffer, config.validation_fraction, config.seed)
    for c, start in interval.files:
      interval.add((c, start), *chunk_files.read(workdir, c, start))
    return interval
  path = _path(workdir, interval.snapshot)
  try:
    with np.load(io.BytesIO(files.read_bytes(path))) as f:
      state = {k: f[k] for k in f.files}
    interval.train = IntervalBuffer.from_state(_part(state, "train_"))
    interval.held = IntervalBuffer.from_state(_part(state, "held_"))
  except (OSError, ValueError, KeyError, files.not_found()) as e:
    raise sources.DataError(
      f"cannot resume the open interval: its snapshot {path} is unreadable ({e}); pass "
      "--overwrite to start afresh"
    ) from None
  return interval


def _part(state: dict, prefix: str) -> dict:
  return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def remove_files(workdir: str, interval: OpenInterval) -> None:
  """Removes the chunk files of an interval from a record from before the reservoirs."""
  for c, start in interval.files:
    chunk_files.remove(workdir, c, start)
