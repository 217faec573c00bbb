"""Progress a person can follow, and the summary table at the end of a run.

On a terminal one status line is redrawn in place; elsewhere (CI logs, files)
each update is a plain line, printed at most every `min_interval_s` seconds
and at every interval's end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO


def _clock(seconds: float) -> str:
  seconds = max(0, int(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:d}:{s:02d}"


class Progress:
  """Reports interval i of n, step, current -ELBO, elapsed and estimated time left."""

  def __init__(
    self,
    num_intervals: int | None,
    max_steps: int,
    stream: TextIO | None = None,
    min_interval_s: float = 10.0,
    enabled: bool = True,
  ):
    self.num_intervals = num_intervals
    self.max_steps = max_steps
    self.out = stream or sys.stdout
    self.tty = bool(getattr(self.out, "isatty", lambda: False)())
    self.min_interval_s = min_interval_s
    self.enabled = enabled
    self.start = time.monotonic()
    self._last_print = 0.0
    self._interval = 0
    self._interval_start = self.start
    self._done_durations: list[float] = []

  def _of(self, index: int) -> str:
    """`i/n`, or `i` where the number of intervals is not known (a learner fed from Python)."""
    return f"{index + 1}/{self.num_intervals}" if self.num_intervals else f"{index + 1}"

  def start_interval(self, index: int, description: str) -> None:
    self._interval = index
    self._interval_start = time.monotonic()
    self._line(f"interval {self._of(index)}: {description}", force=True)

  def update(self, step: int, values: dict[str, float]) -> None:
    now = time.monotonic()
    if not self.tty and now - self._last_print < self.min_interval_s:
      return
    shown = " ".join(f"{k} {v:.2f}" for k, v in values.items() if v is not None)
    self._line(
      f"  interval {self._of(self._interval)} step {step:>6d} "
      f"{shown}  elapsed {_clock(now - self.start)} left ~{self._eta(step)}",
      transient=True,
    )

  def end_interval(self, message: str) -> None:
    self._done_durations.append(time.monotonic() - self._interval_start)
    self._line("  " + message, force=True)

  def message(self, text: str) -> None:
    self._line(text, force=True)

  def _eta(self, step: int) -> str:
    """Time left: finished intervals' mean duration for the rest; the current
    interval's own pace, bounded by max_steps, for the current one."""
    now = time.monotonic()
    in_interval = now - self._interval_start
    remaining = max(0, (self.num_intervals or 0) - self._interval - 1)
    if self._done_durations:
      per_interval = sum(self._done_durations) / len(self._done_durations)
      current_left = max(0.0, per_interval - in_interval)
    else:
      pace = in_interval / max(step, 1)
      per_interval = pace * self.max_steps
      current_left = pace * max(0, self.max_steps - step)
    return _clock(current_left + remaining * per_interval)

  def _line(self, text: str, force: bool = False, transient: bool = False) -> None:
    if not self.enabled:
      return
    self._last_print = time.monotonic()
    if self.tty:
      self.out.write("\r\033[K" + text + ("" if transient else "\n"))
    else:
      self.out.write(text + "\n")
    self.out.flush()


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
  """A fixed-width text table of `rows` restricted to `columns`."""

  def fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
      return "-"
    if isinstance(v, bool):
      return "yes" if v else "no"
    if isinstance(v, float):
      return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return str(v)

  cells = [[fmt(r.get(c)) for c in columns] for r in rows]
  widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
  lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
  lines.append("  ".join("-" * w for w in widths))
  lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
  return "\n".join(lines)
