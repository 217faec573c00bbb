"""A full disk ends the run in one line and leaves the previous state resumable.

tests/faults.py makes one write of the tiny deterministic run fail as a full disk
does (`enospc:<site>:<n>`, part of the bytes written first): interval 1's `train`
checkpoint, its metrics.jsonl, its sample grid, and the export. Each run must stop
with one line (exit 2, no traceback) naming the workdir and its last checkpoint;
what a reader sees is whole (every record and metrics file parses, the latest
checkpoint is sound); the same command, once there is space, ends with the
uninterrupted run's rows and leaves no temporary behind.
"""

import json
import os

import numpy as np
import pytest

from tests import train_helpers as th
from tf_lifelong.state import checkpoints, recovery

SITES = {"checkpoint": 6, "metrics": 2, "grid": 2, "export": 1}
"""Which write fails: the 6th checkpoint (interval-001-step-000010), interval 1's
metrics.jsonl and sample grid (the 2nd of each), the first export."""
LAST = {
  "checkpoint": "interval-001-start",
  "metrics": "interval-001-step-000020",
  "grid": "interval-001-step-000020",
  "export": "interval-002",
}
"""The latest checkpoint each failure leaves."""
TIMEOUT = 900
VALUES = ("test_neg_elbo_seen", "test_neg_elbo_full", "best_validation_neg_elbo")


def _leftovers(workdir) -> list[str]:
  """Temporaries of interrupted writes anywhere in the workdir."""
  found = []
  for folder, dirs, names in os.walk(workdir):
    for name in dirs + names:
      if name.endswith("_temp") or name.startswith(("export.tmp-", ".metrics", ".interval-")):
        found.append(os.path.relpath(os.path.join(folder, name), workdir))
  return found


@pytest.mark.parametrize("site", sorted(SITES))
def test_a_full_disk_is_one_line_and_the_same_command_resumes(site, tmp_path, tmp_path_factory):
  workdir = str(tmp_path / "w")
  args = [f"--config_file={th.config_file(tmp_path)}", "--deterministic", f"--workdir={workdir}"]
  full = th.train(*args, kill_at=f"enospc:{site}:{SITES[site]}", timeout=TIMEOUT)
  lines = [line for line in full.stderr.splitlines() if line.strip()]
  assert full.returncode == 2 and len(lines) == 1, full.stderr[-3000:]
  assert "Traceback" not in full.stderr
  assert lines[0].startswith(f"train: error: no space left on the device of {workdir} (writing ")
  assert lines[0].endswith(
    f"the run stopped and its last checkpoint, {LAST[site]}, stays: free some space and run "
    "the same command to resume"
  ), lines[0]
  # What a reader sees is whole: the records, the metrics, the latest checkpoint.
  assert recovery.newest_sound(workdir).skipped == []
  assert checkpoints.read_state(workdir)["checkpoint"] == LAST[site]
  assert all(isinstance(row, dict) for row in th.metrics(workdir))
  with open(os.path.join(workdir, "neg_elbo_matrix.json")) as f:
    json.load(f)
  assert not os.path.exists(os.path.join(workdir, "export"))
  resumed = th.train(f"--workdir={workdir}", timeout=TIMEOUT)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert f"resuming from checkpoint {LAST[site]} " in resumed.stdout
  ref, got = th.metrics(th.reference_run(tmp_path_factory)), th.metrics(workdir)
  assert [[r[k] for k in th.ROW_KEYS] for r in got] == [[r[k] for k in th.ROW_KEYS] for r in ref]
  for name in VALUES:
    np.testing.assert_allclose([r[name] for r in got], [r[name] for r in ref], rtol=1e-5)
  assert checkpoints.read_state(workdir)["finished"]
  assert _leftovers(workdir) == []
