"""Named experiments of the paper (method.md section 7) and the variants each runs.

A preset is a partial configuration (the stream and the networks); a variant
changes the objective or the baseline on top of it:

| variant | what it changes |
|---|---|
| `with_consistency` | nothing: gamma and lambda as configured (default 1, 1) |
| `without_consistency` | consistency_weight = mi_weight = 0 (same graphical model) |
| `batch_vae` | baseline = batch_vae: all distributions at once (the upper bound) |
| `naive` | baseline = naive: sequential fine-tuning, no teacher (the lower bound) |
| `detect` | boundaries = detect: `with_consistency` on the task-free stream (method.md section 9) |
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tf_lifelong import config as config_lib

CLASS_STREAM_STEPS = 8000
"""The class streams' budget per interval: twice bin/train's 4000, which keeps the default
run within 10 minutes. Chosen on validation (docs/results/README.md, "Defaults"): on the
default Fashion-MNIST job with the defaults, 8000 steps end at 243.91 nats against 246.76."""


@dataclasses.dataclass(frozen=True)
class Preset:
  """One experiment: the configuration fields it sets and the paper's section."""

  name: str
  fields: dict[str, Any]
  paper: str
  description: str

  @property
  def cross_domain(self) -> bool:
    """A stream of whole datasets, shown with reconstructions and z_c interpolation."""
    return self.fields["dataset"] in ("svhn_mnist", "fashion_mnist_mnist")


PRESETS = {
  p.name: p
  for p in (
    Preset(
      "fashion_sequential",
      {"dataset": "fashion_mnist", "arch": "mlp", "max_steps_per_interval": CLASS_STREAM_STEPS},
      "5.1, fig. 3",
      "Fashion-MNIST classes 0..9, one per interval",
    ),
    Preset(
      "mnist_sequential",
      {"dataset": "mnist", "arch": "mlp", "max_steps_per_interval": CLASS_STREAM_STEPS},
      "7.5.1, fig. 8",
      "MNIST digits 0..9, one per interval",
    ),
    Preset(
      "rotated_mnist",
      {"dataset": "rotated_mnist", "arch": "mlp", "num_intervals": 70},
      "5.2, fig. 4",
      "digit x angle, 70 intervals drawn with replacement",
    ),
    Preset(
      "svhn_mnist",
      {"dataset": "svhn_mnist", "arch": "conv", "continuous_dim": 2},
      "5.3, fig. 5",
      "all of SVHN, then all of MNIST (32x32 RGB), F = 2",
    ),
    Preset(
      "fashion_mnist_mnist",
      {"dataset": "fashion_mnist_mnist", "arch": "conv", "continuous_dim": 2},
      "5.3, fig. 5 (offline twin)",
      "all of Fashion-MNIST, then all of MNIST, F = 2",
    ),
  )
}

VARIANTS = ("with_consistency", "without_consistency", "batch_vae", "naive", "detect")
"""Every variant, in report order."""
PAPER_VARIANTS = VARIANTS[:4]
"""The paper's variants: bin/experiment's default."""


def preset_config(name: str, profile: str = "default", **overrides) -> config_lib.Config:
  """The Config of preset `name` on `profile` (config.profile: default or paper), with
  `overrides` (fields given by the user) on top."""
  if name not in PRESETS:
    raise config_lib.ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
  return config_lib.profile(profile, **{**PRESETS[name].fields, **overrides})


def variant_config(base: config_lib.Config, variant: str) -> config_lib.Config:
  """`base` changed as `variant` says (see the module docstring)."""
  if variant == "with_consistency":
    return dataclasses.replace(base, baseline="none")
  if variant == "without_consistency":
    return dataclasses.replace(base, baseline="none", consistency_weight=0.0, mi_weight=0.0)
  if variant in ("batch_vae", "naive"):
    return dataclasses.replace(base, baseline=variant)
  if variant == "detect":
    return dataclasses.replace(base, baseline="none", boundaries="detect")
  raise config_lib.ConfigError(f"unknown variant {variant!r}; choose among {', '.join(VARIANTS)}")


def parse_variants(text: str) -> tuple[str, ...]:
  """Comma-separated variant names -> a tuple in the given order, checked."""
  names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
  unknown = [n for n in names if n not in VARIANTS]
  if unknown or not names:
    raise config_lib.ConfigError(
      f"--variants must name some of {', '.join(VARIANTS)}; got {text!r}"
    )
  return names
