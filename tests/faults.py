"""Fault injection for the tests: run a program that SIGKILLs itself at a chosen point,
or whose disk fills up at a chosen write.

    python -m tests.faults <point>:<interval>[:<step>] PROGRAM [ARGS...]
    python -m tests.faults <point>:<interval>[:<step>] -m MODULE [ARGS...]
    python -m tests.faults enospc:<site>[:<n>] PROGRAM [ARGS...]

listens to tf_lifelong.train.milestones and kills the process (SIGKILL: no cleanup, as
a lost machine) the first time the run reaches `point` of `interval` (and, for
`train` and `chunk`, `step`), then runs PROGRAM (e.g. bin/train) or MODULE as
__main__. The product holds no fault injection of its own; milestones.POINTS
lists the points.

`enospc:<site>[:<n>]` makes the n-th write (default 1) at one write site fail as
a full disk does, after part of it reached the disk: `checkpoint` (TensorFlow's
checkpoint write: a `NAME_temp` folder with a partial shard, then
ResourceExhaustedError "No space left on device", as TensorFlow raises it),
`metrics` (metrics.jsonl: half its bytes in the temporary file, then OSError
ENOSPC), `grid` (a sample grid PNG, the same) or `export` (the SavedModel: a
partial variables file, then ResourceExhaustedError).
"""

from __future__ import annotations

import errno
import itertools
import os
import runpy
import signal
import sys


def parse(spec: str) -> tuple[str, int, int | None]:
  """`point:interval[:step]` -> (point, interval, step); ValueError with a message if not."""
  from tf_lifelong.train import milestones  # After main() put the program's checkout first.

  parts = spec.split(":")
  try:
    if parts[0] not in milestones.POINTS or len(parts) not in (2, 3):
      raise ValueError
    return parts[0], int(parts[1]), (int(parts[2]) if len(parts) == 3 else None)
  except ValueError:
    raise ValueError(
      f"fault {spec!r}: expected <point>:<interval>[:<step>] with a point among "
      f"{', '.join(milestones.POINTS)}"
    ) from None


def kill_at(spec: str) -> None:
  """Makes this process SIGKILL itself when the run reaches the point `spec` names."""
  from tf_lifelong.train import milestones

  point, interval, step = parse(spec)

  def listener(at: str, at_interval: int, at_step: int | None) -> None:
    if (at, at_interval) == (point, interval) and (step is None or at_step in (None, step)):
      os.kill(os.getpid(), signal.SIGKILL)

  milestones.listen(listener)


DISK_SITES = ("checkpoint", "metrics", "grid", "export")
"""The write sites `enospc:<site>` can fill the disk at."""


def parse_enospc(spec: str) -> tuple[str, int]:
  """`enospc:<site>[:<n>]` -> (site, n); ValueError with a message if not."""
  parts = spec.split(":")
  try:
    if parts[0] != "enospc" or len(parts) not in (2, 3) or parts[1] not in DISK_SITES:
      raise ValueError
    n = int(parts[2]) if len(parts) == 3 else 1
    if n < 1:
      raise ValueError
    return parts[1], n
  except ValueError:
    raise ValueError(
      f"fault {spec!r}: expected enospc:<site>[:<n>] with a site among {', '.join(DISK_SITES)}"
    ) from None


def _tensorflow():
  """tensorflow, imported with file descriptor 2 silenced as bin/* import it (its native
  start-up lines would otherwise reach the program's stderr)."""
  sys.stderr.flush()
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    import tensorflow as tf
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)
  return tf


def _no_space_tf(path: str):
  tf = _tensorflow()
  return tf.errors.ResourceExhaustedError(
    None, None, f"{path}; No space left on device [Op:SaveV2]"
  )


def _partial(path: str) -> None:
  """A partly written file at `path` (its folder made), as a full disk leaves one."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(b"\0" * 100)


def fill_disk_at(spec: str) -> None:
  """Makes the write that `spec` (`enospc:<site>[:<n>]`) names fail for lack of space."""
  site, n = parse_enospc(spec)
  calls = itertools.count(1)
  if site in ("metrics", "grid"):
    from tf_lifelong.state import files

    real_write = files.write_bytes
    wanted = ".png" if site == "grid" else "metrics.jsonl"

    def write_bytes(path, data):
      if not str(path).endswith(wanted) or next(calls) != n:
        return real_write(path, data)
      with files.atomic_path(path) as tmp:  # Half the bytes land, then the disk is full.
        with open(tmp, "wb") as f:
          f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), tmp)

    files.write_bytes = write_bytes
    return
  tf = _tensorflow()

  if site == "checkpoint":
    real_checkpoint = tf.train.Checkpoint.write

    def write(self, file_prefix, *args, **kwargs):
      if next(calls) != n:
        return real_checkpoint(self, file_prefix, *args, **kwargs)
      shard = os.path.join(f"{file_prefix}_temp", "part-00000-of-00001.data-00000-of-00001")
      _partial(shard)
      raise _no_space_tf(shard)

    tf.train.Checkpoint.write = write
    return
  real_save = tf.saved_model.save

  def save(obj, export_dir, *args, **kwargs):
    if next(calls) != n:
      return real_save(obj, export_dir, *args, **kwargs)
    shard = os.path.join(export_dir, "variables", "variables.data-00000-of-00001")
    _partial(shard)
    raise _no_space_tf(shard)

  tf.saved_model.save = save


def main(argv: list[str]) -> None:
  if len(argv) < 3:
    sys.exit(__doc__)
  if argv[2] != "-m":  # The program's own checkout first, as bin/* puts it (under Bazel
    # the working directory is a runfiles tree that holds only the test's deps).
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(argv[2]))))
  if argv[1].startswith("enospc:"):
    fill_disk_at(argv[1])
  else:
    kill_at(argv[1])
  if argv[2] == "-m":
    sys.argv = [argv[3], *argv[4:]]
    runpy.run_module(argv[3], run_name="__main__", alter_sys=True)
  else:
    sys.argv = argv[2:]
    runpy.run_path(argv[2], run_name="__main__")


if __name__ == "__main__":
  main(sys.argv)
