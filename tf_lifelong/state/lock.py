"""One writer per workdir: the lock a run holds for the whole of its life.

    with lock.acquire(workdir) as held:      # LockError at once if another writer holds it
      if held.taken_over: print(held.taken_over)   # the lock of a dead holder was taken
      ...                                    # write the run

The lock is `workdir/lock.json`, a record of its holder: host, pid, since when,
the command, and, where a lease applies, when it was last renewed. A second
writer refuses at once with one line that names the holder (`LockError`, a
`resume.WorkdirError`). Readers (TensorBoard, bin/export into another folder,
`Learner.load(..., read_only=True)`) never take it. Each kind of path gets:

- a local path: `fcntl.flock` on lock.json. The kernel holds the lock for the
  holder's open file and drops it when the holder dies, however it dies (a
  SIGKILL included), so a dead holder's lock is always free: the next writer
  takes it over and says so (the record it found names the dead holder). Two
  writers in one process (two `Learner`s) also exclude each other. On a file
  system without flock (some network mounts answer ENOLCK), the record protocol
  below with an `O_EXCL` create: a holder on this host is alive while its pid
  runs (the same process: its start time is recorded too), one on another host
  while its lease is renewed.
- a URL workdir (`gs://`, `s3://`, `file://`, through `tf.io.gfile`, which has
  no flock): the record is a lease that a thread of the holder renews every
  `lease / 3` seconds. A record whose holder runs on this host is judged by its
  pid; one from another host is alive until `lease` seconds after its last
  renewal, then taken over. The record is written, then read back after a
  moment to see that no other writer's record replaced it; object stores have
  no atomic create, so two writers starting within that moment of each other
  is the window this cannot close.

Under `multi_worker` only the chief takes the lock (the callers ask
`runtime.is_chief`); the other workers write nothing into the workdir.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
import threading
import time
import uuid
from typing import Any

from tf_lifelong.state import files
from tf_lifelong.state.resume import WorkdirError

LOCK = "lock.json"
LEASE_SECONDS = 60.0
"""How long a URL workdir's lock outlives its holder's last renewal."""
SETTLE_SECONDS = 0.5
"""The pause before a URL lock's record is read back (another writer's record would show)."""


class LockError(WorkdirError):
  """Another writer holds the workdir; the message names it."""


def acquire(workdir: str, *, lease: float = LEASE_SECONDS) -> WorkdirLock:
  """Takes `workdir`'s lock for this process (create the workdir if needed).

  Raises:
    LockError: another writer (in this process or another) holds it.
    WorkdirError: the workdir cannot be written.
  """
  path = files.join(workdir, LOCK)
  record = _record(lease)
  try:
    files.makedirs(workdir)
  except OSError as e:
    raise WorkdirError(f"cannot write the workdir {workdir}: {e.strerror or e}") from None
  try:
    if not files.is_url(workdir):
      held = _flock(workdir, path, record)
      if held is not None:
        return held
    return _lease(workdir, path, record, lease)
  except OSError as e:
    raise WorkdirError(f"cannot take the lock {path}: {e.strerror or e}") from None


class WorkdirLock:
  """A held workdir lock; `release()` (or the end of a `with` block) frees it."""

  def __init__(self, workdir: str, path: str, record: dict, previous: dict | None):
    self.workdir, self.path, self.record = workdir, path, record
    self.taken_over = _takeover_line(workdir, previous) if previous else None
    """One line when the lock of a dead holder was taken over, else None."""
    self._fd: int | None = None
    self._stop = threading.Event()
    self.lost: str | None = None
    """Why a lease was lost (another writer replaced the record), else None."""

  def __enter__(self) -> WorkdirLock:
    return self

  def __exit__(self, *exc) -> None:
    self.release()

  @property
  def held(self) -> bool:
    return not self._stop.is_set()

  @property
  def fd(self) -> int | None:
    """The locked file's descriptor (a local flock), None for a lease. A child process given
    it (`subprocess.Popen(pass_fds=...)`) keeps the lock held while it runs, even past this
    process; `release()` here still frees it."""
    return self._fd

  def release(self) -> None:
    """Frees the lock (removes lock.json); a second call does nothing."""
    if self._stop.is_set():
      return
    self._stop.set()
    if self._fd is not None:
      import fcntl  # noqa: PLC0415 - POSIX only

      with contextlib.suppress(OSError):
        os.unlink(self.path)  # While still locked: no one can hold this file meanwhile.
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None
    elif self.lost is None and (_read(self.path) or {}).get("token") == self.record["token"]:
      files.remove(self.path)

  def _renew(self, lease: float) -> None:
    """The lease's renewals (a daemon thread), until released or lost."""
    while not self._stop.wait(lease / 3):
      try:
        found = _read(self.path)
        if found is None or found.get("token") != self.record["token"]:
          self.lost = f"the record now names {_holder(found)}" if found else "the record is gone"
          return
        self.record["renewed"] = _now()
        files.write_text(self.path, json.dumps(self.record, sort_keys=True) + "\n")
      except Exception:  # noqa: BLE001 - a failed renewal is retried at the next turn.
        continue


def inside(workdir: str, path: str) -> bool:
  """Whether `path` lies in `workdir` (or is it): writing there is a workdir writer's."""
  root = os.path.join(files.absolute(workdir), "")
  return os.path.join(files.absolute(path), "").startswith(root)


def _flock(workdir: str, path: str, record: dict) -> WorkdirLock | None:
  """The local lock through flock; None where the file system has no flock."""
  import fcntl  # noqa: PLC0415 - POSIX only

  for _ in range(20):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      found = _parse(_read_fd(fd))
      os.close(fd)
      raise LockError(_held_line(workdir, found)) from None
    except OSError as e:
      os.close(fd)
      if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        return None
      raise
    try:
      if os.fstat(fd).st_ino != os.stat(path).st_ino:  # Removed by a releasing holder.
        raise FileNotFoundError
    except FileNotFoundError:
      os.close(fd)
      continue
    previous = _parse(_read_fd(fd))
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record, sort_keys=True) + "\n").encode(), 0)
    os.fsync(fd)
    held = WorkdirLock(workdir, path, record, previous)
    held._fd = fd
    return held
  raise LockError(f"cannot take the lock {path}: it keeps being replaced")


def _lease(workdir: str, path: str, record: dict, lease: float) -> WorkdirLock:
  """The record protocol: URLs, and local file systems without flock (O_EXCL create)."""
  text = json.dumps(record, sort_keys=True) + "\n"
  previous = _read(path)
  if previous is not None and _alive(previous):
    raise LockError(_held_line(workdir, previous))
  if files.is_url(path):
    files.write_text(path, text)
    time.sleep(SETTLE_SECONDS)
    found = _read(path)
    if found is None or found.get("token") != record["token"]:
      raise LockError(_held_line(workdir, found or {}))
  else:
    if previous is not None:
      files.remove(path)  # A dead holder's; racing takers meet at the O_EXCL below.
    try:
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      raise LockError(_held_line(workdir, _read(path) or {})) from None
    with os.fdopen(fd, "w") as f:
      f.write(text)
  held = WorkdirLock(workdir, path, record, previous)
  thread = threading.Thread(target=held._renew, args=(lease,), daemon=True, name="workdir-lease")
  thread.start()
  return held


def _record(lease: float) -> dict[str, Any]:
  """This process's record: who holds the lock, since when, renewed when."""
  now = _now()
  return {
    "host": socket.gethostname(),
    "pid": os.getpid(),
    "pid_start": _start_time(os.getpid()),
    "since": now,
    "renewed": now,
    "lease_seconds": lease,
    "command": shlex.join(sys.argv) if sys.argv and sys.argv[0] else sys.executable,
    "token": uuid.uuid4().hex,
  }


def _now() -> float:
  return time.time()


def _start_time(pid: int) -> str | None:
  """The start time of process `pid` (Linux' /proc, in clock ticks), None elsewhere:
  tells a live holder from a new process that got its pid."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _alive(record: dict) -> bool:
  """Whether the holder a record names may still run (see the module docstring)."""
  if record.get("host") == socket.gethostname() and isinstance(record.get("pid"), int):
    try:
      os.kill(record["pid"], 0)
    except ProcessLookupError:
      return False
    except PermissionError:
      return True
    started = record.get("pid_start")
    return started is None or started == _start_time(record["pid"])
  try:
    renewed, lease = float(record["renewed"]), float(record["lease_seconds"])
  except (KeyError, TypeError, ValueError):
    return False  # A garbled record names no one.
  return time.time() - renewed < lease


def _read(path: str) -> dict | None:
  """The record at `path`, {} if garbled, None if there is none."""
  try:
    return _parse(files.read_text(path)) or {}
  except (OSError, UnicodeDecodeError, files.not_found()):
    return None


def _read_fd(fd: int) -> str:
  return os.pread(fd, 1 << 16, 0).decode("utf-8", "replace")


def _parse(text: str) -> dict | None:
  """A record from its text; None if empty or garbled."""
  try:
    value = json.loads(text) if text.strip() else None
  except ValueError:
    return None
  return value if isinstance(value, dict) else None


def _when(seconds: Any) -> str:
  try:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(seconds)))
  except (TypeError, ValueError, OverflowError, OSError):
    return "an unknown time"


def _holder(record: dict | None) -> str:
  """`host H, pid P (this process), since T, command C` of a record."""
  if not record:
    return "a holder whose record is unreadable"
  pid = record.get("pid")
  mine = (
    " (this process)" if pid == os.getpid() and record.get("host") == socket.gethostname() else ""
  )
  return (
    f"host {record.get('host', '?')}, pid {pid}{mine}, since {_when(record.get('since'))}, "
    f"command: {record.get('command', '?')}"
  )


def _held_line(workdir: str, record: dict | None) -> str:
  return (
    f"{workdir} is locked by another writer ({_holder(record)}); one writer per workdir: wait "
    "for it to end, stop it, or choose another workdir (readers need no lock)"
  )


def _takeover_line(workdir: str, previous: dict) -> str:
  return f"took over the lock of {workdir} from a writer that is gone ({_holder(previous)})"
