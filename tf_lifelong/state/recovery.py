"""Which checkpoint a workdir goes on from: the newest sound one, never a damaged one.

    found = recovery.newest_sound(workdir)
    found.state        # the record to restore (latest.json's when it is sound), None if none is
    found.note         # one line naming the damaged newer ones and the one used, or None
    recovery.set_aside(workdir, found)   # the writer: damaged records aside, latest.json fixed

A checkpoint is sound when its record `NAME.json` reads and its files match the
sizes and checksums the record lists (integrity.py). `latest.json` names the
newest; when it, its record or its files are damaged (a torn write, a full disk,
a file removed), the newer checkpoints are passed over for the newest sound one
(by interval, then start < step / chunk < end), which costs the work since it.
When none is sound, `newest_sound` says why for each, and the caller refuses:
a run never starts afresh by itself.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any

from tf_lifelong.state import artifacts, checkpoints, files, integrity

DAMAGED = ".damaged"
"""Suffix under which `set_aside` keeps a damaged checkpoint's record (NAME.json.damaged):
it no longer counts, its files stay for a look."""
_NAME = re.compile(r"^interval-(\d+)(?:-(start|step|chunk)(?:-(\d+))?)?$")
_RANK = {"start": 0, "step": 1, "chunk": 1, None: 2}


@dataclasses.dataclass
class Found:
  """The outcome of `newest_sound`."""

  state: dict[str, Any] | None
  """The sound checkpoint's record; None: none is sound."""
  skipped: list[tuple[str, str]]
  """(checkpoint or file, what is wrong with it) of each newer damaged one, newest first."""

  @property
  def note(self) -> str | None:
    """One line when damaged checkpoints were passed over for `state`, else None."""
    if self.state is None or not self.skipped:
      return None
    return (
      f"{_damaged_text(self.skipped)}; going on from {self.state['checkpoint']}, the newest "
      "sound checkpoint (the work since it is done again)"
    )

  def refusal(self, workdir: str) -> str:
    """The one line of a workdir none of whose checkpoints is sound."""
    return (
      f"no sound checkpoint is left in {checkpoints.folder(workdir)}: "
      f"{_damaged_text(self.skipped)}; a run never starts afresh by itself: pass --overwrite "
      "to start afresh (losing them), or restore the files from a copy"
    )


def _damaged_text(skipped: list[tuple[str, str]]) -> str:
  shown = "; ".join(f"{name} ({why})" for name, why in skipped[:3])
  more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
  return f"damaged: {shown}{more}"


def order(name: str) -> tuple[int, int, int]:
  """The sort key of a checkpoint name: interval, then start < step / chunk < end."""
  match = _NAME.match(name)
  if match is None:
    return (-1, 0, 0)
  return (int(match.group(1)), _RANK[match.group(2)], int(match.group(3) or 0))


def records(workdir: str) -> list[str]:
  """The names of the checkpoint records (`NAME.json`) in a workdir, newest first."""
  try:
    names = files.listdir(checkpoints.folder(workdir))
  except (OSError, files.not_found()):
    return []
  found = [n[: -len(".json")] for n in names if n.endswith(".json") and n != checkpoints.LATEST]
  return sorted(found, key=order, reverse=True)


def newest_sound(workdir: str) -> Found:
  """The newest sound checkpoint: latest.json's when it is sound, else the newest sound
  record; the damaged ones passed over, with what is wrong with each."""
  skipped: list[tuple[str, str]] = []
  latest_name = None
  try:
    latest = checkpoints.read_state(workdir)
    latest_name = latest["checkpoint"]
  except checkpoints.CheckpointError as e:
    latest = None
    skipped.append((checkpoints.LATEST, _reason(workdir, e)))
  if latest is not None:
    why = _problem(workdir, latest_name, latest)
    if why is None:
      return Found(latest, skipped)
    skipped.append((latest_name, why))
  for name in records(workdir):
    if name == latest_name:
      continue
    why = _problem(workdir, name)
    if why is None:
      return Found(checkpoints.read_state(workdir, name), skipped)
    skipped.append((name, why))
  return Found(None, skipped)


def _problem(workdir: str, name: str, state: dict[str, Any] | None = None) -> str | None:
  """What is wrong with checkpoint `name` (its record, then its files); None if sound."""
  try:
    own = checkpoints.read_state(workdir, name)
  except checkpoints.CheckpointError as e:
    return _reason(workdir, e)
  if state is not None and own.get(integrity.FILES) != state.get(integrity.FILES):
    return f"its record {name}.json disagrees with {checkpoints.LATEST}"
  return integrity.damage(checkpoints.folder(workdir), own)


def _reason(workdir: str, error: checkpoints.CheckpointError) -> str:
  """A record's read error, without the folder (the line names it once)."""
  return str(error).replace(os.path.join(checkpoints.folder(workdir), ""), "")


def set_aside(workdir: str, found: Found) -> None:
  """After `newest_sound` passed damaged checkpoints over for `found.state`: each damaged
  record becomes NAME.json.damaged (so it no longer counts) and latest.json names the sound
  one. The writer's business (the chief); nothing is deleted."""
  if found.state is None or not found.skipped:
    return
  folder = checkpoints.folder(workdir)
  for name, _ in found.skipped:
    record = os.path.join(folder, f"{name}.json")
    if name != checkpoints.LATEST and files.exists(record):
      files.rename(record, record + DAMAGED)
  artifacts.write_json(os.path.join(folder, checkpoints.LATEST), found.state)
