"""Checkpoints: a save/restore round trip is bit-identical, and bin/export serves it.

The students are built with the model package's constructors (new_student, two
hand-overs: a new distribution, then a repeat), and every variable gets a
distinct random value, so that a weight restored from the wrong place, or not
restored at all, shows. No training is needed.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import paths
from tf_lifelong import config as config_lib
from tf_lifelong.model import handover
from tf_lifelong.model import student as student_lib
from tf_lifelong.state import checkpoints, integrity, recovery

SHAPE = (28, 28, 1)
CONFIG = config_lib.Config(dataset="mnist", hidden_units=16, continuous_dim=3, batch_size=8, seed=5)
EXPORT = os.path.join(paths.REPO, "bin", "export")


def _randomise(model, seed):
  """Distinct values in every variable (positive ones in batch-norm variances)."""
  rng = np.random.default_rng(seed)
  for v in model.weights:
    if v.dtype == "int64":
      v.assign(int(rng.integers(1, 1000)))
    elif "variance" in v.path:
      v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    else:
      v.assign(rng.normal(0, 0.1, v.shape).astype("float32"))


def _students():
  """(first student J=1, third student J=2 with a teacher J_T=2, k=2)."""
  first = student_lib.new_student(CONFIG, SHAPE)
  _randomise(first, 1)
  second = handover.handover(first, is_new=True, config=CONFIG)
  third = handover.handover(second, is_new=False, config=CONFIG)
  _randomise(third, 2)
  third.seed_generator.state.assign(np.array([11, 13], "int64"))
  third.optimizer.build(third.student_variables)  # Adam slots, as after training.
  return first, third


def _networks(model):
  """Every network of a student and of its teacher, by role."""
  out = {"encoder": model.encoder, "decoder": model.decoder}
  if model.teacher is not None:
    out.update(teacher_encoder=model.teacher.encoder, teacher_decoder=model.teacher.decoder)
  return out


def _all_weights(model) -> dict[str, np.ndarray]:
  """Every variable of the student and its teacher, keyed by role and position."""
  values = {}
  for role, network in _networks(model).items():
    for i, v in enumerate(network.weights):
      values[f"{role}/{i}/{v.name}"] = v.numpy()
  values["student_step"] = model.student_step.numpy()
  values["anchor_component"] = model.anchor_component.numpy()
  values["seed_state"] = model.seed_generator.state.numpy()
  if model.teacher is not None:
    values["teacher/student_step"] = model.teacher.student_step.numpy()
    values["teacher/anchor_component"] = model.teacher.anchor_component.numpy()
  return values


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("run"))
  with open(os.path.join(path, "config.json"), "w") as f:
    f.write(CONFIG.to_json())
  first, third = _students()
  checkpoints.save(
    path,
    first,
    {"interval": 0, "seen": [4], "global_step": 30, "distribution_names": {"4": "digit 4"}},
  )
  checkpoints.save(
    path,
    third,
    {
      "interval": 2,
      "seen": [4, 9],
      "global_step": 90,
      "distribution_names": {"4": "digit 4", "9": "digit 9"},
    },
  )
  return path, first, third


def test_round_trip_is_bit_identical_for_student_and_teacher(workdir):
  path, _, saved = workdir
  restored, config, _ = checkpoints.restore_student(path)
  assert config == CONFIG
  expected, actual = _all_weights(saved), _all_weights(restored)
  assert expected.keys() == actual.keys()
  # Every variable the models have is compared (none hides in an untracked list).
  assert len(expected) == len(saved.weights) + 1  # + the seed state
  for key, value in expected.items():
    assert actual[key].dtype == value.dtype and np.array_equal(actual[key], value), key
  fresh = checkpoints.build_student(CONFIG, checkpoints.read_state(path))
  changed = [k for k, v in _all_weights(fresh).items() if not np.array_equal(v, expected[k])]
  assert len(changed) > len(expected) // 2  # the restore did the work, not the constructors


def test_restored_student_has_the_right_shape_and_behaviour(workdir):
  path, _, saved = workdir
  restored, _, _ = checkpoints.restore_student(path)
  assert (restored.num_categories, restored.teacher.num_categories, restored.num_seen) == (2, 2, 2)
  assert not restored.teacher.trainable and restored.teacher.trainable_weights == []
  assert restored.teacher.teacher is None
  x = np.random.default_rng(3).uniform(size=(4, *SHAPE)).astype("float32")
  for a, b in zip(saved.encode(x), restored.encode(x)):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  np.testing.assert_array_equal(
    saved.teacher_samples(3, seed=7).numpy(), restored.teacher_samples(3, seed=7).numpy()
  )


def test_state_records(workdir):
  path, _, _ = workdir
  folder = os.path.join(path, "checkpoints")
  with open(os.path.join(folder, "latest.json")) as f:
    latest = json.load(f)
  assert latest == checkpoints.read_state(path, "interval-002")
  assert {
    k: latest[k]
    for k in (
      "checkpoint",
      "interval",
      "num_categories",
      "teacher_num_categories",
      "num_seen",
      "seen",
      "global_step",
    )
  } == {
    "checkpoint": "interval-002",
    "interval": 2,
    "num_categories": 2,
    "teacher_num_categories": 2,
    "num_seen": 2,
    "seen": [4, 9],
    "global_step": 90,
  }
  assert checkpoints.available(path) == ["interval-000", "interval-002"]


def test_an_older_checkpoint_by_name(workdir):
  path, first, _ = workdir
  restored, _, state = checkpoints.restore_student(path, "interval-000")
  assert state["teacher_num_categories"] is None and restored.teacher is None
  assert restored.num_categories == 1 and restored.num_seen == 0
  expected, actual = _all_weights(first), _all_weights(restored)
  assert all(np.array_equal(actual[k], v) for k, v in expected.items())


def test_missing_checkpoint(workdir):
  path, _, _ = workdir
  with pytest.raises(
    checkpoints.CheckpointError,
    match="no checkpoint 'interval-007'.*available: interval-000, interval-002",
  ):
    checkpoints.restore_student(path, "interval-007")


def test_missing_workdir_or_config(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match="no workdir"):
    checkpoints.restore_student(str(tmp_path / "absent"))
  with pytest.raises(checkpoints.CheckpointError, match="config.json"):
    checkpoints.restore_student(str(tmp_path))
  (tmp_path / "config.json").write_text(CONFIG.to_json())
  with pytest.raises(checkpoints.CheckpointError, match="holds no checkpoint yet"):
    checkpoints.restore_student(str(tmp_path))


def test_a_checkpoint_that_does_not_fit_the_config_is_refused(workdir, tmp_path):
  path, _, _ = workdir
  shutil.copytree(os.path.join(path, "checkpoints"), tmp_path / "checkpoints")
  narrower = dataclasses.replace(CONFIG, hidden_units=8)
  (tmp_path / "config.json").write_text(narrower.to_json())
  with pytest.raises(checkpoints.CheckpointError, match="does not fit"):
    checkpoints.restore_student(str(tmp_path))


def test_a_model_variable_missing_from_the_checkpoint_is_refused(workdir, tmp_path):
  """A record claiming a teacher that the checkpoint does not hold: nothing is silently fresh."""
  path, _, _ = workdir
  shutil.copytree(os.path.join(path, "checkpoints"), tmp_path / "checkpoints")
  shutil.copy(os.path.join(path, "config.json"), tmp_path / "config.json")
  state = checkpoints.read_state(path, "interval-000")
  state.update(teacher_num_categories=1, num_seen=1)
  (tmp_path / "checkpoints" / "latest.json").write_text(json.dumps(state))
  # Our message and TensorFlow's reason (whose wording and object count are TensorFlow's).
  with pytest.raises(
    checkpoints.CheckpointError, match=r"does not fit the model of .*config\.json: \S"
  ):
    checkpoints.restore_student(str(tmp_path))


def test_save_needs_the_run_state(workdir, tmp_path):
  _, first, _ = workdir
  with pytest.raises(ValueError, match="global_step"):
    checkpoints.save(str(tmp_path), first, {"interval": 0, "seen": [1]})


def _export(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run(
    [sys.executable, EXPORT, *args], capture_output=True, text=True, timeout=180, env=env
  )


def test_bin_export_writes_the_checkpoint_as_a_saved_model(workdir, tmp_path):
  path, _, saved = workdir
  out = str(tmp_path / "served")
  result = _export(f"--workdir={path}", f"--output={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == os.path.abspath(out)
  loaded = tf.saved_model.load(out)
  meta = json.loads(loaded.signatures["metadata"](key=tf.constant(""))["json"].numpy())
  assert meta["distributions_seen"] == [4, 9]
  assert meta["distribution_names"] == {"4": "digit 4", "9": "digit 9"}
  assert meta["config"] == json.loads(CONFIG.to_json())
  assert meta["checkpoint"] == "interval-002" and meta["num_categories"] == 2
  assert meta["version"] and meta["continuous_dim"] == 3
  x = np.random.default_rng(4).uniform(size=(3, *SHAPE)).astype("float32")
  logits, loc, _ = saved.encode(x)
  got = loaded.signatures["encode"](images=tf.constant(x))
  np.testing.assert_allclose(got["mean"].numpy(), loc.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(
    got["probs"].numpy(), tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-6
  )


@pytest.mark.parametrize(
  "args,words",
  [
    ([], "--workdir is required"),
    (["--workdir=/nonexistent/w"], "no workdir /nonexistent/w"),
    (["--checkpoint=interval-042"], "no checkpoint 'interval-042'"),
  ],
)
def test_bin_export_errors_are_one_line(workdir, args, words):
  path, _, _ = workdir
  if args and args[0].startswith("--checkpoint"):
    args = [f"--workdir={path}", *args]
  result = _export(*args)
  assert result.returncode == 2
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert "Traceback" not in result.stderr and words in lines[0], result.stderr
  assert lines[0].startswith("export: error:")


# ------------------------------------------------------------ damage (state/integrity.py)
def _damaged_copy(workdir, tmp_path, kind: str) -> str:
  """A copy of the workdir whose newest checkpoint (interval-002) is damaged one way."""
  path, _, _ = workdir
  copy = str(tmp_path / "w")
  shutil.copytree(path, copy)
  folder = os.path.join(copy, "checkpoints")
  data = next(n for n in os.listdir(folder) if n.startswith("interval-002.data-"))
  target = os.path.join(folder, "interval-002.index" if kind == "index" else data)
  if kind in ("data", "index"):
    with open(target, "r+b") as f:
      f.truncate(os.path.getsize(target) // 2)
  elif kind == "missing":
    os.remove(target)
  elif kind == "record":
    with open(os.path.join(folder, "interval-002.json"), "w") as f:
      f.write('{"checkpoint": "interval-002", "interval": 2')  # A torn JSON record.
  return copy


def test_each_record_lists_its_files_with_size_and_checksum(workdir):
  path, _, _ = workdir
  folder = checkpoints.folder(path)
  state = checkpoints.read_state(path)
  assert sorted(state[integrity.FILES]) == sorted(
    n for n in os.listdir(folder) if n.startswith("interval-002.") and not n.endswith(".json")
  )
  for name, expected in state[integrity.FILES].items():
    assert expected == integrity.digest(os.path.join(folder, name))
    assert expected["size"] == os.path.getsize(os.path.join(folder, name)) > 0
  assert integrity.damage(folder, state) is None


@pytest.mark.parametrize(
  "kind,why",
  [
    ("data", r"interval-002\.data-00000-of-00001 has \d+ bytes, its record says \d+"),
    ("index", r"interval-002\.index has \d+ bytes, its record says \d+"),
    ("missing", r"interval-002\.data-00000-of-00001 is missing"),
    ("record", r"cannot read interval-002\.json"),
  ],
)
def test_a_damaged_newest_checkpoint_is_passed_over_for_the_newest_sound_one(
  workdir, tmp_path, kind, why
):
  copy = _damaged_copy(workdir, tmp_path, kind)
  found = recovery.newest_sound(copy)
  assert found.state["checkpoint"] == "interval-000"
  assert re.fullmatch(
    rf"damaged: interval-002 \({why}.*\); going on from interval-000, the newest sound "
    r"checkpoint \(the work since it is done again\)",
    found.note,
  ), found.note
  if kind != "record":  # A restore by name verifies too: refused in one line.
    with pytest.raises(checkpoints.CheckpointError, match=f"is damaged: {why}"):
      checkpoints.restore_student(copy, "interval-002")
  recovery.set_aside(copy, found)
  assert checkpoints.read_state(copy)["checkpoint"] == "interval-000"
  assert recovery.newest_sound(copy).skipped == []


def test_a_changed_byte_breaks_the_checksum(workdir, tmp_path):
  copy = _damaged_copy(workdir, tmp_path, "none")
  index = os.path.join(copy, "checkpoints", "interval-002.index")
  with open(index, "r+b") as f:
    f.seek(3)
    byte = f.read(1)
    f.seek(3)
    f.write(bytes([byte[0] ^ 0xFF]))
  assert recovery.newest_sound(copy).skipped == [
    ("interval-002", "interval-002.index does not match its checksum")
  ]


def _without_integrity_data(copy) -> None:
  """interval-002's record and latest.json as written before the checksums: no `files`."""
  for name in ("interval-002.json", checkpoints.LATEST):
    path = os.path.join(copy, "checkpoints", name)
    with open(path) as f:
      record = json.load(f)
    del record[integrity.FILES]
    with open(path, "w") as f:
      json.dump(record, f)


@pytest.mark.parametrize("kind", ["none", "data"])
def test_a_record_without_integrity_data_is_read_back_whole(workdir, tmp_path, kind):
  copy = _damaged_copy(workdir, tmp_path, kind)
  _without_integrity_data(copy)
  found = recovery.newest_sound(copy)
  if kind == "none":  # Sound: every tensor reads back.
    assert (found.state["checkpoint"], found.skipped) == ("interval-002", [])
    return
  assert found.state["checkpoint"] == "interval-000"
  assert re.fullmatch(
    r"damaged: interval-002 \(its tensors cannot be read back \([^\n]+\)\); going on from "
    r"interval-000, the newest sound checkpoint \(the work since it is done again\)",
    found.note,
  ), found.note
  with pytest.raises(checkpoints.CheckpointError, match="is damaged: its tensors cannot be read"):
    checkpoints.restore_student(copy, "interval-002")


def test_bin_export_from_a_damaged_checkpoint_is_one_line(workdir, tmp_path):
  copy = _damaged_copy(workdir, tmp_path, "data")
  result = _export(f"--workdir={copy}", f"--output={tmp_path / 'served'}")
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr
  assert lines[0].startswith(
    f"export: error: checkpoint {copy}/checkpoints/interval-002 is damaged: "
    "interval-002.data-00000-of-00001 has "
  ), lines[0]
  assert not os.path.exists(tmp_path / "served")
