"""bin/train --continue in detect mode (#35 part 2): the next part of an unlabelled stream
goes to the same learner, its decisions go on, and a kill resumes to the same decisions
and rows.

Part 1 (an npz of `images` alone): 120 bars of distribution 3, then 120 of 7; part 2:
120 other bars of 7, then 120 of 3 (tests/synthetic.py, seeds 0 and 1); chunks of 60.
The interval that ends part 1 (7s) carries over: part 2's first chunk is decided against
its held-out share and continues it (*same*); the 3s come back to component 0, whose
reference was made in part 1.
"""

import json
import os
import shutil

import numpy as np
import pytest

from tests import synthetic, train_helpers

FLAGS = [
  "--boundaries=detect",
  "--chunk_size=60",
  "--chunk_steps=20",
  "--batch_size=32",
  "--hidden_units=64",
  "--continuous_dim=4",
  "--eval_every=10",
  "--max_steps_per_interval=120",
  "--patience=2",
  "--eval_examples=50",
  "--validation_synthetic_examples=50",
  "--sampling_samples=0",
  "--return_threshold=5",
  "--return_ratio=1.5",  # a model of 120 steps: its samples are rough (neighbours.py)
  "--seed=3",
  "--threads=1",
  "--checkpoint_every=40",
  "--deterministic",
]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
  """The two parts' sources and the workdir of part 1, learned once."""
  folder = tmp_path_factory.mktemp("detect_continue")
  x0, ids0 = synthetic.images(0)
  x1, ids1 = synthetic.images(1)
  np.savez(folder / "part1.npz", images=np.concatenate([x0[ids0 == 3], x0[ids0 == 7]]))
  np.savez(folder / "part2.npz", images=np.concatenate([x1[ids1 == 7], x1[ids1 == 3]]))
  first = str(folder / "first")
  done = train_helpers.train(f"--dataset=npz:{folder}/part1.npz", *FLAGS, f"--workdir={first}")
  assert done.returncode == 0, done.stderr[-2000:]
  return folder, first


def _part2(folder, workdir, kill_at=None):
  """bin/train --continue with part 2 (flags from W's config.json, as a user would)."""
  return train_helpers.train(
    f"--dataset=npz:{folder}/part2.npz", "--continue", f"--workdir={workdir}", kill_at=kill_at
  )


def _outcome(workdir):
  with open(os.path.join(workdir, "boundaries.jsonl")) as f:
    decisions = [json.loads(line) for line in f]
  rows = train_helpers.metrics(workdir)
  keys = ("chunk", "decision", "component", "best_return")
  row_keys = ("interval", "first_chunk", "last_chunk", "decision", "num_categories", "steps")
  values = [d["statistic"] or 0.0 for d in decisions] + [r["test_neg_elbo_seen"] for r in rows]
  return (
    [tuple(d[k] for k in keys) for d in decisions],
    [tuple(r[k] for k in row_keys) for r in rows],
    values,
  )


@pytest.fixture(scope="module")
def continued(parts):
  """Part 2 after part 1, uninterrupted."""
  folder, first = parts
  workdir = str(folder / "continued")
  shutil.copytree(first, workdir)
  done = _part2(folder, workdir)
  assert done.returncode == 0, done.stderr[-2000:]
  return workdir, done


def test_the_decisions_go_on_in_the_next_part(parts, continued):
  folder, first = parts
  workdir, done = continued
  assert "continuing after 2 intervals, from chunk 4" in done.stdout
  before = _outcome(first)
  decisions, rows, _ = _outcome(workdir)
  assert [d[:2] for d in before[0]] == [(0, "new"), (1, "same"), (2, "new"), (3, "same")]
  assert decisions[:4] == before[0] and rows[:2] == before[1]  # part 1 stays as it was
  assert [d[0] for d in decisions[4:]] == [4, 5, 6, 7]  # the chunk numbers go on
  with open(os.path.join(workdir, "boundaries.jsonl")) as f:
    chunk4 = [json.loads(line) for line in f][4]
  # Part 1's last interval carried over: chunk 4 is judged against it and continues it.
  assert chunk4["statistic"] is not None and chunk4["threshold"] == 5.0
  assert (chunk4["decision"], chunk4["component"]) == ("same", 1)
  assert rows[2][:4] == (2, 4, 5, "same")
  metrics = train_helpers.metrics(workdir)
  assert (metrics[2]["distribution"], metrics[2]["is_new"]) == (metrics[1]["distribution"], False)
  assert metrics[2]["invocation"] == 1 and metrics[2]["num_categories"] == 2
  # Component 0's reference, made in part 1, recognises the 3s when they come back.
  assert decisions[6][:3] == (6, "return", 0)
  with open(os.path.join(workdir, "invocations.jsonl")) as f:
    lines = [json.loads(line) for line in f]
  assert [(i["invocation"], i["first_interval"], i["first_chunk"]) for i in lines] == [
    (0, 0, 0),
    (1, 2, 4),
  ]


def test_killed_and_resumed_the_next_part_decides_the_same(parts, continued):
  folder, first = parts
  expected = _outcome(continued[0])
  workdir = str(folder / "killed")
  shutil.copytree(first, workdir)
  # Before part 2 wrote any checkpoint (its first hand-over), then inside its first interval.
  for kill in ("handover:2", "chunk:2:5"):
    killed = _part2(folder, workdir, kill_at=kill)
    assert killed.returncode == -9, killed.stderr[-2000:]
  resumed = _part2(folder, workdir)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resuming from checkpoint" in resumed.stdout
  got = _outcome(workdir)
  assert got[0] == expected[0] and got[1] == expected[1]
  np.testing.assert_allclose(got[2], expected[2], rtol=1e-5)
  again = _part2(folder, workdir)  # finished now: nothing to do
  assert again.returncode == 0 and "holds a finished run" in again.stdout


def test_continue_keeps_the_boundaries(parts, continued):
  folder, _ = parts
  out = train_helpers.run_tool(
    "train",
    f"--dataset=npz:{folder}/part1.npz",
    "--continue",
    "--boundaries=given",
    f"--workdir={continued[0]}",
  )
  assert (out.returncode, out.tensorflow) == (2, False)
  assert out.lines == [
    f"train: error: --continue keeps --boundaries=detect of {continued[0]}: a task-free "
    "learner's references do not carry over to told boundaries, nor back"
  ]
