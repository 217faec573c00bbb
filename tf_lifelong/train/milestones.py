"""Named points of a run that observers may watch: the product's one neutral hook.

The learner announces where it is, `reached("train", interval, step)`, at the
points where an interruption is most delicate (docs/reliability.md lists them);
nothing listens unless someone calls `listen`. The tests' fault injection
(tests/faults.py) listens to kill a run exactly there.

Points: `handover` (an interval's student built, before its start checkpoint),
`train` (an evaluation boundary inside the interval, before its checkpoint;
`step` is the interval's step), `record` (the interval's metrics files written,
before its end checkpoint), `export` (the SavedModel complete in its temporary
folder, before the rename) and `chunk` (task-free streams: after the
checkpoint of chunk number `step`).
"""

from __future__ import annotations

from collections.abc import Callable

POINTS = ("handover", "train", "record", "export", "chunk")

Listener = Callable[[str, int, "int | None"], None]
_listeners: list[Listener] = []


def listen(listener: Listener) -> Callable[[], None]:
  """Calls `listener(point, interval, step)` at every point reached; returns its remover."""
  _listeners.append(listener)
  return lambda: _listeners.remove(listener)


def reached(point: str, interval: int, step: int | None = None) -> None:
  """Tells the listeners (if any) that the run is at `point` of `interval` (and `step`)."""
  assert point in POINTS, point
  for listener in tuple(_listeners):
    listener(point, interval, step)
