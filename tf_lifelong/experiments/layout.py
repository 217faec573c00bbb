"""The layout of an experiment's folder, which the runner writes and the report reads.

OUT/experiment.json                   the preset, seeds, variants and invocations
OUT/runs/VARIANT/seed-N/              one run's workdir (bin/train's files), and
    result.json                       its final numbers and extras (once finished)
    run_config.json, spec.json        the run's configuration and plan entry
    log.txt                           its progress lines
OUT/runs/classifier/                  the sampling classifier, shared by the runs
"""

from __future__ import annotations

import json
import os

RESULT = "result.json"
RUN_CONFIG = "run_config.json"
SPEC = "spec.json"
LOG = "log.txt"
EXPERIMENT = "experiment.json"
CLASSIFIER = os.path.join("runs", "classifier")


def run_dir(output: str, variant: str, seed: int) -> str:
  """The workdir of one run of an experiment."""
  return os.path.join(output, "runs", variant, f"seed-{seed}")


def read_result(workdir: str) -> dict | None:
  """A finished run's result.json, None if it has none."""
  path = os.path.join(workdir, RESULT)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)
