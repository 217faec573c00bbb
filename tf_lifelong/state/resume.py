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
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
from typing import Any

from tf_lifelong import config as config_lib
from tf_lifelong.state import artifacts, checkpoints, files, recovery

INVOCATIONS = "invocations.jsonl"
"""One line per invocation of a workdir's learner: its index, first interval and config."""
RUN_FILES = (
  INVOCATIONS,
  "checkpoints",
  "tensorboard",
  "samples",
  "export",
  "metrics.csv",
  "metrics.jsonl",
  "neg_elbo_matrix.json",
  "sampling_classifier",
  *("boundaries.jsonl", "detect", "heldout"),  # a detect run's (train/task_free.py)
)
"""What a run writes into its workdir besides config.json (removed when starting afresh)."""
_FLOAT_COLUMNS = (
  "test_neg_elbo_seen",
  "test_neg_elbo_full",
  "consistency",
  "grad_norm",
  "best_validation_neg_elbo",
)
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
  invocation: int = 0
  """Which invocation of the workdir's learner this is (0: the first run; one more
  for each `--continue`), see `prepare_continuation`."""
  first_interval: int = 0
  """The index of this invocation's first interval."""
  first_chunk: int = 0
  """A detect run's: the number of this invocation's first chunk (they go on across them)."""
  note: str | None = None
  """One line when damaged checkpoints were passed over for `state` (recovery.py)."""

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
  try:
    if chief:
      files.makedirs(workdir)
    if not overwrite and has_checkpoint(workdir):
      _check_same_config(config, workdir)
      return _resume_point(workdir, _latest(workdir, finished_ok=True), chief)
    if chief:
      clear(workdir)
      artifacts.write_text(os.path.join(workdir, "config.json"), config.to_json() + "\n")
      _append_invocation(workdir, config, 0, 0)
    return Start()
  except OSError as e:
    raise WorkdirError(f"cannot write the workdir {workdir}: {e.strerror or e}") from None


def has_checkpoint(workdir: str) -> bool:
  """Whether `workdir` holds a learner (a checkpoint record, sound or not)."""
  latest = files.exists(os.path.join(checkpoints.folder(workdir), checkpoints.LATEST))
  return latest or bool(recovery.records(workdir))


def prepare_continuation(config: config_lib.Config, workdir: str, chief: bool = True) -> Start:
  """Where `bin/train --continue` starts: a new invocation after a finished one, or the
  resume of an interrupted invocation with this configuration.

  - The latest invocation finished with another configuration: a new invocation
    starts (config.json becomes this configuration, a line is added to
    invocations.jsonl); its intervals (a detect run's chunks) follow the earlier ones.
  - The latest invocation has this configuration (fields in RUNTIME_ONLY aside): it is
    resumed like any run (also when killed before its first checkpoint), or, if it
    finished, left alone.
  - The latest invocation is unfinished with another configuration: refused.

  The model (checkpoints.MODEL_FIELDS) and --boundaries must not change.

  Raises:
    WorkdirError: nothing to continue, another model or boundaries, or an unfinished
      invocation of another configuration.
  """
  found = _latest(workdir)
  if found is None:
    raise WorkdirError(
      f"{workdir} holds no learner to continue (no checkpoint); run bin/train without --continue"
    )
  state = found.state
  previous = _stored_config(workdir)
  model = _model_changes(previous, config)
  if model:
    raise WorkdirError(
      f"--continue must keep the model of {workdir} ({'; '.join(model)}); drop those "
      "flags (they are read from its config.json)"
    )
  invocations = read_invocations(workdir)
  if previous.get("boundaries", "given") != config.boundaries:
    raise WorkdirError(
      f"--continue keeps --boundaries={previous.get('boundaries', 'given')} of {workdir}: a "
      "task-free learner's references do not carry over to told boundaries, nor back"
    )
  if not _differs(previous, json.loads(config.to_json())):
    begun = invocations and invocations[-1]["first_interval"] < Start(state=state).next_interval
    if state.get("finished") and len(invocations) > 1 and not begun:
      found.state = {**state, "finished": False}  # Killed before its first checkpoint.
    return _resume_point(workdir, found, chief)
  if not state.get("finished"):
    raise WorkdirError(
      f"{workdir} holds an unfinished run with another configuration "
      f"({_diff_text(previous, json.loads(config.to_json()))}); resume it first with "
      f"bin/train --workdir={workdir}, then continue"
    )
  found.state = {**state, "finished": False}
  start = _resume_point(workdir, found, chief)
  start.invocation = (invocations[-1]["invocation"] + 1) if invocations else 1
  start.first_interval = len(start.rows)
  start.first_chunk = int((state.get("detect") or {}).get("chunks", 0))
  if chief:
    if not invocations:  # A workdir from before invocations.jsonl: its run was the first.
      _append_invocation(workdir, config_lib.Config.from_dict(previous), 0, 0)
    artifacts.write_text(os.path.join(workdir, "config.json"), config.to_json() + "\n")
    _append_invocation(workdir, config, start.invocation, start.first_interval, start.first_chunk)
  return start


def open_learner(config: config_lib.Config, workdir: str, chief: bool = True) -> Start:
  """Where `Learner.load` starts: the latest checkpoint, whatever the configuration says.

  `config` is the workdir's own, possibly with changes; if it differs, it is written
  to config.json (the fields of checkpoints.MODEL_FIELDS must not change).

  Raises:
    WorkdirError: no learner in `workdir`, or a change of the model's fields.
  """
  found = _latest(workdir)
  if found is None:
    raise WorkdirError(f"{workdir} holds no learner (no checkpoint); start one with Learner(...)")
  previous, current = _stored_config(workdir), json.loads(config.to_json())
  changed = _model_changes(previous, config)
  if changed:
    raise WorkdirError(f"the model of {workdir} cannot change: {'; '.join(changed)}")
  if previous != current and chief:
    artifacts.write_text(os.path.join(workdir, "config.json"), config.to_json() + "\n")
  start = _resume_point(workdir, found, chief)
  start.finished = False
  return start


def _model_changes(previous: dict[str, Any], config: config_lib.Config) -> list[str]:
  """How `config`'s model (checkpoints.MODEL_FIELDS, the architecture resolved) differs."""
  try:
    before = config_lib.Config.from_dict(previous)
  except config_lib.ConfigError as e:
    raise WorkdirError(f"the stored config.json is not a valid configuration: {e}") from None
  return [
    f"{k}: {getattr(before, k)!r} there, {getattr(config, k)!r} here"
    for k in checkpoints.MODEL_FIELDS
    if getattr(before, k) != getattr(config, k)
  ]


def read_invocations(workdir: str) -> list[dict[str, Any]]:
  """The lines of workdir/invocations.jsonl (empty if absent)."""
  path = os.path.join(workdir, INVOCATIONS)
  if not files.exists(path):
    return []
  return [json.loads(line) for line in files.read_text(path).splitlines() if line.strip()]


def _append_invocation(
  workdir: str, config: config_lib.Config, index: int, first: int, first_chunk: int = 0
) -> None:
  lines = [i for i in read_invocations(workdir) if i["invocation"] < index]
  line = {"invocation": index, "first_interval": first, "config": config.to_dict()}
  lines.append({**line, "first_chunk": first_chunk} if config.boundaries == "detect" else line)
  artifacts.write_text(
    os.path.join(workdir, INVOCATIONS), "".join(json.dumps(i, sort_keys=True) + "\n" for i in lines)
  )


def finished_message(workdir: str, start: Start) -> str:
  """What a run says when its workdir holds the finished run."""
  return (
    f"{workdir} holds a finished run ({len(start.rows)} intervals, exported to "
    f"{os.path.join(workdir, 'export')}); nothing to do (--overwrite runs it again)"
  )


def _latest(workdir: str, finished_ok: bool = False) -> recovery.Found | None:
  """The newest sound checkpoint (recovery.py), None if the workdir holds none. With
  `finished_ok`, a finished run's latest.json as it is (nothing will be restored).

  Raises:
    WorkdirError: checkpoints, but none of them sound (never afresh by itself).
  """
  if not has_checkpoint(workdir):
    return None
  if finished_ok:
    with contextlib.suppress(checkpoints.CheckpointError):
      latest = checkpoints.read_state(workdir)
      if latest.get("finished"):
        return recovery.Found(latest, [])
  found = recovery.newest_sound(workdir)
  if found.state is None:
    raise WorkdirError(found.refusal(workdir))
  return found


RUNTIME_ONLY = frozenset(config_lib.fields_with_role("runtime"))
"""Fields that change how a run executes or finds its data, not what it computes:
a run may be resumed with other values of them (tf_lifelong/config marks them)."""


def _stored_config(workdir: str) -> dict[str, Any]:
  path = os.path.join(workdir, "config.json")
  try:
    return json.loads(files.read_text(path))
  except (OSError, ValueError, files.not_found()) as e:
    raise WorkdirError(
      f"{workdir} holds checkpoints but {path} is unreadable ({e}); pass "
      "--overwrite to start afresh"
    ) from None


def _differs(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
  """The fields (RUNTIME_ONLY aside) whose values differ, sorted. A field missing from
  `previous` (a config.json older than the field) counts as having its default."""
  previous = _with_defaults(previous)
  return sorted(
    k
    for k in set(previous) | set(current)
    if previous.get(k) != current.get(k) and k not in RUNTIME_ONLY
  )


def _with_defaults(values: dict[str, Any]) -> dict[str, Any]:
  return {**json.loads(config_lib.Config().to_json()), **values}


def _diff_text(previous: dict[str, Any], current: dict[str, Any]) -> str:
  keys = _differs(previous, current)
  previous = _with_defaults(previous)
  diff = ", ".join(f"{k}: {previous.get(k)!r} there, {current.get(k)!r} here" for k in keys[:4])
  return diff + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


def _check_same_config(config: config_lib.Config, workdir: str) -> None:
  previous, current = _stored_config(workdir), json.loads(config.to_json())
  if not _differs(previous, current):
    return
  raise WorkdirError(
    f"{workdir} holds a run with another configuration ({_diff_text(previous, current)}); "
    "run with its settings to resume it, choose another --workdir, pass --continue "
    "to append this data to its model, or pass --overwrite to start afresh"
  )


def _resume_point(workdir: str, found: recovery.Found, chief: bool) -> Start:
  state = found.state
  start = Start(state=state, finished=bool(state.get("finished")), note=found.note)
  if chief:
    recovery.set_aside(workdir, found)  # The damaged ones no longer count.
  invocations = read_invocations(workdir)
  if invocations:
    start.invocation = invocations[-1]["invocation"]
    start.first_interval = invocations[-1]["first_interval"]
    start.first_chunk = invocations[-1].get("first_chunk", 0)
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
    if files.is_url(path):
      if files.isdir(path):
        files.rmtree(path)
      else:
        files.remove(path)
    elif os.path.isdir(path) and not os.path.islink(path):
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
      names = files.listdir(folder)
    except (OSError, files.not_found()):
      continue
    for name in names:
      path = os.path.join(folder, name)
      stale_dir = (
        name.startswith(("export.tmp-", "export.old-"))
        if not sub
        else sub == checkpoints.FOLDER and name.endswith("_temp")
      )
      if stale_dir and files.isdir(path):
        files.rmtree(path)
      elif _MKSTEMP.match(name) and files.isfile(path):
        files.remove(path)
