"""Where a lifelong run starts: afresh, from its workdir's latest checkpoint, or not at all.

    start = prepare(config, workdir, overwrite=False)
    if start.finished: ...                      # nothing to do
    start.state                                  # the checkpoint record to restore, or None
    start.rows                                   # metrics rows of the intervals before it
    start.next_interval                          # the first interval still to run

The design (docs/reliability.md): a workdir holds one run, named by its
`config.json`. A workdir with a checkpoint and the same configuration is
resumed from `checkpoints/latest.json`; one with another configuration is
refused unless `overwrite`, which clears the old run's files first. A workdir
without a checkpoint has nothing to lose and starts afresh.

Test hook: `TF_LIFELONG_TEST_KILL_AT=<phase>:<interval>[:<step>]` makes the
run SIGKILL itself at that point (`kill_point`), so that tests can interrupt a
run where they choose. Phases: `handover` (after the interval's hand-over,
before its start checkpoint), `train` (at an evaluation boundary inside the
interval, before its checkpoint; `step` picks the boundary), `record` (after
the interval's metrics files, before its end checkpoint) and `export` (with
the SavedModel written to its temporary folder, before the rename).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import signal
from typing import Any

from tf_lifelong import artifacts, checkpoints
from tf_lifelong import config as config_lib

KILL_ENV = "TF_LIFELONG_TEST_KILL_AT"
RUN_FILES = (
  "checkpoints",
  "tensorboard",
  "samples",
  "export",
  "metrics.csv",
  "metrics.jsonl",
  "neg_elbo_matrix.json",
)
"""What a run writes into its workdir besides config.json (removed when starting afresh)."""
_FLOAT_COLUMNS = (
  "test_neg_elbo_seen",
  "test_neg_elbo_full",
  "consistency",
  "grad_norm",
  "best_validation_neg_elbo",
)
_PHASES = ("handover", "train", "record", "export")
_MKSTEMP = re.compile(r"^\..+\.[A-Za-z0-9_]{8}$")
"""A temporary file of artifacts.atomic_path (`.NAME.XXXXXXXX`)."""


class WorkdirError(Exception):
  """The workdir cannot be used as asked; the message says why and what to do."""


@dataclasses.dataclass
class Start:
  """Where a run starts."""

  rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  """Metrics rows of the intervals before `next_interval` (from metrics.jsonl)."""
  state: dict[str, Any] | None = None
  """The record of the checkpoint to restore; None: start afresh."""
  finished: bool = False
  """The run has exported its model: nothing is left to do."""

  @property
  def phase(self) -> str | None:
    """start | train | end (records without a phase are `end`), None afresh."""
    return None if self.state is None else self.state.get("phase", "end")

  @property
  def next_interval(self) -> int:
    """The first interval whose row is not in `rows`."""
    if self.state is None:
      return 0
    return int(self.state["interval"]) + (1 if self.phase == "end" else 0)


def prepare(
  config: config_lib.Config, workdir: str, overwrite: bool = False, chief: bool = True
) -> Start:
  """Checks the workdir, clears it if asked, writes config.json and finds the start.

  Args:
    config: the run's configuration (as given, before any baseline rewrites it).
    workdir: the run's folder (created if needed).
    overwrite: start afresh even in a workdir holding another run.
    chief: whether this process writes (others only read).

  Returns:
    The Start.

  Raises:
    WorkdirError: a workdir that cannot be written, holds a run of another
      configuration (without `overwrite`), or whose files disagree.
  """
  check_test_hook()
  try:
    if chief:
      os.makedirs(workdir, exist_ok=True)
    state = None if overwrite else _latest(workdir)
    if state is not None:
      _check_same_config(config, workdir)
      return _resume_point(workdir, state, chief)
    if chief:
      clear(workdir)
      artifacts.write_text(os.path.join(workdir, "config.json"), config.to_json() + "\n")
    return Start()
  except OSError as e:
    raise WorkdirError(f"cannot write the workdir {workdir}: {e.strerror or e}") from None


def finished_message(workdir: str, start: Start) -> str:
  """What a run says when its workdir holds the finished run."""
  return (
    f"{workdir} holds a finished run ({len(start.rows)} intervals, exported to "
    f"{os.path.join(workdir, 'export')}); nothing to do (--overwrite runs it again)"
  )


def _latest(workdir: str) -> dict[str, Any] | None:
  """The latest checkpoint's record, None if the workdir holds none."""
  if not os.path.exists(os.path.join(checkpoints.folder(workdir), checkpoints.LATEST)):
    return None
  try:
    return checkpoints.read_state(workdir)
  except checkpoints.CheckpointError as e:
    raise WorkdirError(f"{e}; pass --overwrite to start afresh") from None


RUNTIME_ONLY = frozenset(
  {"threads", "checkpoint_every", "data_dir", "download", "steps_per_execution"}
)
"""Fields that change how a run executes or finds its data, not what it computes:
a run may be resumed with other values of them."""


def _check_same_config(config: config_lib.Config, workdir: str) -> None:
  path = os.path.join(workdir, "config.json")
  try:
    with open(path) as f:
      previous = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise WorkdirError(
      f"{workdir} holds checkpoints but {path} is unreadable ({e}); pass "
      "--overwrite to start afresh"
    ) from None
  current = json.loads(config.to_json())
  keys = sorted(
    k
    for k in set(previous) | set(current)
    if previous.get(k) != current.get(k) and k not in RUNTIME_ONLY
  )
  if not keys:
    return
  diff = ", ".join(f"{k}: {previous.get(k)!r} there, {current.get(k)!r} here" for k in keys[:4])
  more = f" and {len(keys) - 4} more" if len(keys) > 4 else ""
  raise WorkdirError(
    f"{workdir} holds a run with another configuration ({diff}{more}); "
    "run with its settings to resume it, choose another --workdir, or pass "
    "--overwrite to start afresh"
  )


def _resume_point(workdir: str, state: dict[str, Any], chief: bool) -> Start:
  start = Start(state=state, finished=bool(state.get("finished")))
  if chief and not start.finished:
    remove_temporaries(workdir)
  try:
    rows = artifacts.read_metrics(workdir)
  except ValueError as e:
    raise WorkdirError(
      f"{workdir}/metrics.jsonl is unreadable ({e}); pass --overwrite to start afresh"
    ) from None
  done = [int(r["interval"]) for r in rows]
  expected = list(range(start.next_interval))
  if done[: len(expected)] != expected:
    raise WorkdirError(
      f"{workdir}/metrics.jsonl holds the rows of intervals {done} but its "
      f"latest checkpoint {state['checkpoint']} follows {len(expected)} "
      "finished intervals; pass --overwrite to start afresh"
    )
  start.rows = [_floats(r) for r in rows[: len(expected)]]
  return start


def _floats(row: dict[str, Any]) -> dict[str, Any]:
  """A row read back from JSON: the NaN written as null are NaN again."""
  return {k: (math.nan if v is None and k in _FLOAT_COLUMNS else v) for k, v in row.items()}


def clear(workdir: str) -> None:
  """Removes what a run wrote into `workdir` (config.json is overwritten, not removed)."""
  remove_temporaries(workdir)
  for name in RUN_FILES:
    path = os.path.join(workdir, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    elif os.path.lexists(path):
      os.remove(path)


def remove_temporaries(workdir: str) -> None:
  """Removes what interrupted atomic writes left behind.

  Temporary files of artifacts.atomic_path (`.NAME.XXXXXXXX`) in the workdir,
  samples/ and checkpoints/; export.py's `export.tmp-*` and `export.old-*`
  folders; TensorFlow's `*_temp` checkpoint folders.
  """
  for sub in ("", "samples", checkpoints.FOLDER):
    folder = os.path.join(workdir, sub)
    try:
      names = os.listdir(folder)
    except OSError:
      continue
    for name in names:
      path = os.path.join(folder, name)
      stale_dir = (
        name.startswith(("export.tmp-", "export.old-"))
        if not sub
        else sub == checkpoints.FOLDER and name.endswith("_temp")
      )
      if stale_dir and os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
      elif _MKSTEMP.match(name) and os.path.isfile(path):
        with contextlib.suppress(OSError):
          os.remove(path)


# --------------------------------------------------------------- test hook
def _kill_spec() -> tuple[str, int, int | None] | None:
  """The parsed TF_LIFELONG_TEST_KILL_AT, None if unset or malformed (see check_test_hook)."""
  parts = os.environ.get(KILL_ENV, "").split(":")
  try:
    return parts[0], int(parts[1]), (int(parts[2]) if len(parts) > 2 else None)
  except (IndexError, ValueError):
    return None


def check_test_hook() -> None:
  """Raises WorkdirError for a malformed TF_LIFELONG_TEST_KILL_AT."""
  spec = os.environ.get(KILL_ENV, "")
  if spec and (_kill_spec() is None or _kill_spec()[0] not in _PHASES):
    raise WorkdirError(
      f"{KILL_ENV}={spec!r}: expected <phase>:<interval>[:<step>] with a "
      f"phase among {', '.join(_PHASES)}"
    )


def kill_point(phase: str, interval: int, step: int | None = None) -> None:
  """Test hook: SIGKILLs this process if TF_LIFELONG_TEST_KILL_AT names this point."""
  spec = _kill_spec()
  if spec is None or spec[:2] != (phase, interval):
    return
  if spec[2] is not None and step is not None and spec[2] != step:
    return
  os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def kill_inside_export(interval: int):
  """Test hook: with `export:<interval>`, SIGKILLs once the SavedModel lies in its
  temporary folder (tf.saved_model.save returned), before export.py renames it."""
  spec = _kill_spec()
  if spec is None or spec[:2] != ("export", interval):
    yield
    return
  import tensorflow as tf  # noqa: PLC0415

  save = tf.saved_model.save

  def save_then_die(*args, **kwargs):
    save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

  tf.saved_model.save = save_then_die
  try:
    yield
  finally:
    tf.saved_model.save = save
