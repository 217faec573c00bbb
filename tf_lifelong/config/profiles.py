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
}
"""The fields where method.md's specification differs from the defaults, with its values:
`profile("paper")` is the specification exactly (section 2: Glorot re-initialisation of
the grown layers; section 5: a fresh Adam at lr 1e-4 and replayed Bernoulli means; section 6: plain early
stopping at a constant learning rate; every distribution seen has the same share of a batch;
no decoder distillation, an extension).
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
