"""Checkpoints of the student (with its frozen teacher) and restoring them.

    path = save(workdir, student, {"interval": 2, "seen": [3, 7], "global_step": 180})
    student, config, state = restore_student(workdir)            # the latest
    student, config, state = restore_student(workdir, "interval-001")

A lifelong run (lifelong.py, docs/reliability.md) writes three kinds, told
apart by the record's `phase`:

- `interval-XXX-start` (`start`): the interval's student right after the
  hand-over, before it trains;
- `interval-XXX-step-NNNNNN` (`train`): at an evaluation boundary inside the
  interval, with early stopping's state (`early_stopping`) and its best
  weights in `NAME.best.npz`;
- `interval-XXX-chunk-NNNNNN` (`chunk`, task-free streams): after chunk
  NNNNNN of the stream joined the interval and was trained on (task_free.py);
- `interval-XXX` (`end`, also every record without a phase): after the
  interval was trained, evaluated and recorded.

`start`, `train` and `chunk` checkpoints are transient: each new checkpoint removes the
older ones; the `end` ones stay, one per interval (retention.py).

A checkpoint is `tf.train.Checkpoint(student=student, seed_state=...)` written
under `workdir/checkpoints/NAME` (NAME defaults to `interval-XXX`); the
student's object graph holds its encoder, decoder, step counter, optimizer
and teacher (whose own graph holds its encoder and decoder). Keras'
`SeedGenerator` is not tracked by TensorFlow, so its state is saved beside the
student as `seed_state`: a restored student continues the same random stream.

Beside each checkpoint, `NAME.json` records what is needed to rebuild the
model before restoring its weights, and `latest.json` is a copy of the newest
one (both written atomically, after the checkpoint files, so that a reader
following `latest.json` always finds a complete checkpoint):

- `checkpoint`: NAME; `interval`: its interval index; `global_step`;
- `num_categories` (J), `teacher_num_categories` (J_T, or null without a
  teacher), `num_seen` (k, the student's count of distributions seen before its
  interval), `seen` (the distribution ids seen so far, in order of arrival);
- `arch`, `image_shape`, `continuous_dim`, `optimizer_built` (whether the
  optimizer's slots exist and are saved); any other key the caller put in
  `state` (e.g. `phase`, `distribution_names`);
- `files`: the size and SHA-256 of each file of the checkpoint (integrity.py),
  checked before any restore: a damaged checkpoint is refused (a resume goes on
  from the newest sound one instead, recovery.py);
- `finished`: true in `latest.json` once the run has exported its model
  (`mark_finished`).

`restore_student` reads `workdir/config.json`, rebuilds the student with J
categories (and its teacher with J_T) through the model package's
constructors, restores the weights and checks that every variable of the
rebuilt model received a value (`assert_existing_objects_matched`). The
optimizer's slot variables (Adam moments, created at the first step) are
built before the read when the record says they were saved, so that they are
restored and checked too.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from tf_lifelong import __version__
from tf_lifelong import config as config_lib
from tf_lifelong.state import artifacts, files, integrity

FOLDER = "checkpoints"
LATEST = "latest.json"
FORMAT_VERSION = 1
_REQUIRED_STATE = ("interval", "seen", "global_step")
BEST_WEIGHTS = ".best.npz"
"""Suffix of the file holding early stopping's best weights of a `train` checkpoint."""
MODEL_FIELDS = tuple(
  "resolved_arch" if name == "arch" else name for name in config_lib.fields_with_role("model")
)
"""Configuration attributes that define the networks (the config's `model` role, with the
architecture resolved): a continuation must keep them."""


def checkpoint_name(interval: int, phase: str = "end", step: int = 0) -> str:
  """The checkpoint name of an interval's `start`, `train` (at `step`), `chunk` (after
  chunk number `step`, task-free streams) or `end` checkpoint."""
  return {
    "start": f"interval-{interval:03d}-start",
    "chunk": f"interval-{interval:03d}-chunk-{step:06d}",
    "train": f"interval-{interval:03d}-step-{step:06d}",
    "end": f"interval-{interval:03d}",
  }[phase]


class CheckpointError(Exception):
  """A workdir or checkpoint that cannot be restored; the message says why."""


def folder(workdir: str) -> str:
  """The checkpoint folder of a workdir."""
  return os.path.join(workdir, FOLDER)


def _trackables(student) -> dict[str, Any]:
  """What a checkpoint holds: the student and its seed generator's state."""
  return {"student": student, "seed_state": student.seed_generator.state}


def save(
  workdir: str, student, state: dict[str, Any], best_weights: Sequence[np.ndarray] | None = None
) -> str:
  """Writes a checkpoint of `student` (and its teacher) and its state record.

  Args:
    workdir: the run's workdir; the checkpoint goes under workdir/checkpoints/.
    student: a LifelongVAE.
    state: the run's state: `interval` (index), `seen` (distribution ids seen
      so far) and `global_step` are required; `checkpoint` (the name, default
      `interval-XXX`) and any JSON-serialisable extras are optional. The
      model's own facts (J, J_T, k, arch, shapes) are added here.
    best_weights: early stopping's best weights (`get_weights()`), written to
      `NAME.best.npz` (for `train` checkpoints).

  Returns:
    The checkpoint's path prefix (workdir/checkpoints/NAME).

  Raises:
    ValueError: a required state key is missing.
  """
  missing = [key for key in _REQUIRED_STATE if key not in state]
  if missing:
    raise ValueError(f"checkpoint state lacks {', '.join(missing)}")
  name = state.get("checkpoint") or checkpoint_name(int(state["interval"]))
  teacher = student.teacher
  record = {
    **state,
    "checkpoint": name,
    "interval": int(state["interval"]),
    "global_step": int(state["global_step"]),
    "seen": [int(i) for i in state["seen"]],
    "num_categories": int(student.num_categories),
    "teacher_num_categories": None if teacher is None else int(teacher.num_categories),
    "num_seen": int(student.num_seen),
    "arch": student.arch,
    "image_shape": [int(d) for d in student.image_shape],
    "continuous_dim": int(student.continuous_dim),
    "optimizer_built": bool(getattr(student.optimizer, "built", False)),
    "best_weights": None,
    "format_version": FORMAT_VERSION,
    "tf_lifelong_version": __version__,
  }
  import tensorflow as tf  # noqa: PLC0415 - reading records needs no TensorFlow.

  path = tf.train.Checkpoint(**_trackables(student)).write(os.path.join(folder(workdir), name))
  if best_weights is not None:
    record["best_weights"] = name + BEST_WEIGHTS
    buf = io.BytesIO()
    np.savez(buf, *best_weights)
    files.write_bytes(os.path.join(folder(workdir), record["best_weights"]), buf.getvalue())
  record[integrity.FILES] = integrity.file_records(folder(workdir), name)
  # The records last: a checkpoint counts once its record (and latest.json) name it.
  artifacts.write_json(os.path.join(folder(workdir), f"{name}.json"), record)
  artifacts.write_json(os.path.join(folder(workdir), LATEST), record)
  return path


def available(workdir: str) -> list[str]:
  """Names of the checkpoints in a workdir that have a state record, sorted."""
  try:
    names = files.listdir(folder(workdir))
  except (OSError, files.not_found()):
    return []
  return sorted(
    n[: -len(".json")]
    for n in names
    if n.endswith(".json") and n != LATEST and n[: -len(".json")] + ".index" in names
  )


def read_state(workdir: str, checkpoint: str | None = None) -> dict[str, Any]:
  """The state record of the latest (or the named) checkpoint.

  Raises:
    CheckpointError: no workdir, no checkpoint, or an unreadable record.
  """
  if not files.isdir(workdir):
    raise CheckpointError(f"no workdir {workdir}")
  if checkpoint is None:
    path = os.path.join(folder(workdir), LATEST)
    if not files.exists(path):
      raise CheckpointError(
        f"{workdir} holds no checkpoint yet ({path} is missing); a run "
        "checkpoints after each interval"
      )
  else:
    name = os.path.basename(checkpoint.rstrip("/"))
    for suffix in (".index", ".json"):
      name = name.removesuffix(suffix)
    path = os.path.join(folder(workdir), f"{name}.json")
    if not files.exists(path):
      names = available(workdir)
      raise CheckpointError(
        f"no checkpoint {checkpoint!r} in {folder(workdir)}; "
        f"available: {', '.join(names) if names else 'none'}"
      )
  try:
    state = json.loads(files.read_text(path))
  except (OSError, ValueError, files.not_found()) as e:
    raise CheckpointError(f"cannot read {path}: {e}") from None
  missing = [
    key
    for key in (
      "checkpoint",
      "num_categories",
      "teacher_num_categories",
      "num_seen",
      "arch",
      "image_shape",
      *_REQUIRED_STATE,
    )
    if key not in state
  ]
  if missing:
    raise CheckpointError(f"{path} lacks {', '.join(missing)}")
  return state


def read_config(workdir: str) -> config_lib.Config:
  """The run's configuration, workdir/config.json.

  Raises:
    CheckpointError: no workdir or no readable config.json.
    config.ConfigError: a config.json that is not a valid configuration.
  """
  if not files.isdir(workdir):
    raise CheckpointError(f"no workdir {workdir}")
  path = os.path.join(workdir, "config.json")
  try:
    text = files.read_text(path)
  except (OSError, files.not_found()) as e:
    raise CheckpointError(
      f"cannot read {path} ({getattr(e, 'strerror', None) or 'missing'}); is {workdir} the "
      "workdir of a tf_lifelong run?"
    ) from None
  return config_lib.Config.from_json(text)


def build_student(config: config_lib.Config, state: dict[str, Any]):
  """A compiled student (and teacher) with the sizes of `state`; weights fresh.

  Call inside the strategy scope the student should live in (if any).
  """
  from tf_lifelong.model import student as student_lib  # noqa: PLC0415

  j_teacher = state["teacher_num_categories"]
  return student_lib.build_student(
    config,
    tuple(int(d) for d in state["image_shape"]),
    int(state["num_categories"]),
    arch=state["arch"],
    teacher_num_categories=None if j_teacher is None else int(j_teacher),
    num_seen=int(state["num_seen"]),
  )


def restore_student(workdir: str, checkpoint: str | None = None):
  """Rebuilds the student of a workdir's latest (or named) checkpoint.

  Args:
    workdir: the run's workdir (holds config.json and checkpoints/).
    checkpoint: a checkpoint name such as `interval-002`; None: the latest.

  Returns:
    (student, config, state): the compiled LifelongVAE with its teacher (if it
    had one) and every weight restored, the run's Config, and the
    checkpoint's state record.

  Raises:
    CheckpointError: missing workdir, config or checkpoint, or a checkpoint
      that does not fit the configuration.
    config.ConfigError: an invalid config.json.
  """
  config = read_config(workdir)
  state = read_state(workdir, checkpoint)
  return restore(workdir, state, config), config, state


def restore(workdir: str, state: dict[str, Any], config: config_lib.Config):
  """Rebuilds the student of the checkpoint that `state` records, with `config`.

  Call inside the strategy scope the student should live in (if any).

  Raises:
    CheckpointError: the checkpoint's files are missing or do not fit the model.
  """
  if int(state.get("continuous_dim", config.continuous_dim)) != config.continuous_dim:
    raise CheckpointError(
      f"checkpoint {state['checkpoint']} has continuous_dim "
      f"{state['continuous_dim']}, config.json {config.continuous_dim}"
    )
  prefix = os.path.join(folder(workdir), state["checkpoint"])
  damage = integrity.damage(folder(workdir), state)
  if damage is not None:
    names = ", ".join(available(workdir)) or "none"
    raise CheckpointError(f"checkpoint {prefix} is damaged: {damage} (checkpoints: {names})")
  import tensorflow as tf  # noqa: PLC0415 - reading records needs no TensorFlow.

  student = build_student(config, state)
  if state.get("optimizer_built"):
    student.optimizer.build(student.student_variables)  # So that Adam's slots are read too.
  try:
    status = tf.train.Checkpoint(**_trackables(student)).read(prefix)
    status.expect_partial()  # Adam's slots, if the checkpoint was taken before the first step.
    status.assert_existing_objects_matched()
  except (AssertionError, ValueError, IndexError, OSError, tf.errors.OpError) as e:
    raise CheckpointError(
      f"checkpoint {prefix} does not fit the model of {workdir}/config.json: {_first_sentence(e)}"
    ) from None
  return student


def read_best_weights(workdir: str, state: dict[str, Any]) -> list[np.ndarray] | None:
  """Early stopping's best weights saved with a `train` checkpoint (None if none).

  Raises:
    CheckpointError: the file the record names cannot be read.
  """
  name = state.get("best_weights")
  if not name:
    return None
  path = os.path.join(folder(workdir), name)
  try:
    with np.load(io.BytesIO(files.read_bytes(path))) as arrays:
      return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
  except (OSError, ValueError, KeyError, files.not_found()) as e:
    raise CheckpointError(f"cannot read {path}: {e}") from None


def mark_finished(workdir: str, **extra: Any) -> None:
  """Marks the run finished in latest.json (with `extra` keys, e.g. the export path)."""
  state = read_state(workdir)
  artifacts.write_json(os.path.join(folder(workdir), LATEST), {**state, **extra, "finished": True})


def _first_sentence(error: BaseException, limit: int = 300) -> str:
  """The start of an error message, without the variable values TensorFlow appends."""
  text = " ".join(str(error).split()) or type(error).__name__
  text = text.split(" Showing ")[0].split(" [<")[0]
  return text if len(text) <= limit else text[:limit] + "..."


def export_metadata(config: config_lib.Config, state: dict[str, Any]) -> dict[str, Any]:
  """The metadata stored with a SavedModel: the distributions seen, the configuration and,
  for an export from a checkpoint, which one (`checkpoint`, `interval`, `global_step`)."""
  names = state.get("distribution_names") or {}
  seen = [int(i) for i in state["seen"]]
  metadata = {
    "version": __version__,
    "distributions_seen": seen,
    "distribution_names": {str(k): v for k, v in names.items() if int(k) in seen},
    "config": config.to_dict(),
  }
  for key in ("checkpoint", "interval", "global_step"):
    if state.get(key) is not None:
      metadata[key] = state[key]
  return metadata


def export_checkpoint(
  workdir: str, checkpoint: str | None = None, output: str | None = None
) -> str:
  """Exports the student of a checkpoint as a serving SavedModel (tf_lifelong.serving.export).

  Args:
    workdir: the run's workdir.
    checkpoint: a checkpoint name; None: the latest.
    output: the export directory; None: workdir/export.

  Returns:
    The absolute path of the export.

  Raises:
    CheckpointError, config.ConfigError: as `restore_student`.
  """
  from tf_lifelong.serving import export  # noqa: PLC0415

  student, config, state = restore_student(workdir, checkpoint)
  try:
    return export.export(
      student.encoder,
      student.decoder,
      num_categories=int(student.num_categories),
      continuous_dim=config.continuous_dim,
      image_shape=tuple(student.image_shape),
      metadata=export_metadata(config, state),
      path=output or os.path.join(workdir, "export"),
    )
  except files.write_errors() as e:  # A full disk among them: the old export stays.
    raise CheckpointError(f"cannot write the export: {_first_sentence(e)}") from None
