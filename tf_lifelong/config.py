"""The run's configuration: one typed object with documented fields.

Every default of ../shared/docs/method.md that "a flag or config field must be
able to change" is a field here. `Config` is frozen; derive variants with
`dataclasses.replace`. It round-trips through JSON (`to_json` / `from_json`)
so that a run's resolved configuration is saved in its workdir and can be read
back (`bin/train --config_file`).
"""

from __future__ import annotations

import dataclasses
import json
import re
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

DEFAULT_ANGLES = (30.0, 70.0, 130.0, 200.0, 250.0)

_TFDS_DATASET = re.compile(r"tfds:[^:\s]+(:[^:\s]+)?")
"""`tfds:NAME` or `tfds:NAME:FEATURE` (NAME may hold a config: `emnist/letters`)."""


class ConfigError(ValueError):
  """A configuration that cannot be run; the message says which field and why."""


@dataclasses.dataclass(frozen=True)
class Config:
  """Everything that defines a lifelong run.

  Attributes are grouped as data/stream, model, objective (method.md sections
  3-4), teacher and hand-over (section 5), interval length (section 6) and
  runtime.
  """

  # --- data and stream (method.md sections 1 and 7) ---
  dataset: str = "fashion_mnist"
  """fashion_mnist | mnist | rotated_mnist | svhn_mnist | fashion_mnist_mnist |
  folder:PATH | npz:PATH | tfds:NAME (any TFDS image dataset, one class of its `label`
  per distribution) | tfds:NAME:FEATURE (by another class-label feature)."""
  data_dir: str | None = None
  """Root with one folder per dataset (mnist/, fashion_mnist/, svhn_cropped/);
  None: TFDS (and the Debian Fashion-MNIST package path)."""
  download: bool = False
  """Let TFDS download data that is not prepared (needs a network)."""
  order: tuple[int, ...] | None = None
  """Distribution ids in schedule order, repeats allowed; None: 0..K-1."""
  num_intervals: int | None = None
  """Stream length; rotated_mnist draws this many intervals (default 70);
  otherwise truncates `order`."""
  angles: tuple[float, ...] = DEFAULT_ANGLES
  """Rotation angles in degrees for rotated_mnist."""
  validation_fraction: float = 0.1
  """Share of each distribution's training split held out for validation."""
  binarize: bool = False
  """Dynamic binarisation of the Bernoulli targets (never silently on)."""

  # --- model (method.md section 2) ---
  arch: str | None = None
  """mlp | conv; None: the dataset chooses (conv for the 32x32 RGB streams)."""
  continuous_dim: int = 20
  """F, the dimension of z_c."""
  hidden_units: int = 512
  """Width of the mlp's hidden layers."""
  conv_filters: int = 32
  """Filters of the conv encoder's first layer (doubling each layer)."""

  # --- objective (method.md sections 3-4) ---
  consistency_weight: float = 1.0
  """gamma: weight of the consistency KL on synthetic rows."""
  mi_weight: float = 1.0
  """lambda: weight of the mutual information I(z_d; x) (maximised)."""
  consistency_kl: str = "reverse"
  """reverse: KL(student || teacher); forward: KL(teacher || student)."""
  consistency_gaussian: bool = False
  """Add the Gaussian (z_c) term to the consistency KL (paper appendix 7.0.2)."""
  teacher_pad_eps: float = 1e-6
  """Probability given to the teacher's missing (new) categories before
  renormalising."""
  tau0: float = 1.0
  tau_rate: float = 3e-5
  tau_min: float = 0.5
  tau_update_every: int = 10

  decoder_distillation: float = 0.0
  """Weight delta of the decoder distillation term on synthetic rows: sum over
  pixels of KL(Bernoulli(teacher mean) || Bernoulli(student decoder)), both
  decoders at the latent z that made the row. 0: off (method.md has no such
  term; an extension, docs/model.md)."""

  # --- teacher, replay, hand-over (method.md section 5) ---
  replay_sample_pixels: bool = False
  """Synthetic pixels as Bernoulli samples instead of Bernoulli means."""
  grow_init: str = "glorot"
  """glorot: re-initialise the grown layers; keep_old: copy the old slice and
  initialise only the new rows/columns."""

  baseline: str = "none"
  """none: the lifelong model; naive: sequential fine-tuning with no teacher and
  no replay (the lower bound); batch_vae: all the stream's distributions at once
  in one interval, J = their number, budget = intervals x max_steps (the upper
  bound)."""

  # --- optimisation and interval length (method.md section 6) ---
  batch_size: int = 128
  """Global batch size (real + synthetic rows), split across replicas."""
  learning_rate: float = 1e-4
  patience: int = 5
  """Evaluations without improvement of the validation -ELBO before the
  interval ends (or, with lr_plateau_decays, before the learning rate drops)."""
  lr_plateau_decays: int = 0
  """How many times a plateau (patience evaluations without improvement)
  multiplies the learning rate by lr_plateau_factor and training goes on,
  before the next plateau ends the interval. 0: plain early stopping
  (method.md section 6). Each student starts again at learning_rate."""
  lr_plateau_factor: float = 0.5
  """The learning rate's factor at each plateau decay, in (0, 1)."""
  eval_every: int = 250
  """Training steps between two validation evaluations."""
  max_steps_per_interval: int = 4000
  min_steps_per_interval: int = 0
  """Early stopping may not end an interval before this many steps."""
  validation_synthetic_examples: int = 1000
  """Size of the fixed synthetic validation set drawn from the teacher."""

  # --- task-free streams (method.md section 9; detection.py) ---
  boundaries: str = "given"
  """given: the stream says where intervals end and whether a distribution is new
  (the paper); detect: the stream is cut into chunks of `chunk_size` examples
  with no signal, and the learner decides for each chunk same / return / new."""
  chunk_size: int = 1000
  """detect: examples per chunk (at least batch_size); the last chunk of each
  stretch of one distribution takes the remainder (up to 2 x chunk_size)."""
  chunk_steps: int = 100
  """detect: training steps after each chunk joins the interval (counted in its
  max_steps_per_interval budget); the interval's early-stopped training follows
  when it ends."""
  shift_threshold: float = 5.0
  """detect: a chunk is the current interval's distribution while its largest
  shift statistic |z| (standard errors) is at most this."""
  return_threshold: float = 1.5
  """detect: a changed chunk returns to component j when the encoder sends at least
  `return_mass` of it to j and its -ELBO profile lies within this many sds of j's
  reference in every entry (detection.choose_return); otherwise it is new."""
  return_mass: float = 0.95
  """detect: see return_threshold."""

  # --- runtime ---
  strategy: str = "default"
  num_cpu_devices: int = 0
  """Split the CPU into N logical devices (a testing aid for `mirrored`)."""
  jit_compile: bool = False
  precision: str = "float32"
  """float32 | mixed_bfloat16 | mixed_float16: the networks' Keras dtype policy. Mixed:
  dense/conv layers compute in bfloat16 or float16, variables (and checkpoints), batch
  norm, the objective and the exported signatures stay float32; mixed_float16 adds
  dynamic loss scaling (keras.optimizers.LossScaleOptimizer). docs/performance.md,
  "Mixed precision", says where it pays."""
  steps_per_execution: int = 10
  """Training steps per call of the compiled step: the same computation, fewer Python
  round trips (docs/performance.md); lowered to a divisor of eval_every and
  max_steps_per_interval."""
  threads: int = 0
  """CPU threads for TensorFlow's ops (intra- and inter-op); 0: TensorFlow decides."""
  seed: int = 0
  deterministic: bool = False
  checkpoint_every: int = 1000
  """Also checkpoint every N training steps (0: only at hand-overs)."""
  keep_checkpoints: int = 3
  """Interval (end) checkpoints kept, the newest ones (0: all). The latest, which a
  resume needs, always stays; a learner's disk stays flat in its number of intervals."""
  eval_examples: int | None = None
  """Cap on test examples per distribution in the per-interval evaluation
  (None: all)."""
  eval_split: str = "test"
  """test | validation: the split of every seen distribution that the per-interval
  evaluation (metrics.csv, neg_elbo_matrix.json, terms) uses. validation chooses
  settings without looking at the test set (the held-out share of each training
  split, the same one early stopping watches for the interval's own distribution)."""

  def __post_init__(self):
    validate(self)

  # ------------------------------------------------------------------ I/O
  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict[str, Any]) -> Config:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
      raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
    fixed = dict(values)
    for name in ("order", "angles"):
      if fixed.get(name) is not None:
        fixed[name] = tuple(fixed[name])
    return cls(**fixed)

  @classmethod
  def from_json(cls, text: str) -> Config:
    try:
      values = json.loads(text)
    except json.JSONDecodeError as e:
      raise ConfigError(f"configuration is not valid JSON: {e}") from None
    if not isinstance(values, dict):
      raise ConfigError("configuration JSON must be an object")
    return cls.from_dict(values)

  def replace_checked(self, **changes: Any) -> Config:
    """A copy with `changes` (validated); unknown fields are a ConfigError."""
    unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
    if unknown:
      raise ConfigError(f"unknown configuration field(s): {', '.join(unknown)}")
    return self.from_dict({**self.to_dict(), **changes})

  # ------------------------------------------------------------- derived
  @property
  def resolved_arch(self) -> str:
    if self.arch is not None:
      return self.arch
    return "conv" if self.dataset in ("svhn_mnist", "fashion_mnist_mnist") else "mlp"


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise ConfigError(message)


def validate(c: Config) -> None:
  """Raises ConfigError with a one-line message for an impossible config."""
  _check(
    c.dataset in DATASETS or c.dataset.startswith(("folder:", "npz:", "tfds:")),
    f"unknown dataset {c.dataset!r}; choose one of {', '.join(DATASETS)}, folder:PATH, "
    "npz:PATH or tfds:NAME",
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
  _check(
    c.consistency_kl in CONSISTENCY_KLS,
    f"consistency_kl must be one of {', '.join(CONSISTENCY_KLS)}, not {c.consistency_kl!r}",
  )
  _check(
    c.baseline in BASELINES, f"baseline must be one of {', '.join(BASELINES)}, not {c.baseline!r}"
  )
  _check(
    c.precision in PRECISIONS,
    f"precision must be one of {', '.join(PRECISIONS)}, not {c.precision!r}",
  )
  _check(
    c.eval_split in EVAL_SPLITS,
    f"eval_split must be one of {', '.join(EVAL_SPLITS)}, not {c.eval_split!r}",
  )
  _check(
    c.boundaries in BOUNDARIES,
    f"boundaries must be one of {', '.join(BOUNDARIES)}, not {c.boundaries!r}",
  )
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
    "boundaries=detect runs on one host (strategy default or mirrored), not multi_worker",
  )
  _check(c.shift_threshold > 0, f"shift_threshold must be positive, got {c.shift_threshold}")
  _check(c.return_threshold > 0, f"return_threshold must be positive, got {c.return_threshold}")
  _check(0 < c.return_mass <= 1, f"return_mass must be in (0, 1], got {c.return_mass}")
  _check(
    c.grow_init in GROW_INITS,
    f"grow_init must be one of {', '.join(GROW_INITS)}, not {c.grow_init!r}",
  )
  for name in (
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
  ):
    _check(getattr(c, name) >= 1, f"{name} must be at least 1, got {getattr(c, name)}")
  for name in (
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
  ):
    _check(getattr(c, name) >= 0, f"{name} must not be negative, got {getattr(c, name)}")
  _check(c.learning_rate > 0, f"learning_rate must be positive, got {c.learning_rate}")
  _check(
    0 < c.lr_plateau_factor < 1, f"lr_plateau_factor must be in (0, 1), got {c.lr_plateau_factor}"
  )
  _check(0 < c.tau_min <= c.tau0, "temperatures need 0 < tau_min <= tau0")
  _check(0 < c.teacher_pad_eps < 1, "teacher_pad_eps must be in (0, 1)")
  _check(0 < c.validation_fraction < 1, "validation_fraction must be in (0, 1)")
  _check(
    c.num_intervals is None or c.num_intervals >= 1,
    f"num_intervals must be at least 1, got {c.num_intervals}",
  )
  _check(c.order is None or len(c.order) >= 1, "order must name at least one distribution")
  _check(c.order is None or min(c.order) >= 0, "order holds negative distribution ids")
  _check(c.eval_examples is None or c.eval_examples >= 1, "eval_examples must be at least 1")
  _check(len(c.angles) >= 1, "angles must name at least one angle")
