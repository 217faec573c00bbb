"""The run's configuration: one typed, frozen object with documented fields.

Every default of ../shared/docs/method.md that "a flag or config field must be able to change"
is a field here; derive variants with `dataclasses.replace`. Its parts: fields.py (declarations),
checks.py, serialization.py (JSON), profiles.py (the named profiles), task_free.py (the
task-free fields, which Config inherits).
"""

from __future__ import annotations

import dataclasses

from tf_lifelong.config.checks import ConfigError, validate  # noqa: F401
from tf_lifelong.config.fields import (  # noqa: F401
  ARCHS,
  BASELINES,
  BOUNDARIES,
  CONSISTENCY_KLS,
  DATASETS,
  DEFAULT_ANGLES,
  DISCRETE_PRIORS,
  EVAL_SPLITS,
  GROW_INITS,
  LR_SCHEDULES,
  PRECISIONS,
  ROLES,
  SECTIONS,
  STRATEGIES,
  setting,
)
from tf_lifelong.config.profiles import (  # noqa: F401
  PAPER_PROFILE,
  PROFILES,
  fields_with_role,
  profile,
  profile_values,
)
from tf_lifelong.config.serialization import JsonFields, refuse_unknown  # noqa: F401
from tf_lifelong.config.task_free import TaskFreeFields


@dataclasses.dataclass(frozen=True)
class Config(TaskFreeFields, JsonFields):
  """Everything that defines a lifelong run.

  Each field is declared once, with `setting`: the bin/ tools' flags (cli/flags.py), the resume
  rules (the `role`s) and the docs' tables come from it. Measured effects live in docs/.
  """

  # --- data and stream (method.md sections 1 and 7) ---
  dataset: str = setting(
    "fashion_mnist",
    "The stream: fashion_mnist (classes 0..9, one per interval), mnist (digits 0..9), "
    "rotated_mnist (digit x angle, --num_intervals drawn with replacement), svhn_mnist (all "
    "SVHN then all MNIST, 32x32 RGB), fashion_mnist_mnist (its offline twin), folder:PATH "
    "(one sub-folder of images per distribution), npz:PATH (arrays `images` and "
    "`distribution`), tfds:NAME[:FEATURE] (a TFDS image dataset, one class of `label`, or "
    "of FEATURE, per interval; --data_dir is TFDS's data directory), or a stream in time order "
    "(npz:PATH with `images` only, npy:PATH, folder:PATH of frames, no sub-folders): one "
    "interval, or read a chunk at a time with --boundaries=detect (docs/task_free.md).",
    section="data",
    role="stream",
  )
  data_dir: str | None = setting(
    None,
    "Root of one folder per dataset, named as in TFDS (mnist/, fashion_mnist/, "
    "svhn_cropped/), with the original files (IDX .gz; SVHN's train_32x32.mat and "
    "test_32x32.mat). Unset: TFDS's data (Fashion-MNIST: Debian's dataset-fashion-mnist).",
    section="data",
    role="runtime",
  )
  download: bool = setting(
    False,
    "Let tensorflow-datasets download data that is not prepared yet (needs a network; off "
    "by default so that absent data fails at once).",
    section="data",
    role="runtime",
  )
  order: tuple[int, ...] | None = setting(
    None,
    "Distribution ids in schedule order, comma-separated, repeats allowed (3,7,3); default: all.",
    section="data",
    role="stream",
  )
  num_intervals: int | None = setting(
    None,
    "Number of intervals (rotated_mnist: default 70, drawn with replacement; others: "
    "truncates the order).",
    section="data",
    role="stream",
  )
  angles: tuple[float, ...] = setting(
    DEFAULT_ANGLES,
    "Comma-separated rotation angles in degrees for rotated_mnist.",
    section="data",
    role="stream",
  )
  validation_fraction: float = setting(
    0.1,
    "Held-out share of each training split (early stopping, --eval_split=validation), in (0, 1).",
    section="data",
  )
  binarize: bool = setting(
    False,
    "Dynamically binarise the training batches' Bernoulli targets (off: continuous pixels, "
    "the paper's way). Scores (validation, test, Learner.evaluate, the export) take the "
    "pixels as given either way.",
    section="data",
  )

  # --- model (method.md section 2) ---
  arch: str | None = setting(
    None,
    "Networks: mlp (two dense layers of --hidden_units) or conv (32x32x3). Default: the "
    "dataset chooses (conv for svhn_mnist and fashion_mnist_mnist).",
    section="model",
    choices=ARCHS,
    role="model",
  )
  continuous_dim: int = setting(20, "F, the dimension of z_c.", section="model", role="model")
  hidden_units: int = setting(512, "Width of the mlp hidden layers.", section="model", role="model")
  conv_filters: int = setting(
    32, "The conv encoder's first filters (doubling per layer).", section="model", role="model"
  )

  # --- objective (method.md sections 3-4) ---
  consistency_weight: float = setting(
    1.0,
    "gamma: weight of the teacher-student consistency KL on synthetic rows (0 with "
    "--mi_weight=0 is the 'without consistency' baseline).",
    section="objective",
  )
  mi_weight: float = setting(
    1.0, "lambda: weight of the mutual information I(z_d; x), maximised.", section="objective"
  )
  consistency_kl: str = setting(
    "reverse",
    "Direction of the consistency KL: reverse = KL(student || teacher), forward = "
    "KL(teacher || student).",
    section="objective",
    choices=CONSISTENCY_KLS,
  )
  consistency_gaussian: bool = setting(
    False,
    "Add the Gaussian (z_c) term to the consistency KL (paper appendix 7.0.2).",
    section="objective",
  )
  teacher_pad_eps: float = setting(
    1e-6,
    "Probability given to the teacher's missing (new) categories in the consistency KL, "
    "before renormalising, in (0, 1).",
    section="objective",
  )
  tau0: float = setting(
    1.0,
    "Gumbel-softmax temperature at each student's start (method.md section 3).",
    section="objective",
  )
  tau_rate: float = setting(
    3e-5,
    "Decay rate r of the temperature: tau_t = max(tau0 * exp(-r * t), tau_min), t = the "
    "student's steps.",
    section="objective",
  )
  tau_min: float = setting(0.5, "Floor of the Gumbel-softmax temperature.", section="objective")
  tau_update_every: int = setting(
    10,
    "Student steps between two updates of the temperature (it is held in between).",
    section="objective",
  )
  decoder_distillation: float = setting(
    0.3,
    "Weight delta of the decoder distillation term (an extension beyond the paper; "
    "docs/model.md): on each synthetic row, the sum over pixels of KL(Bernoulli(teacher "
    "mean) || Bernoulli(student decoder)), both decoders at the latent that made the row. "
    "0: off (method.md, --profile=paper).",
    section="objective",
  )
  anchor_weight: float = setting(
    1.0,
    "Weight of the component anchor (an extension; docs/model.md): the cross-entropy "
    "-log q(z_d = j | x) of each real row with j the interval's component, and of each "
    "synthetic row with j the component that made it. 0: off (method.md, --profile=paper).",
    section="objective",
  )
  discrete_prior: str = setting(
    "uniform",
    "p(z_d) in the training -ELBO: uniform (method.md); mix: each category's share of the "
    "replay mix (an extension, docs/model.md; evaluation keeps the uniform prior).",
    section="objective",
    choices=DISCRETE_PRIORS,
  )

  # --- teacher, replay, hand-over (method.md section 5) ---
  replay_sample_pixels: bool = setting(
    True,
    "Synthetic pixels as Bernoulli samples instead of Bernoulli means (method.md section "
    "5's option; the means with --profile=paper or --noreplay_sample_pixels; its effect: "
    "docs/results/README.md).",
    section="replay",
  )
  replay_weight: float = setting(
    0.5,
    "r > 0: each old distribution's share of the mix relative to the new one's: B r k / "
    "(r k + 1) synthetic rows of B, rounded to a multiple of the replicas; 1: method.md.",
    section="replay",
  )
  replay_fraction: float = setting(
    0.0,
    "f in [0, 1): 0 follows --replay_weight; f > 0 fixes the synthetic share of a batch at "
    "f for every k >= 1 (0.5: a replay batch as large as the real one, as Avalanche).",
    section="replay",
  )
  grow_init: str = setting(
    "keep_old",
    "Hand-over of the layers that grow with J: glorot re-initialises them (the paper, "
    "--profile=paper); keep_old keeps the old slices and initialises only the new "
    "category's rows/columns.",
    section="replay",
    choices=GROW_INITS,
  )
  baseline: str = setting(
    "none",
    "none: the lifelong model; naive: sequential training with no teacher and no replay "
    "(the lower bound); batch_vae: all the stream's distributions at once in one interval, "
    "one category each, at the whole stream's step budget (the upper bound).",
    section="replay",
    choices=BASELINES,
  )

  # --- optimisation and interval length (method.md section 6) ---
  batch_size: int = setting(
    128, "Global batch size, real plus synthetic rows, split over the replicas.", section="training"
  )
  learning_rate: float = setting(
    1e-3,
    "Adam learning rate (each student starts afresh at it; method.md: 1e-4, --profile=paper).",
    section="training",
  )
  patience: int = setting(
    5,
    "Validation evaluations without improvement before the interval ends (or, with "
    "--lr_plateau_decays, before the learning rate drops).",
    section="training",
  )
  lr_plateau_decays: int = setting(
    3,
    "Plateaus (--patience evaluations without improvement) at which the learning rate is "
    "multiplied by --lr_plateau_factor and the interval goes on, before the next plateau "
    "ends it; 0: plain early stopping (method.md section 6, --profile=paper).",
    section="training",
  )
  lr_schedule: str = setting(
    "cosine",
    "Learning rate inside an interval: cosine: (1 + cos(pi t / T)) / 2 of it at step t of the "
    "interval's T steps, set every --eval_every steps; constant (method.md, --profile=paper).",
    section="training",
    choices=LR_SCHEDULES,
  )
  lr_plateau_factor: float = setting(
    0.5,
    "Learning-rate factor at each plateau decay (see --lr_plateau_decays), in (0, 1).",
    section="training",
  )
  eval_every: int = setting(
    250, "Training steps between two validation evaluations.", section="training"
  )
  max_steps_per_interval: int = setting(
    4000, "Upper bound on the training steps of one interval.", section="training"
  )
  min_steps_per_interval: int = setting(
    0, "Early stopping may not end an interval before this many steps.", section="training"
  )
  validation_synthetic_examples: int = setting(
    1000, "Size of the fixed synthetic validation set drawn from the teacher.", section="training"
  )
  eval_examples: int | None = setting(
    None,
    "Cap on the examples per distribution evaluated after each interval (default: all).",
    section="training",
  )
  sampling_samples: int = setting(
    100,
    "Samples per component for the consistent-sampling score after each interval "
    "(metrics.csv, TensorBoard; docs/outputs.md); 0: off.",
    section="training",
    role="runtime",
  )
  eval_split: str = setting(
    "test",
    "The split each seen distribution is evaluated on after each interval (metrics.csv, "
    "neg_elbo_matrix.json, terms): test, or validation (to choose settings blind to test).",
    section="training",
    choices=EVAL_SPLITS,
  )

  # --- runtime ---
  strategy: str = setting(
    "default",
    "tf.distribute strategy: default (no strategy), one_device, mirrored (all local GPUs, "
    "or the --num_cpu_devices logical CPUs), multi_worker (MultiWorkerMirroredStrategy "
    "configured from TF_CONFIG).",
    section="runtime",
    choices=STRATEGIES,
  )
  num_cpu_devices: int = setting(
    0,
    "Testing aid: N logical CPU devices, to try --strategy=mirrored without GPUs.",
    section="runtime",
  )
  jit_compile: bool = setting(False, "Compile the train step with XLA.", section="runtime")
  precision: str = setting(
    "float32",
    "Keras dtype policy of the networks: float32, mixed_bfloat16 or mixed_float16 (dynamic "
    "loss scaling); variables, checkpoints, batch norm, the objective and the export stay "
    "float32. Where it pays: docs/performance.md, 'Mixed precision'.",
    section="runtime",
    choices=PRECISIONS,
  )
  steps_per_execution: int = setting(
    10,
    "Training steps per call of the compiled step (Keras): the same computation with fewer "
    "Python round trips; lowered to a divisor of --eval_every and --max_steps_per_interval.",
    section="runtime",
    role="runtime",
  )
  threads: int = setting(
    0,
    "CPU threads for TensorFlow's ops (intra- and inter-op; 0: TensorFlow decides); 1 lets "
    "two runs share a 2-core machine.",
    section="runtime",
    role="runtime",
  )
  seed: int = setting(0, "Seed of the schedule, initialisation and sampling.", section="runtime")
  deterministic: bool = setting(False, "Deterministic ops (slower), all seeded.", section="runtime")
  checkpoint_every: int = setting(
    1000,
    "Also checkpoint every N training steps, at the next evaluation (0: only at hand-overs "
    "and after each interval).",
    section="runtime",
    role="runtime",
  )
  keep_checkpoints: int = setting(
    3,
    "Interval checkpoints kept, the newest (0: all); the latest, which a resume needs, "
    "always stays, so the disk stays flat in the number of intervals.",
    section="runtime",
    role="runtime",
  )

  TUPLE_FIELDS = ("order", "angles")  # (JsonFields: no annotation, so not a field)

  def __post_init__(self):
    validate(self)

  # ------------------------------------------------------------- derived
  @property
  def resolved_arch(self) -> str:
    conv = self.dataset in ("svhn_mnist", "fashion_mnist_mnist")
    return self.arch if self.arch is not None else ("conv" if conv else "mlp")
