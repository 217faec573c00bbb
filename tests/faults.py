"""Fault injection for the tests: run a program that SIGKILLs itself at a chosen point.

    python -m tests.faults <point>:<interval>[:<step>] PROGRAM [ARGS...]
    python -m tests.faults <point>:<interval>[:<step>] -m MODULE [ARGS...]

listens to tf_lifelong.train.milestones and kills the process (SIGKILL: no cleanup, as
a lost machine) the first time the run reaches `point` of `interval` (and, for
`train` and `chunk`, `step`), then runs PROGRAM (e.g. bin/train) or MODULE as
__main__. The product holds no fault injection of its own; milestones.POINTS
lists the points.
"""

from __future__ import annotations

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


def main(argv: list[str]) -> None:
  if len(argv) < 3:
    sys.exit(__doc__)
  if argv[2] != "-m":  # The program's own checkout first, as bin/* puts it (under Bazel
    # the working directory is a runfiles tree that holds only the test's deps).
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(argv[2]))))
  kill_at(argv[1])
  if argv[2] == "-m":
    sys.argv = [argv[3], *argv[4:]]
    runpy.run_module(argv[3], run_name="__main__", alter_sys=True)
  else:
    sys.argv = argv[2:]
    runpy.run_path(argv[2], run_name="__main__")


if __name__ == "__main__":
  main(sys.argv)
