"""A Learner's hold on its workdir: the lock (state/lock.py) from its start until `close()`.

A part of `Learner` (train/learner.py). A learner made by `Learner(...)` or
`Learner.load(...)` takes the lock on the chief (under `multi_worker` the other
workers write nothing) and keeps it until `close()`, `finish()`, the end of a
`with` block or its garbage collection; `learn` and `observe` after that take it
again. `Learner.load(..., read_only=True)` takes none and refuses to write. The
learner of `lifelong.run` (`Learner.for_run`) holds none itself: the run holds it.
"""

from __future__ import annotations

import contextlib
import weakref

from tf_lifelong.state import lock as workdir_lock
from tf_lifelong.state import resume
from tf_lifelong.train.context import RunError


def take_lock(workdir: str) -> workdir_lock.WorkdirLock:
  """`workdir`'s lock for this process; a RunError naming the holder if another has it."""
  try:
    return workdir_lock.acquire(workdir)
  except resume.WorkdirError as e:
    raise RunError(str(e)) from None


class Ownership:
  """The learner's lock: taken at its start, freed by `close()`, taken again to write."""

  _lock: workdir_lock.WorkdirLock | None = None
  _owns_lock = False
  """Whether the learner holds its own lock (not the learner of lifelong.run)."""
  _read_only = False

  @contextlib.contextmanager
  def _holding(self, workdir: str, chief: bool, read_only: bool = False):
    """Takes `workdir`'s lock for the body (a chief, unless `read_only`), kept on success;
    a WorkdirError in the body (resume.py) becomes a RunError."""
    self._owns_lock, self._read_only = not read_only, read_only
    held = take_lock(workdir) if chief and self._owns_lock else None
    try:
      yield
    except BaseException as e:
      if held is not None:
        held.release()
      if isinstance(e, resume.WorkdirError):
        raise RunError(str(e)) from None
      raise
    self._keep(held)

  def _keep(self, held: workdir_lock.WorkdirLock | None) -> None:
    self._lock = held
    if held is not None:
      weakref.finalize(self, held.release)  # A learner dropped without close() frees it.
      if held.taken_over:
        self._progress.message(held.taken_over)

  def _writable(self) -> None:
    """Refuses a read-only learner's writes; after `close()`, takes the lock again."""
    if self._read_only:
      raise RunError(
        f"this learner of {self.workdir} was opened read_only; "
        f"Learner.load({self.workdir!r}) opens it to learn"
      )
    if self._owns_lock and self._lock is None and self.ctx.chief:
      self._keep(take_lock(self.workdir))

  def close(self) -> None:
    """Frees the workdir's lock: another writer may open it (a later `learn` takes it again)."""
    if self._lock is not None:
      self._lock.release()
      self._lock = None

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.close()
