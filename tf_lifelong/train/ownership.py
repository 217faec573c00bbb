"""A Learner's hold on its workdir: the lock (state/lock.py) from its start until `close()`,
and what a full disk does to it.

A part of `Learner` (train/learner.py). A learner made by `Learner(...)` or
`Learner.load(...)` takes the lock on the chief (under `multi_worker` the other
workers write nothing) and keeps it until `close()`, `finish()`, the end of a
`with` block or its garbage collection; `learn` and `observe` after that take it
again, `export` into the workdir takes it for the write only. `Learner.load(...,
read_only=True)` takes none and refuses to write into the workdir (an `export`
elsewhere is a reader's). The learner of `lifelong.run` (`Learner.for_run`) holds
none itself: the run holds it.

A full disk (ENOSPC, or TensorFlow's ResourceExhaustedError saying so) in a `writer`
method (`learn`, `observe`, `end_interval`, `finish`) raises a RunError of one line
(what could not be written, the workdir's last checkpoint, which stays) and stops the
learner: its lock is freed and its later writes are refused, so that
`Learner.load(workdir)`, in this process too, goes on from that checkpoint. In `export`
nothing is left half done: the same line, and the learner goes on. The learner of
`lifelong.run` leaves a full disk to the run, whose line names the command to repeat.
"""

from __future__ import annotations

import contextlib
import functools
import weakref

from tf_lifelong.state import checkpoints, files, resume
from tf_lifelong.state import lock as workdir_lock
from tf_lifelong.train.context import RunError


def take_lock(workdir: str) -> workdir_lock.WorkdirLock:
  """`workdir`'s lock for this process; a RunError naming the holder if another has it."""
  try:
    return workdir_lock.acquire(workdir)
  except resume.WorkdirError as e:
    raise RunError(str(e)) from None


def disk_full(error: BaseException, then: str) -> RunError | None:
  """The one-line RunError of a full disk (None if `error` is another error): what could
  not be written, and `then` (what stays, what to do)."""
  if not isinstance(error, files.write_errors()) or not files.no_space(error):
    return None
  where = getattr(error, "filename", None) or str(error).split(";")[0].split("}} ")[-1]
  return RunError(f"disk full: cannot write {where} (no space left on its device); {then}")


def writer(method):
  """A Learner method that writes into its workdir: a full disk in it stops the learner
  with one line (the module docstring)."""

  @functools.wraps(method)
  def guarded(self, *args, **kwargs):
    try:
      return method(self, *args, **kwargs)
    except files.write_errors() as e:
      error = disk_full(e, self._stopping_line()) if self._own_errors else None
      if error is None:
        raise
      self._stopped = str(error)
      self.close()
      raise error from None

  return guarded


class Ownership:
  """The learner's lock: taken at its start, freed by `close()`, taken again to write."""

  _lock: workdir_lock.WorkdirLock | None = None
  _owns_lock = False
  """Whether the learner holds its own lock (not the learner of lifelong.run)."""
  _read_only = False
  _stopped: str | None = None
  """Why a full disk stopped the learner (its writes are refused), else None."""

  @property
  def _own_errors(self) -> bool:
    """Whether the learner words its own errors (not lifelong.run's, whose run does)."""
    return self._owns_lock or self._read_only

  def _stopping_line(self) -> str:
    try:
      last = checkpoints.read_state(self.workdir)["checkpoint"]
    except checkpoints.CheckpointError:
      return "the learner stopped before its first checkpoint: free some space and start again"
    return (
      f"the learner stopped and its last checkpoint, {last}, stays: free some space, then "
      f"Learner.load({self.workdir!r}) goes on from it"
    )

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

  def _refuse_writes(self) -> None:
    """Refuses to write into the workdir for a read-only or stopped learner."""
    if self._read_only:
      raise RunError(
        f"this learner of {self.workdir} was opened read_only; "
        f"Learner.load({self.workdir!r}) opens it to learn"
      )
    if self._stopped:
      raise RunError(f"this learner stopped: {self._stopped}")

  def _writable(self) -> None:
    """Refuses a read-only or stopped learner's writes; after `close()`, takes the lock again."""
    self._refuse_writes()
    if self._owns_lock and self._lock is None and self.ctx.chief:
      self._keep(take_lock(self.workdir))

  @contextlib.contextmanager
  def _writing(self, path: str):
    """The chief's one write at `path` (the export): into the workdir only by a learner that
    may write there, under the lock (a closed learner takes it for the write, then frees it);
    elsewhere no lock is needed. A full disk: one line, the learner goes on."""
    held = None
    if workdir_lock.inside(self.workdir, path):
      self._refuse_writes()
      if self._owns_lock and self._lock is None:
        held = take_lock(self.workdir)
    try:
      yield
    except files.write_errors() as e:
      then = "nothing else was written: free some space and try again"
      error = disk_full(e, then) if self._own_errors else None
      if error is None:
        raise
      raise error from None
    finally:
      if held is not None:
        held.release()

  def close(self) -> None:
    """Frees the workdir's lock: another writer may open it (a later `learn` takes it again)."""
    if self._lock is not None:
      self._lock.release()
      self._lock = None

  def __enter__(self):
    return self

  def __exit__(self, *exc) -> None:
    self.close()
