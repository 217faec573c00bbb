"""What makes a configuration impossible: the checks, and the ConfigError they raise.

`validate` runs when a `config.Config` is made (its `__post_init__`), so that a Config
that exists can be run; each check raises ConfigError with a one-line message that
names the field and why. The checks read only the fields, so this module does not
import `tf_lifelong.config` (which imports it).
"""

from __future__ import annotations

import re
from typing import Any

from tf_lifelong.config.fields import (
  ARCHS,
  BASELINES,
  BOUNDARIES,
  CONSISTENCY_KLS,
  DATASETS,
  DISCRETE_PRIORS,
  EVAL_SPLITS,
  GROW_INITS,
  LR_SCHEDULES,
  PRECISIONS,
  STRATEGIES,
)

_TFDS_DATASET = re.compile(r"tfds:[^:\s]+(:[^:\s]+)?")
"""`tfds:NAME` or `tfds:NAME:FEATURE` (NAME may hold a config: `emnist/letters`)."""

_ONE_OF = {
  "consistency_kl": CONSISTENCY_KLS,
  "baseline": BASELINES,
  "precision": PRECISIONS,
  "eval_split": EVAL_SPLITS,
  "boundaries": BOUNDARIES,
  "grow_init": GROW_INITS,
  "lr_schedule": LR_SCHEDULES,
  "discrete_prior": DISCRETE_PRIORS,
}
"""Enumerated fields whose message is "NAME must be one of ..., not VALUE"."""

_AT_LEAST_ONE = (
  "batch_size",
  "patience",
  "eval_every",
  "max_steps_per_interval",
  "continuous_dim",
  "hidden_units",
  "conv_filters",
  "tau_update_every",
  "steps_per_execution",
  "chunk_size",
  "chunk_steps",
  "interval_buffer",
)
_NOT_NEGATIVE = (
  "consistency_weight",
  "mi_weight",
  "tau_rate",
  "checkpoint_every",
  "keep_checkpoints",
  "threads",
  "num_cpu_devices",
  "min_steps_per_interval",
  "validation_synthetic_examples",
  "lr_plateau_decays",
  "decoder_distillation",
  "anchor_weight",
  "sampling_samples",
)


class ConfigError(ValueError):
  """A configuration that cannot be run; the message says which field and why."""


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise ConfigError(message)


def validate(c: Any) -> None:
  """Raises ConfigError with a one-line message for an impossible config.

  Args:
    c: a `config.Config` (any object with its fields).
  """
  _check_choices(c)
  _check_task_free(c)
  _check_counts(c)
  _check_ranges(c)
  _check_stream(c)


def _check_choices(c: Any) -> None:
  """The enumerated fields hold one of their values."""
  _check(
    c.dataset in DATASETS or c.dataset.startswith(("folder:", "npz:", "npy:", "tfds:")),
    f"unknown dataset {c.dataset!r}; choose one of {', '.join(DATASETS)}, folder:PATH, "
    "npz:PATH, npy:PATH or tfds:NAME",
  )
  _check(
    not c.dataset.startswith("tfds:") or _TFDS_DATASET.fullmatch(c.dataset) is not None,
    f"dataset {c.dataset!r}: write tfds:NAME or tfds:NAME:FEATURE (NAME as TFDS names it, "
    "e.g. tfds:cifar10 or tfds:emnist/letters; FEATURE a class-label feature)",
  )
  _check(
    c.strategy in STRATEGIES,
    f"unknown strategy {c.strategy!r}; choose one of {', '.join(STRATEGIES)}",
  )
  _check(
    c.arch is None or c.arch in ARCHS, f"unknown arch {c.arch!r}; choose one of {', '.join(ARCHS)}"
  )
  for name, values in _ONE_OF.items():
    value = getattr(c, name)
    _check(value in values, f"{name} must be one of {', '.join(values)}, not {value!r}")


def _check_task_free(c: Any) -> None:
  """boundaries=detect's chunks and thresholds, and what it cannot run with."""
  _check(
    c.boundaries == "given" or c.chunk_size >= c.batch_size,
    f"chunk_size ({c.chunk_size}) must be at least batch_size ({c.batch_size}): a chunk "
    "trains on batches of its own examples",
  )
  _check(
    c.boundaries == "given" or c.baseline != "batch_vae",
    "boundaries=detect cannot be honoured with baseline=batch_vae: the batch VAE learns "
    "all distributions at once, there are no transitions to detect",
  )
  _check(
    c.boundaries == "given" or c.strategy != "multi_worker",
    "boundaries=detect cannot be honoured with strategy=multi_worker: every worker would "
    "decide each chunk on its own, and one decision that round-off tips the other way on "
    "one worker splits the run; use one host (strategy default, or mirrored for its GPUs)",
  )
  _check(
    c.interval_buffer * (1 - c.validation_fraction) >= c.batch_size,
    f"interval_buffer ({c.interval_buffer}) keeps too few examples to train on: its training "
    f"share, {1 - c.validation_fraction:g} of it, must be at least batch_size ({c.batch_size})",
  )
  _check(c.shift_threshold > 0, f"shift_threshold must be positive, got {c.shift_threshold}")
  _check(c.return_threshold > 0, f"return_threshold must be positive, got {c.return_threshold}")
  _check(0 <= c.return_mass <= 1, f"return_mass must be in [0, 1], got {c.return_mass}")
  _check(
    0 <= c.screen_mass < 1, f"screen_mass must be in [0, 1) (0: no screen), got {c.screen_mass}"
  )
  _check(c.return_ratio >= 0, f"return_ratio must be >= 0 (0: not tested), got {c.return_ratio}")
  _check(
    c.return_ratio_growth >= 0, f"return_ratio_growth must be >= 0, got {c.return_ratio_growth}"
  )


def _check_counts(c: Any) -> None:
  """Sizes and step counts are at least 1; weights and optional counts are not negative."""
  for name in _AT_LEAST_ONE:
    _check(getattr(c, name) >= 1, f"{name} must be at least 1, got {getattr(c, name)}")
  for name in _NOT_NEGATIVE:
    _check(getattr(c, name) >= 0, f"{name} must not be negative, got {getattr(c, name)}")


def _check_ranges(c: Any) -> None:
  """Rates, factors, temperatures and fractions lie in their intervals."""
  _check(c.learning_rate > 0, f"learning_rate must be positive, got {c.learning_rate}")
  _check(c.replay_weight > 0, f"replay_weight must be positive, got {c.replay_weight}")
  _check(0 <= c.replay_fraction < 1, f"replay_fraction must be in [0, 1), got {c.replay_fraction}")
  _check(
    0 < c.lr_plateau_factor < 1, f"lr_plateau_factor must be in (0, 1), got {c.lr_plateau_factor}"
  )
  _check(0 < c.tau_min <= c.tau0, "temperatures need 0 < tau_min <= tau0")
  _check(0 < c.teacher_pad_eps < 1, "teacher_pad_eps must be in (0, 1)")
  _check(0 < c.validation_fraction < 1, "validation_fraction must be in (0, 1)")


def _check_stream(c: Any) -> None:
  """The schedule's optional overrides and the evaluation's cap name something."""
  _check(
    c.num_intervals is None or c.num_intervals >= 1,
    f"num_intervals must be at least 1, got {c.num_intervals}",
  )
  _check(c.order is None or len(c.order) >= 1, "order must name at least one distribution")
  _check(c.order is None or min(c.order) >= 0, "order holds negative distribution ids")
  _check(c.eval_examples is None or c.eval_examples >= 1, "eval_examples must be at least 1")
  _check(len(c.angles) >= 1, "angles must name at least one angle")
