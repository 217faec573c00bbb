"""A full disk ends the run in one line and leaves the previous state resumable.

tests/faults.py makes one write of the tiny deterministic run fail as a full disk
does (`enospc:<site>:<n>`, part of the bytes written first): interval 1's `train`
checkpoint, its metrics.jsonl, its sample grid, and the export. Each run must stop
with one line (exit 2, no traceback) naming the workdir and its last checkpoint;
what a reader sees is whole (every record and metrics file parses, the latest
checkpoint is sound); the same command, once there is space, ends with the
uninterrupted run's rows and leaves no temporary behind.

A Python `Learner` meets the same faults in-process (tests/faults.py's `fill_disk_at`,
undone after each test): a one-line RunError, the learner stopped with its lock freed,
and `Learner.load` in the same process goes on from the last checkpoint; a full disk in
the export leaves the learner as it was, and `finish()` again completes.
"""

import json
import os

import numpy as np
import pytest

from tests import faults, synthetic
from tests import train_helpers as th
from tf_lifelong.state import checkpoints, files, lock, recovery

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


# ------------------------------------------------------------------ a Python Learner
LEARNER_LAST = {
  "checkpoint": "interval-000",
  "metrics": "interval-001-start",
  "grid": "interval-001-start",
  "export": "interval-001",
}
"""The latest checkpoint when the first write at each site after interval 0 fails."""


def _learner_config():
  from tf_lifelong import config as config_lib

  return config_lib.Config(
    batch_size=32, hidden_units=16, continuous_dim=2, eval_every=5, max_steps_per_interval=5,
    patience=1, eval_examples=20, validation_synthetic_examples=20, seed=1, threads=0,
  )  # fmt: skip


def _fill_disk(monkeypatch, spec: str) -> None:
  """tests/faults.py's `enospc:<site>:<n>` in this process, undone after the test."""
  import tensorflow as tf

  monkeypatch.setattr(files, "write_bytes", files.write_bytes)
  monkeypatch.setattr(tf.train.Checkpoint, "write", tf.train.Checkpoint.write)
  monkeypatch.setattr(tf.saved_model, "save", tf.saved_model.save)
  faults.fill_disk_at(spec)


@pytest.mark.parametrize("site", sorted(LEARNER_LAST))
def test_a_full_disk_under_a_python_learner_is_one_line(site, tmp_path, monkeypatch):
  from tf_lifelong import Learner
  from tf_lifelong.train.context import RunError

  workdir, quiet = str(tmp_path / "w"), open(os.devnull, "w")
  images, ids = synthetic.images()
  learner = Learner(_learner_config(), workdir, out=quiet)
  learner.learn(images[ids == 3], name="three")
  _fill_disk(monkeypatch, f"enospc:{site}:1")  # The next write at `site` fails.
  if site == "export":
    learner.learn(images[ids == 7], name="seven")
  with pytest.raises(RunError) as failed:
    learner.finish() if site == "export" else learner.learn(images[ids == 7], name="seven")
  message = str(failed.value)
  assert "\n" not in message and message.startswith("disk full: cannot write "), message
  assert "(no space left on its device)" in message, message
  assert checkpoints.read_state(workdir)["checkpoint"] == LEARNER_LAST[site]
  assert recovery.newest_sound(workdir).skipped == []  # What is on disk is whole.
  if site == "export":  # Nothing half done: the learner goes on, its lock still held.
    assert message.endswith("nothing else was written: free some space and try again")
    assert os.path.exists(os.path.join(workdir, lock.LOCK))
    learner.finish()
    assert checkpoints.read_state(workdir)["finished"]
    assert os.path.isfile(os.path.join(workdir, "export", "saved_model.pb"))
    return
  assert message.endswith(
    f"the learner stopped and its last checkpoint, {LEARNER_LAST[site]}, stays: free some "
    f"space, then Learner.load({workdir!r}) goes on from it"
  ), message
  with pytest.raises(RunError, match="^this learner stopped: disk full: "):
    learner.learn(images[ids == 7], name="seven")  # Its writes are refused.
  with Learner.load(workdir, out=quiet) as again:  # Its lock was freed: this process opens it.
    row = again.learn(images[ids == 7], name="seven")
    assert (row["interval"], again.num_categories) == (1, 2)
  assert [r["interval"] for r in th.metrics(workdir)] == [0, 1]
