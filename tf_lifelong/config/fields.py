"""How a Config field is declared, and the values its enumerated fields may take.

`setting` gives each field of `config.Config` its default, its help (also its --help
and the docs' tables), its section, its allowed values and its role, in one place.
"""

from __future__ import annotations

import dataclasses
from typing import Any

DATASETS = (
  "fashion_mnist",
  "mnist",
  "rotated_mnist",
  "svhn_mnist",
  "fashion_mnist_mnist",
)
"""Named datasets; `folder:PATH`, `npz:PATH` and `tfds:NAME[:FEATURE]` are accepted as well."""

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker")
ARCHS = ("mlp", "conv")
CONSISTENCY_KLS = ("reverse", "forward")
GROW_INITS = ("glorot", "keep_old")
BASELINES = ("none", "naive", "batch_vae")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
"""`precision`'s values: Keras dtype policy names (keras.DTypePolicy)."""
BOUNDARIES = ("given", "detect")
EVAL_SPLITS = ("test", "validation")
LR_SCHEDULES = ("constant", "cosine")
DISCRETE_PRIORS = ("uniform", "mix")


SECTIONS = ("data", "model", "objective", "replay", "training", "task_free", "runtime")
"""The groups of Config's fields, in order (each field's `section` metadata)."""

ROLES = ("stream", "model", "runtime")
"""Field roles beyond "computes the run": `stream` fields say which stream is learned (a
continuation takes them from its flags); `model` fields define the networks (a
continuation must keep them); `runtime` fields change how a run executes or finds its
data, not what it computes (a run may be resumed with other values of them)."""


def setting(
  default: Any,
  doc: str,
  *,
  section: str,
  choices: tuple[str, ...] | None = None,
  role: str | None = None,
) -> Any:
  """A Config field: its default, its documentation (also its --help), its section,
  its allowed values if it is an enumeration, and its role (see ROLES), in one place."""
  assert section in SECTIONS and (role is None or role in ROLES), (section, role)
  meta = {"help": doc, "section": section, "choices": choices, "role": role}
  return dataclasses.field(default=default, metadata=meta)


DEFAULT_ANGLES = (30.0, 70.0, 130.0, 200.0, 250.0)
"""rotated_mnist's default rotation angles, in degrees."""
