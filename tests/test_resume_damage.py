"""A damaged checkpoint costs at most the work since the last sound one, with one line.

The tiny deterministic run of tests/train_helpers.py (digits 3, 7, 3) is SIGKILLed
inside interval 2 (step 20): its newest checkpoint is `interval-002-step-000010`,
the older `interval-001` is sound. A copy of that workdir is damaged one way per test (the
newest checkpoint's data file or index file truncated to half, its JSON record
garbled, one of its files missing, its data file truncated under a record from before
the checksums, latest.json garbled), then the same command
(`bin/train --workdir=W`) runs: it goes on from the newest sound checkpoint, says
so in one line naming both, and ends with the uninterrupted run's rows and values.
With no sound checkpoint left it refuses in one line and never starts afresh.
"""

import json
import os
import shutil

import numpy as np
import pytest

from tests import train_helpers as th
from tf_lifelong.state import checkpoints, recovery

VALUES = ("test_neg_elbo_seen", "test_neg_elbo_full", "best_validation_neg_elbo")
NEWEST = "interval-002-step-000010"
TIMEOUT = 900
"""Seconds a bin/train may take here: the machine is shared with long experiments."""


@pytest.fixture(scope="module")
def killed(tmp_path_factory):
  """A workdir killed inside interval 2 (newest checkpoint interval-002-step-000010)."""
  base = tmp_path_factory.mktemp("damage")
  workdir = str(base / "killed")
  args = [f"--config_file={th.config_file(base)}", "--deterministic", f"--workdir={workdir}"]
  result = th.train(*args, kill_at="train:2:20", timeout=TIMEOUT)
  assert result.returncode == -9, result.stderr[-3000:]
  assert checkpoints.read_state(workdir)["checkpoint"] == NEWEST
  assert {"interval-000", "interval-001", NEWEST} == set(checkpoints.available(workdir))
  return workdir


def _copy(killed, tmp_path) -> str:
  workdir = str(tmp_path / "w")
  shutil.copytree(killed, workdir)
  return workdir


def _truncate(path) -> None:
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 2)


def _data(workdir, name) -> str:
  folder = checkpoints.folder(workdir)
  return os.path.join(folder, next(n for n in os.listdir(folder) if n.startswith(f"{name}.data-")))


def _without_integrity_data(workdir) -> None:
  """The newest checkpoint's record and latest.json as written before the checksums."""
  for name in (f"{NEWEST}.json", checkpoints.LATEST):
    path = os.path.join(workdir, "checkpoints", name)
    with open(path) as f:
      record = json.load(f)
    del record["files"]
    with open(path, "w") as f:
      json.dump(record, f)


def _garble(path) -> None:
  with open(path, "r+b") as f:
    f.seek(10)
    f.write(b"\x00garbled{")


DAMAGE = {
  "data_truncated": lambda w: _truncate(_data(w, NEWEST)),
  "index_truncated": lambda w: _truncate(os.path.join(w, "checkpoints", f"{NEWEST}.index")),
  "record_garbled": lambda w: _garble(os.path.join(w, "checkpoints", f"{NEWEST}.json")),
  "data_missing": lambda w: os.remove(_data(w, NEWEST)),
  "legacy_data_truncated": lambda w: (_without_integrity_data(w), _truncate(_data(w, NEWEST))),
}
"""Each kind of damage to the newest checkpoint."""
WHY = {
  "data_truncated": f"{NEWEST}.data-00000-of-00001 has ",
  "index_truncated": f"{NEWEST}.index has ",
  "record_garbled": f"cannot read {NEWEST}.json",
  "data_missing": f"{NEWEST}.data-00000-of-00001 is missing",
  "legacy_data_truncated": "its tensors cannot be read back (",
}


def _assert_reference_rows(tmp_path_factory, workdir) -> None:
  ref, got = th.metrics(th.reference_run(tmp_path_factory)), th.metrics(workdir)
  assert [[r[k] for k in th.ROW_KEYS] for r in got] == [[r[k] for k in th.ROW_KEYS] for r in ref]
  for name in VALUES:
    np.testing.assert_allclose([r[name] for r in got], [r[name] for r in ref], rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_sound_one(
  killed, tmp_path, tmp_path_factory, kind
):
  workdir = _copy(killed, tmp_path)
  DAMAGE[kind](workdir)
  result = th.train(f"--workdir={workdir}", timeout=TIMEOUT)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  notes = [line for line in result.stdout.splitlines() if "damaged: " in line]
  assert len(notes) == 1, result.stdout[-3000:]
  assert notes[0].startswith(f"damaged: {NEWEST} ({WHY[kind]}"), notes[0]
  assert "going on from interval-001, the newest sound checkpoint" in notes[0]
  assert "resuming from checkpoint interval-001 " in result.stdout
  _assert_reference_rows(tmp_path_factory, workdir)
  assert checkpoints.read_state(workdir)["finished"]
  assert recovery.newest_sound(workdir).skipped == []  # Every checkpoint now is sound.


def test_a_garbled_latest_json_goes_on_from_the_newest_record(killed, tmp_path, tmp_path_factory):
  workdir = _copy(killed, tmp_path)
  _garble(os.path.join(workdir, "checkpoints", "latest.json"))
  result = th.train(f"--workdir={workdir}", timeout=TIMEOUT)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "damaged: latest.json (cannot read latest.json: " in result.stdout
  assert f"going on from {NEWEST}, the newest sound checkpoint" in result.stdout
  _assert_reference_rows(tmp_path_factory, workdir)


def test_no_sound_checkpoint_left_is_one_line_and_nothing_is_removed(killed, tmp_path):
  workdir = _copy(killed, tmp_path)
  for name in ("interval-000", "interval-001", NEWEST):
    _truncate(_data(workdir, name))
  before = sorted(os.listdir(checkpoints.folder(workdir)))
  result = th.train(f"--workdir={workdir}", timeout=TIMEOUT)
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith(
    f"train: error: no sound checkpoint is left in {checkpoints.folder(workdir)}: damaged: "
    f"{NEWEST} ({NEWEST}.data-00000-of-00001 has "
  )
  for name in ("interval-001", "interval-000"):
    assert f"{name} ({name}.data-00000-of-00001 has " in lines[0]
  assert "never starts afresh by itself: pass --overwrite" in lines[0]
  assert sorted(os.listdir(checkpoints.folder(workdir))) == before
  assert [r["interval"] for r in th.metrics(workdir)] == [0, 1]  # Not started afresh.
  assert os.path.exists(os.path.join(workdir, "config.json"))
