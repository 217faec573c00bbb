"""The file system of a workdir: local paths through `os`, any other through `tf.io.gfile`.

A workdir may be a local path or a URL of any file system TensorFlow knows
(`gs://bucket/runs/a`, `s3://...`, `hdfs://...`, `ram://...` in memory,
`file:///...`). Everything a run reads or writes outside TensorFlow's own
savers goes through these functions: local paths stay plain `os` calls (and
need no TensorFlow, so that the CLI answers at once), URLs go through
`tf.io.gfile`, imported only then.

    files.write_bytes(files.join(workdir, "config.json"), data)   # atomic
    files.exists(path); files.listdir(path); files.rmtree(path)
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator


def is_url(path: str) -> bool:
  """Whether `path` names a file system by its scheme (`gs://...`), not a local path."""
  return "://" in os.fspath(path)


def _gfile():
  import tensorflow as tf  # noqa: PLC0415 - only for URLs

  return tf.io.gfile


def join(path: str, *parts: str) -> str:
  """os.path.join, which also joins URLs (their separator is `/`)."""
  return os.path.join(os.fspath(path), *parts)


def absolute(path: str) -> str:
  """The absolute form of a local path; a URL as it is."""
  path = os.fspath(path)
  return path if is_url(path) else os.path.abspath(path)


def exists(path: str) -> bool:
  return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
  return _gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
  if is_url(path):
    return _gfile().exists(path) and not _gfile().isdir(path)
  return os.path.isfile(path)


def listdir(path: str) -> list[str]:
  """Entry names of a folder (without a trailing `/`, which gfile gives folders)."""
  if is_url(path):
    return [name.rstrip("/") for name in _gfile().listdir(path)]
  return os.listdir(path)


def makedirs(path: str) -> None:
  if is_url(path):
    _gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


def remove(path: str) -> None:
  """Removes a file; a missing one is not an error."""
  with contextlib.suppress(OSError, FileNotFoundError, not_found()):
    if is_url(path):
      _gfile().remove(path)
    else:
      os.remove(path)


def rmtree(path: str) -> None:
  """Removes a folder and all it holds; a missing one is not an error."""
  if is_url(path):
    with contextlib.suppress(not_found()):
      _gfile().rmtree(path)
  else:
    shutil.rmtree(path, ignore_errors=True)


def rename(src: str, dst: str) -> None:
  """Renames a file or folder, replacing a file at `dst` (atomic on POSIX; on object
  stores a copy and a delete)."""
  if is_url(src):
    _gfile().rename(src, dst, overwrite=True)
  else:
    os.replace(src, dst)


def move_tree(src: str, dst: str) -> None:
  """Moves a folder to `dst` (which must not exist): a rename where the file system
  can rename folders (POSIX: atomic), else a copy of every file and a delete of `src`
  (object stores such as GCS copy anyway)."""
  if not is_url(src):
    os.rename(src, dst)
    return
  gfile = _gfile()
  try:
    gfile.rename(src, dst)
    return
  except Exception:  # noqa: BLE001 - whatever the file system says: copy instead.
    pass
  for folder, _, names in gfile.walk(src):
    target = join(dst, os.path.relpath(folder, src)) if folder != src else dst
    gfile.makedirs(target)
    for name in names:
      gfile.copy(join(folder, name), join(target, name), overwrite=True)
  rmtree(src)


def read_bytes(path: str) -> bytes:
  if is_url(path):
    with _gfile().GFile(path, "rb") as f:
      return f.read()
  with open(path, "rb") as f:
    return f.read()


def read_text(path: str) -> str:
  return read_bytes(path).decode("utf-8")


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
"""The errnos of a full disk (or quota)."""


def no_space(error: BaseException) -> bool:
  """Whether `error` is a full disk: an OSError with ENOSPC / EDQUOT, or TensorFlow's error
  (ResourceExhaustedError on a POSIX file system) whose message says so."""
  if isinstance(error, OSError):
    return error.errno in NO_SPACE
  return any(os.strerror(code) in str(error) for code in NO_SPACE)


def write_errors() -> tuple[type[BaseException], ...]:
  """The errors a failed write raises: OSError, and where TensorFlow is loaded its
  ResourceExhaustedError (a full disk under TensorFlow's own writers)."""
  import sys  # noqa: PLC0415

  tf = sys.modules.get("tensorflow")
  return (OSError,) if tf is None else (OSError, tf.errors.ResourceExhaustedError)


def not_found() -> type[BaseException]:
  """The error gfile raises for a missing file (FileNotFoundError without TensorFlow)."""
  import sys  # noqa: PLC0415

  tf = sys.modules.get("tensorflow")
  return tf.errors.NotFoundError if tf is not None else FileNotFoundError


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path next to `path` (`.NAME.XXXXXXXX`); renames it over `path`
  on success, removes it on failure. For URLs the temporary is a name in the same folder."""
  folder, name = os.path.split(absolute(path))
  makedirs(folder)
  if is_url(path):
    tmp = join(folder, f".{name}.{uuid.uuid4().hex[:8]}")
  else:
    fd, tmp = tempfile.mkstemp(prefix="." + name + ".", dir=folder)
    os.close(fd)
  try:
    yield tmp
    rename(tmp, path)
  except BaseException:
    remove(tmp)
    raise


def write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to `path` atomically (a reader never sees half a file)."""
  with atomic_path(path) as tmp:
    if is_url(path):
      with _gfile().GFile(tmp, "wb") as f:
        f.write(data)
    else:
      with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_text(path: str, text: str) -> None:
  write_bytes(path, text.encode("utf-8"))


def temporary_sibling(path: str, kind: str) -> str:
  """A new empty folder `PATH.KIND-XXXXXXXX` beside `path` (for atomic folder writes)."""
  folder, name = os.path.split(absolute(path))
  makedirs(folder)
  if not is_url(path):
    return tempfile.mkdtemp(prefix=f"{name}.{kind}-", dir=folder)
  sibling = join(folder, f"{name}.{kind}-{uuid.uuid4().hex[:8]}")
  makedirs(sibling)
  return sibling
