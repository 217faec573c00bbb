"""The named profiles: which fields each one sets away from Config's defaults.

`config.profile(name)` is Config's defaults with `profile_values(name)` on top.
"""

from __future__ import annotations

from typing import Any

from tf_lifelong.config.checks import ConfigError

PAPER_PROFILE = {
  "learning_rate": 1e-4,
  "grow_init": "glorot",
  "lr_plateau_decays": 0,
  "replay_sample_pixels": False,
  "lr_schedule": "constant",
  "replay_weight": 1.0,
  "decoder_distillation": 0.0,
  "anchor_weight": 0.0,
}
"""The fields where method.md's specification differs from the defaults, with its values:
`profile("paper")` is the specification exactly (section 2: Glorot re-initialisation of
the grown layers; section 5: a fresh Adam at lr 1e-4 and replayed Bernoulli means; section 6: plain early
stopping at a constant learning rate; every distribution seen has the same share of a batch;
no decoder distillation or component anchor, extensions).
The defaults are the best settings measured on the validation splits (docs/results/)."""

PROFILES = ("default", "paper")


def profile_values(name: str) -> dict[str, Any]:
  """The fields the profile `name` sets over Config's defaults.

  Raises:
    ConfigError: an unknown profile.
  """
  if name not in PROFILES:
    raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
  return dict(PAPER_PROFILE) if name == "paper" else {}


def profile(name: str = "default", **changes: Any):
  """The Config of a named profile with `changes` on top.

  Args:
    name: "default" (Config's defaults: the best settings measured on validation runs,
      docs/results/README.md) or "paper" (method.md's specification: PAPER_PROFILE).
    **changes: fields set on top of the profile.

  Raises:
    ConfigError: an unknown profile or field, or an impossible configuration.
  """
  from tf_lifelong.config import Config  # noqa: PLC0415 (config/__init__ imports this module)
  from tf_lifelong.config.serialization import refuse_unknown  # noqa: PLC0415

  base = {**Config().to_dict(), **profile_values(name)}
  refuse_unknown(changes, base)
  return Config.from_dict({**base, **changes})


def fields_with_role(role: str) -> tuple[str, ...]:
  """The names of Config's fields of one role (see ROLES), in declaration order."""
  import dataclasses  # noqa: PLC0415

  from tf_lifelong.config import Config  # noqa: PLC0415 (config/__init__ imports this module)
  from tf_lifelong.config.fields import ROLES  # noqa: PLC0415

  assert role in ROLES, role
  return tuple(f.name for f in dataclasses.fields(Config) if f.metadata["role"] == role)
