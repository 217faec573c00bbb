"""Resuming interrupted runs: SIGKILL at chosen points, then `bin/train --workdir=W` again.

A tiny deterministic run (MNIST digits 3, 7, 3; tests/train_helpers.py) is made
twice, both with --deterministic: once uninterrupted (the reference, shared with
tests/test_determinism.py), once killed by tests/faults.py at a milestone (tf_lifelong/train/milestones.py)
inside interval 1's training (at step 20, whose checkpoint is not written yet:
steps 11-20 are lost and redone), after interval 1's metrics files but before its
checkpoint (the row is there, and must not be doubled), during interval 2's
hand-over and during the export, each time resumed by `bin/train --workdir=W`
alone. The resumed run must end with the reference's rows and -ELBO values and
an export that computes what the reference's does.
"""

import json
import os
import shutil
import types

import numpy as np
import pytest
import tensorflow as tf

from tests import train_helpers as th
from tf_lifelong import config as config_lib
from tf_lifelong.state import checkpoints, resume
from tf_lifelong.train import lifelong, training

KILLS = ("train:1:20", "record:1", "handover:2", "export:2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The killed-and-resumed run (with snapshots after each kill), and the reference run."""
  base = tmp_path_factory.mktemp("resume")
  resumed = str(base / "resumed")
  killed, snapshots = {}, {}
  first = [f"--config_file={th.config_file(base)}", "--deterministic"]
  for kill in KILLS:
    killed[kill] = th.train(*first, f"--workdir={resumed}", kill_at=kill)
    snapshots[kill] = _snapshot(resumed, base / kill.replace(":", "-"))
    first = []  # Later starts name only the workdir: its config.json says the rest.
  final = th.train(f"--workdir={resumed}")
  again = th.train(f"--workdir={resumed}")
  return types.SimpleNamespace(
    reference=th.reference_run(tmp_path_factory),
    resumed=resumed,
    killed=killed,
    snapshots=snapshots,
    final=final,
    again=again,
  )


def _snapshot(workdir, to) -> dict:
  """What the workdir holds right after a kill (checkpoints copied for later tests)."""
  shutil.copytree(os.path.join(workdir, "checkpoints"), to / "checkpoints")
  shutil.copy(os.path.join(workdir, "config.json"), to / "config.json")
  return {
    "path": str(to),
    "files": sorted(os.listdir(workdir)),
    "rows": [r["interval"] for r in th.metrics(workdir)]
    if os.path.exists(os.path.join(workdir, "metrics.jsonl"))
    else [],
    "latest": checkpoints.read_state(str(to)),
  }


def test_each_kill_point_kills_where_asked(runs):
  for kill, result in runs.killed.items():
    assert result.returncode == -9, (kill, result.stderr[-2000:])
  latest = {k: s["latest"]["checkpoint"] for k, s in runs.snapshots.items()}
  assert latest == {
    "train:1:20": "interval-001-step-000010",
    "record:1": "interval-001-step-000020",
    "handover:2": "interval-001",
    "export:2": "interval-002",
  }
  assert runs.snapshots["record:1"]["rows"] == [0, 1]  # The row is written, its checkpoint not.
  export_files = runs.snapshots["export:2"]["files"]
  assert "export" not in export_files
  assert any(name.startswith("export.tmp-") for name in export_files)


def test_resumed_run_has_the_reference_rows_and_values(runs):
  assert runs.final.returncode == 0, runs.final.stderr[-3000:]
  assert "resuming from checkpoint interval-002" in runs.final.stdout
  ref, got = th.metrics(runs.reference), th.metrics(runs.resumed)
  assert [[r[k] for k in th.ROW_KEYS] for r in got] == [[r[k] for k in th.ROW_KEYS] for r in ref]
  assert [r[k] for r in ref for k in th.ROW_KEYS] == [
    0,
    3,
    True,
    1,
    30,
    1,
    7,
    True,
    2,
    30,
    2,
    3,
    False,
    2,
    30,
  ]
  for name in ("test_neg_elbo_seen", "test_neg_elbo_full", "best_validation_neg_elbo"):
    np.testing.assert_allclose(
      [r[name] for r in got], [r[name] for r in ref], rtol=1e-5, err_msg=name
    )
  with open(os.path.join(runs.resumed, "metrics.csv")) as f:
    assert len(f.read().strip().splitlines()) == 1 + 3  # header + one row per interval


def test_resumed_export_computes_what_the_reference_does(runs):
  x = tf.constant(np.random.default_rng(0).uniform(size=(4, 28, 28, 1)).astype(np.float32))
  out = [
    tf.saved_model.load(os.path.join(w, "export")).signatures["encode"](images=x)
    for w in (runs.reference, runs.resumed)
  ]
  for key in ("probs", "mean", "stddev"):
    np.testing.assert_allclose(out[0][key].numpy(), out[1][key].numpy(), rtol=1e-5, atol=1e-6)
  assert not [n for n in os.listdir(runs.resumed) if n.startswith("export.")]


def test_only_the_interval_checkpoints_remain(runs):
  names = sorted(os.listdir(os.path.join(runs.resumed, "checkpoints")))
  assert names == sorted(
    ["latest.json"]
    + [
      f"interval-00{i}{suffix}"
      for i in range(3)
      for suffix in (".index", ".json", ".data-00000-of-00001")
    ]
  )
  latest = checkpoints.read_state(runs.resumed)
  assert latest["finished"] and latest["checkpoint"] == "interval-002"
  assert latest["global_step"] == 90


def _tag_steps(workdir) -> list[tuple[str, int]]:
  """(tag, step) of every summary value in the run's TensorBoard event files."""
  from tensorflow.core.util import event_pb2

  logdir = os.path.join(str(workdir), "tensorboard")
  found = []
  for name in sorted(os.listdir(logdir)):
    for record in tf.data.TFRecordDataset(os.path.join(logdir, name)):
      event = event_pb2.Event.FromString(record.numpy())
      found.extend((v.tag, event.step) for v in event.summary.value)
  return found


def test_tensorboard_shows_each_step_once(runs):
  # The kill at train:1:20 came after step 20's summaries (global step 50) and
  # before their checkpoint: the resumed process logged step 50 again.
  resumed = _tag_steps(runs.resumed)
  assert ("train/loss", 50) in resumed
  assert len(resumed) == len(set(resumed))
  assert sorted(resumed) == sorted(_tag_steps(runs.reference))


def test_a_finished_run_is_left_alone(runs):
  assert runs.again.returncode == 0, runs.again.stderr[-2000:]
  assert "finished run (3 intervals" in runs.again.stdout
  assert "nothing to do" in runs.again.stdout and "interval 1/3" not in runs.again.stdout


def test_mid_interval_checkpoint_holds_optimizer_and_early_stopping(runs):
  snap = runs.snapshots["train:1:20"]
  state = snap["latest"]
  assert (state["phase"], state["interval"], state["step"], state["global_step"]) == (
    "train",
    1,
    10,
    40,
  )
  assert state["optimizer_built"] and state["teacher_seen"] == [3] and state["seen"] == [3, 7]
  stopping = state["early_stopping"]
  assert stopping["best_step"] == 10 and stopping["bad_evals"] == 0 and stopping["lr_decays"] == 0
  assert len(stopping["grad_norms"]) == 1
  config = checkpoints.read_config(snap["path"])
  student = checkpoints.restore(snap["path"], state, config)
  assert int(student.optimizer.iterations.numpy()) == 10
  assert int(student.student_step.numpy()) == 10
  moments = [v for v in student.optimizer.variables if "momentum" in v.path]
  assert moments and all(np.any(v.numpy() != 0) for v in moments)
  best = checkpoints.read_best_weights(snap["path"], state)
  assert [w.shape for w in best] == [w.shape for w in student.get_weights()]


def test_another_configuration_is_refused_and_overwrite_starts_afresh(runs, tmp_path):
  refused = th.train(f"--workdir={runs.reference}", "--seed=4")
  assert refused.returncode == 2 and "Traceback" not in refused.stderr
  assert "another configuration (seed: 3 there, 4 here)" in refused.stderr
  assert "--overwrite" in refused.stderr
  workdir = str(tmp_path / "w")
  shutil.copytree(runs.reference, workdir)
  config = config_lib.Config.from_dict({**th.TINY, "seed": 4})
  start = resume.prepare(config, workdir, overwrite=True)
  assert start.state is None and start.rows == [] and not start.finished
  assert sorted(os.listdir(workdir)) == ["config.json", resume.INVOCATIONS]
  assert config_lib.Config.from_json(open(os.path.join(workdir, "config.json")).read()) == config


class _PoisonWeights:
  """A hook that makes one decoder kernel NaN when interval `index` starts."""

  def __init__(self, index):
    self.index = index

  def before_interval(self, ctx):
    if ctx.interval.index == self.index:
      kernel = ctx.student.decoder.trainable_weights[0]
      kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_injected_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  config = config_lib.Config.from_dict({**th.TINY, "order": [3, 7], "threads": 0})
  workdir = str(tmp_path / "w")
  with pytest.raises(lifelong.RunError) as info:
    lifelong.run(config, workdir, hooks=[_PoisonWeights(1)], out=open(os.devnull, "w"))
  message = str(info.value)
  assert message.startswith(
    "interval 1 (distribution 7), step 10 (global step 40): the training loss is nan"
  )
  assert message.endswith(f"{workdir}/checkpoints/interval-001-start") and "\n" not in message
  state = checkpoints.read_state(workdir)
  assert state["checkpoint"] == "interval-001-start" and not state.get("finished")
  for name in checkpoints.available(workdir):
    student = checkpoints.restore(workdir, checkpoints.read_state(workdir, name), config)
    assert all(np.isfinite(w).all() for w in student.get_weights() if w.dtype.kind == "f"), name
  assert [r["interval"] for r in th.metrics(workdir)] == [0]


def test_no_checkpoint_of_non_finite_weights_is_written(tmp_path):
  from tf_lifelong.model import student as student_lib
  from tf_lifelong.train import learner as learner_lib
  from tf_lifelong.train import task_free

  config = config_lib.Config.from_dict({**th.TINY, "threads": 0})
  student = student_lib.new_student(config, (28, 28, 1))
  student.decoder.trainable_weights[1].assign(
    np.full(student.decoder.trainable_weights[1].shape, np.inf, np.float32)
  )
  learner = learner_lib.Learner.__new__(learner_lib.Learner)  # Only its checkpoint path.
  learner._task_free = task_free.TaskFree(learner)
  learner.ctx = lifelong.Context(
    config,
    str(tmp_path),
    stream=None,
    student=student,
    interval=types.SimpleNamespace(index=0, distribution=types.SimpleNamespace(name="digit 3")),
  )
  state = training.TrainState(training.IntervalResult(steps=20))
  with pytest.raises(lifelong.RunError, match="step 20 .*the weights are not finite"):
    learner.checkpoint("train", [], state)
  assert not os.path.exists(os.path.join(str(tmp_path), "checkpoints"))


def test_a_malformed_fault_is_refused():
  from tests import faults

  for spec in ("sometime", "train", "train:x", "bake:1", "train:1:2:3"):
    with pytest.raises(ValueError, match="expected <point>:<interval>"):
      faults.parse(spec)
  assert faults.parse("train:1:20") == ("train", 1, 20)
  assert faults.parse("export:2") == ("export", 2, None)


def test_a_config_json_older_than_a_field_still_resumes(tmp_path):
  """A field missing from a stored config.json (written before the field existed) counts
  as its default, so an older run still resumes and only real differences are named."""
  old = {k: v for k, v in config_lib.Config().to_dict().items() if k != "precision"}
  (tmp_path / "config.json").write_text(json.dumps(old))
  resume._check_same_config(config_lib.Config(), str(tmp_path))
  with pytest.raises(resume.WorkdirError) as info:
    resume._check_same_config(config_lib.Config(seed=4), str(tmp_path))
  assert "(seed: 0 there, 4 here)" in str(info.value)
