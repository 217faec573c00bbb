"""The multi-worker step watchdog: a worker whose peer is gone or hung fails with one line.

When no training step has started for TF_LIFELONG_COLLECTIVE_TIMEOUT seconds
(`runtime.collective_timeout`), the watchdog aborts this process's collective
ops, so that whatever waits for the peer (a step, a checkpoint's save, a
hand-over) fails instead of hanging; `collectives_aborted` then gives the line
for the user (cli/errors.py). One watchdog per process (`step_watchdog`),
ticked by training.py at every training step (docs/scaling.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import tensorflow as tf

from tf_lifelong import config as config_lib
from tf_lifelong import runtime


class StepWatchdog:
  """Aborts this process's collective ops when no training step has started for
  `timeout` seconds, so that a worker waiting for a peer that is gone or hung
  fails with an error instead of hanging (multi-worker; `step_watchdog`).

  This is what TF_LIFELONG_COLLECTIVE_TIMEOUT bounds. It replaces TensorFlow's
  per-collective timeout (CommunicationOptions.timeout_seconds), which starts a
  thread sleeping for the whole timeout for every collective op: at about
  1,500 collectives a second (the MLP student on two workers here) the
  processes had some 16,000 threads after 10 s of training and aborted
  (`std::system_error: Resource temporarily unavailable`, docs/scaling.md).
  One thread here watches the whole run.
  """

  def __init__(self, timeout: float, abort: Callable[[int, str], None] | None = None):
    self.timeout = timeout
    self.abort = abort or _abort_collectives
    self.fired = False
    self._last = time.monotonic()
    self._done = threading.Event()
    self._thread: threading.Thread | None = None

  def tick(self) -> None:
    """A training step starts (or has just ended): the pause ends here."""
    self._last = time.monotonic()

  def start(self) -> StepWatchdog:
    self.tick()
    self._thread = threading.Thread(target=self._watch, name="step_watchdog", daemon=True)
    self._thread.start()
    return self

  def stop(self) -> None:
    self._done.set()
    if self._thread is not None:
      self._thread.join()

  def __enter__(self) -> StepWatchdog:
    return self.start()

  def __exit__(self, *exc) -> None:
    self.stop()

  @property
  def message(self) -> str:
    """What happened, for the user, once `fired`."""
    return (
      f"multi-worker run: no training step started within {self.timeout:.0f} s "
      f"({runtime.COLLECTIVE_TIMEOUT_ENV}): another worker is gone or hung, and this "
      f"worker's collective ops were aborted. Restart every worker; with the workdir on "
      f"storage all workers share, the run resumes from its latest checkpoint"
    )

  def _watch(self) -> None:
    while not self._done.wait(min(1.0, self.timeout / 10)):
      if time.monotonic() - self._last > self.timeout:
        self.fired = True
        self.abort(
          tf.errors.DEADLINE_EXCEEDED,
          f"collective ops aborted: no training step started within {self.timeout:.0f} s",
        )
        return


def _abort_collectives(code: int, message: str) -> None:
  """Makes every pending and later collective op of this process fail with
  (code, message), as MultiWorkerMirroredStrategy's own health check does."""
  from tensorflow.python.eager import context  # noqa: PLC0415 - no public API for it.

  context.context().abort_collective_ops(code, message)


_watchdog: StepWatchdog | None = None


def step_watchdog(config: config_lib.Config) -> StepWatchdog | None:
  """Multi-worker runs: the process's StepWatchdog (None for the others).

  The first interval trained starts it and it runs until `stop_step_watchdog`
  or the process's end: between two intervals (evaluation, the chief's
  artifacts, checkpoint, hand-over) and during the export a worker waits for
  its peers too. So TF_LIFELONG_COLLECTIVE_TIMEOUT must exceed the longest
  pause of a worker between two training steps.
  """
  global _watchdog
  if config.strategy != "multi_worker":
    return None
  if _watchdog is None:
    _watchdog = StepWatchdog(runtime.collective_timeout()).start()
  _watchdog.tick()
  return _watchdog


def collectives_aborted() -> str | None:
  """The step watchdog's message once it has aborted this process's collectives,
  else None. Whatever fails after that (a training step, a checkpoint's save, a
  hand-over's variables) fails because of it; cli/errors.py reports this line."""
  return _watchdog.message if _watchdog is not None and _watchdog.fired else None


def stop_step_watchdog() -> None:
  """Stops the watchdog that `step_watchdog` started, if any (the run is over)."""
  global _watchdog
  if _watchdog is not None:
    _watchdog.stop()
    if not _watchdog.fired:  # Else collectives_aborted still tells why.
      _watchdog = None
