"""OUT/experiment.json: what an experiment is, and one entry per invocation of it.

The record holds the preset, seeds, variants, options and base configuration of the
experiment in OUT, and the list of its invocations (command line, runs, failures, wall
time). Every change is made under an exclusive lock, so that invocations running at
the same time on one folder each add their entry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Sequence

from tf_lifelong import config as config_lib
from tf_lifelong.experiments.extras import ExtrasOptions
from tf_lifelong.experiments.layout import EXPERIMENT
from tf_lifelong.state import artifacts


@contextlib.contextmanager
def _locked(output: str):
  """OUT/experiment.json's record (a dict), written back on exit.

  An exclusive lock on OUT/.experiment.lock spans the read and the write.
  """
  os.makedirs(output, exist_ok=True)
  path = os.path.join(output, EXPERIMENT)
  with open(os.path.join(output, ".experiment.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    record = {"invocations": []}
    if os.path.exists(path):
      with open(path) as f:
        record = json.load(f)
    yield record
    artifacts.write_json(path, record)


def start(
  output: str,
  preset: str,
  base: config_lib.Config,
  seeds: Sequence[int],
  variants: Sequence[str],
  options: ExtrasOptions,
) -> str:
  """Records the experiment in OUT, unless OUT holds another preset.

  Returns:
    The preset OUT's record holds: `preset`, or another one (the record is then written
    back unchanged).
  """
  with _locked(output) as record:
    held = record.get("preset", preset)
    if held == preset:
      record.update(
        preset=preset,
        seeds=list(seeds),
        variants=list(variants),
        options=dataclasses.asdict(options),
        base_config=base.to_dict(),
      )
  return held


def add_invocation(output: str, entry: dict) -> None:
  """Appends `entry` to the record's invocations."""
  with _locked(output) as record:
    record.setdefault("invocations", []).append(entry)
