"""absl flags shared by the command-line tools, and their mapping onto `Config`.

Each flag is named as the `Config` field it sets. A flag given on the command
line overrides `--config_file` (a JSON config such as a run's `config.json` or
`bin/tune`'s `best_config.json`), which overrides the defaults. bin/train on a
workdir that holds a run starts from that run's `config.json` instead of the
defaults, so that `bin/train --workdir=W` alone resumes it.
"""

from __future__ import annotations

import os
import sys
import time

from absl import flags

from tf_lifelong import config as config_lib
from tf_lifelong import files

FLAGS = flags.FLAGS

_DEFAULTS = config_lib.Config()


def _ints(text: str | None) -> tuple[int, ...] | None:
  if text is None or text == "":
    return None
  try:
    return tuple(int(t) for t in text.split(","))
  except ValueError:
    raise config_lib.ConfigError(
      f"--order must be comma-separated integers, got {text!r}"
    ) from None


def _floats(text: str) -> tuple[float, ...]:
  try:
    return tuple(float(t) for t in text.split(","))
  except ValueError:
    raise config_lib.ConfigError(
      f"--angles must be comma-separated numbers, got {text!r}"
    ) from None


def define_run_flags() -> None:
  """Defines the flags of a lifelong run (bin/train, bin/tune, bin/experiment)."""
  d = _DEFAULTS
  flags.DEFINE_string(
    "dataset",
    d.dataset,
    "The stream: fashion_mnist (classes 0..9, one per interval; offline with Debian's "
    "dataset-fashion-mnist), mnist (digits 0..9), rotated_mnist (digit x angle, "
    "--num_intervals drawn with replacement), svhn_mnist (all SVHN then all MNIST, "
    "32x32 RGB), fashion_mnist_mnist (its offline twin), folder:PATH (one sub-folder "
    "of images per distribution), npz:PATH (arrays `images` and `distribution`) or "
    "tfds:NAME (any TFDS image dataset, a class of `label` per interval; tfds:NAME:FEATURE "
    "by another class-label feature; --data_dir is then TFDS's data directory).",
  )
  flags.DEFINE_string(
    "data_dir",
    None,
    "Root holding one folder per dataset, named as in TFDS (mnist/, fashion_mnist/, "
    "svhn_cropped/) with the original files (IDX .gz, or SVHN's train_32x32.mat and "
    "test_32x32.mat). Unset: TFDS's prepared data (and, for Fashion-MNIST, the Debian "
    "package path /usr/share/datasets/fashion-mnist/).",
  )
  flags.DEFINE_bool(
    "download",
    False,
    "Let tensorflow-datasets download data that is not prepared yet "
    "(needs a network; off by default so that absent data fails at once).",
  )
  flags.DEFINE_string(
    "workdir",
    None,
    "Where the run writes config, metrics, checkpoints, TensorBoard "
    "logs, samples and the export. Default: runs/<dataset>-<time>.",
  )
  flags.DEFINE_string(
    "config_file",
    None,
    "JSON configuration to start from (a run's config.json, or "
    "bin/tune's best_config.json); flags given here override it.",
  )
  flags.DEFINE_string(
    "order",
    None,
    "Comma-separated distribution ids in schedule order, repeats "
    "allowed, e.g. 3,7,3. Default: every distribution once, by id.",
  )
  flags.DEFINE_integer(
    "num_intervals",
    None,
    "Number of intervals (rotated_mnist: default 70; others: truncates the order).",
  )
  flags.DEFINE_string(
    "angles", ",".join(f"{a:g}" for a in d.angles), "Rotation angles in degrees for rotated_mnist."
  )
  flags.DEFINE_enum(
    "strategy",
    d.strategy,
    list(config_lib.STRATEGIES),
    "tf.distribute strategy: default (no strategy), one_device, mirrored "
    "(all local GPUs, or the --num_cpu_devices logical CPUs), multi_worker "
    "(MultiWorkerMirroredStrategy configured from TF_CONFIG).",
  )
  flags.DEFINE_integer(
    "num_cpu_devices",
    d.num_cpu_devices,
    "Testing aid: split the CPU into N logical devices so that "
    "--strategy=mirrored can be tried without GPUs.",
  )
  flags.DEFINE_enum(
    "arch",
    None,
    list(config_lib.ARCHS),
    "Networks: mlp (2x512 dense) or conv (32x32x3). Default: the dataset "
    "chooses (conv for svhn_mnist and fashion_mnist_mnist).",
  )
  flags.DEFINE_integer(
    "batch_size", d.batch_size, "Global batch size, real plus synthetic rows, split over replicas."
  )
  flags.DEFINE_float("learning_rate", d.learning_rate, "Adam learning rate (fresh per student).")
  flags.DEFINE_integer("continuous_dim", d.continuous_dim, "F, the dimension of z_c.")
  flags.DEFINE_float(
    "consistency_weight",
    d.consistency_weight,
    "gamma: weight of the teacher-student consistency KL (0 with "
    "--mi_weight=0 is the 'without consistency' baseline).",
  )
  flags.DEFINE_float(
    "mi_weight", d.mi_weight, "lambda: weight of the mutual information I(z_d; x), maximised."
  )
  flags.DEFINE_enum(
    "consistency_kl",
    d.consistency_kl,
    list(config_lib.CONSISTENCY_KLS),
    "Direction of the consistency KL: reverse = KL(student||teacher), "
    "forward = KL(teacher||student).",
  )
  flags.DEFINE_bool(
    "consistency_gaussian",
    d.consistency_gaussian,
    "Add the Gaussian z_c term to the consistency KL.",
  )
  flags.DEFINE_float(
    "decoder_distillation",
    d.decoder_distillation,
    "Weight of the decoder distillation term (an extension beyond the paper): on each "
    "synthetic row, KL between the teacher's and the student's decoder outputs at the "
    "latent that made the row; 0: off.",
  )
  flags.DEFINE_enum(
    "baseline",
    d.baseline,
    list(config_lib.BASELINES),
    "none: the lifelong model; naive: sequential training with no teacher "
    "and no replay (lower bound); batch_vae: all distributions at once, "
    "one category each, at the whole stream's step budget (upper bound).",
  )
  flags.DEFINE_integer(
    "patience", d.patience, "Validation evaluations without improvement before an interval ends."
  )
  flags.DEFINE_integer(
    "lr_plateau_decays",
    d.lr_plateau_decays,
    "Plateaus (--patience evaluations without improvement) at which the learning "
    "rate is multiplied by --lr_plateau_factor and the interval goes on, before the "
    "next plateau ends it; 0: plain early stopping.",
  )
  flags.DEFINE_float(
    "lr_plateau_factor",
    d.lr_plateau_factor,
    "Learning-rate factor at each plateau decay (see --lr_plateau_decays), in (0, 1).",
  )
  flags.DEFINE_integer("eval_every", d.eval_every, "Training steps between validation evaluations.")
  flags.DEFINE_integer(
    "max_steps_per_interval",
    d.max_steps_per_interval,
    "Upper bound on the training steps of one interval.",
  )
  flags.DEFINE_integer("seed", d.seed, "Seed of the schedule, initialisation and sampling.")
  flags.DEFINE_integer(
    "threads",
    d.threads,
    "CPU threads for TensorFlow ops (0: all cores); 1 lets two runs share a 2-core machine.",
  )
  flags.DEFINE_bool(
    "deterministic",
    d.deterministic,
    "Enable TensorFlow's op determinism (slower) and seed everything.",
  )
  flags.DEFINE_bool(
    "binarize",
    d.binarize,
    "Dynamically binarise the Bernoulli targets (off: continuous pixels "
    "as targets, the paper's convention).",
  )
  flags.DEFINE_bool("jit_compile", d.jit_compile, "Compile the train step with XLA.")
  flags.DEFINE_enum(
    "precision",
    d.precision,
    list(config_lib.PRECISIONS),
    "Keras dtype policy of the networks: float32, mixed_bfloat16 or mixed_float16 (with "
    "dynamic loss scaling). Mixed: dense and conv layers compute in 16 bits; variables, "
    "checkpoints, batch norm, the objective and the export stay float32. Where it pays: "
    "GPUs with bf16/fp16 tensor cores (not measured here). On CPUs it does not: bf16 "
    "matmuls run 1.7x (AVX512_BF16) to ~3.7x (AMX) float32, but the whole step 0.97-1.07x "
    "(slower with XLA); float16 halves the speed on CPUs without float16 arithmetic. Same "
    "-ELBO as float32 within 1.1 nats on MNIST (docs/performance.md, Mixed precision).",
  )
  flags.DEFINE_integer(
    "steps_per_execution",
    d.steps_per_execution,
    "Training steps per call of the compiled step (Keras): the same "
    "computation with fewer Python round trips; lowered to a divisor of "
    "--eval_every and --max_steps_per_interval.",
  )
  flags.DEFINE_enum(
    "grow_init",
    d.grow_init,
    list(config_lib.GROW_INITS),
    "Hand-over of the layers that grow with J: glorot re-initialises them "
    "(the paper); keep_old keeps the old slices and initialises only the "
    "new category's rows/columns.",
  )
  flags.DEFINE_integer("hidden_units", d.hidden_units, "Width of the mlp's hidden layers.")
  flags.DEFINE_float(
    "tau0", d.tau0, "Gumbel-softmax temperature at each student's start (method.md section 3)."
  )
  flags.DEFINE_float(
    "tau_rate",
    d.tau_rate,
    "Decay rate r of the temperature: tau_t = max(tau0 * exp(-r * t), tau_min), t = the "
    "student's steps.",
  )
  flags.DEFINE_float("tau_min", d.tau_min, "Floor of the Gumbel-softmax temperature.")
  flags.DEFINE_float(
    "teacher_pad_eps",
    d.teacher_pad_eps,
    "Probability given to the teacher's missing (new) categories in the "
    "consistency KL, before renormalising.",
  )
  flags.DEFINE_bool(
    "replay_sample_pixels",
    d.replay_sample_pixels,
    "Synthetic pixels as Bernoulli samples instead of Bernoulli means (method.md "
    "section 5's option). On nearly binary images (MNIST) it ended at 114.3 instead of "
    "124.8 nats test -ELBO here, with half the forgetting (docs/results/README.md).",
  )
  flags.DEFINE_integer(
    "validation_synthetic_examples",
    d.validation_synthetic_examples,
    "Size of the fixed synthetic validation set drawn from the teacher.",
  )
  flags.DEFINE_integer(
    "min_steps_per_interval",
    d.min_steps_per_interval,
    "Early stopping may not end an interval before this many steps.",
  )
  flags.DEFINE_integer(
    "eval_examples",
    None,
    "Cap on test examples per distribution when evaluating after each interval (default: all).",
  )
  flags.DEFINE_enum(
    "eval_split",
    d.eval_split,
    list(config_lib.EVAL_SPLITS),
    "The split of every seen distribution evaluated after each interval (metrics.csv, "
    "neg_elbo_matrix.json): test, or validation to choose settings without the test set.",
  )
  flags.DEFINE_integer(
    "checkpoint_every",
    d.checkpoint_every,
    "Also checkpoint every N training steps, at the next evaluation "
    "(0: only at hand-overs and after each interval).",
  )
  flags.DEFINE_bool(
    "overwrite",
    False,
    "Start afresh in a workdir that holds a run, removing its checkpoints, "
    "metrics, summaries, samples and export. Without it, bin/train on a "
    "workdir resumes the run there (same configuration) or refuses.",
  )
  flags.DEFINE_bool(
    "continue",
    False,
    "Append --dataset's intervals (in --order) to the finished model in --workdir: "
    "names seen before are repeats (J kept), new names grow J; rows are appended to its "
    "metrics, TensorBoard steps go on, the export is replaced at the end. The model's "
    "settings (arch, continuous_dim, hidden_units, conv_filters) come from its config.json; "
    "the stream's (--order, --num_intervals, --angles) from the flags. A killed continuation "
    "resumes with the same command (docs/reliability.md).",
  )
  flags.DEFINE_integer(
    "keep_checkpoints",
    d.keep_checkpoints,
    "Interval checkpoints kept, the newest (0: all); the latest, which a resume needs, "
    "always stays, so the disk stays flat in the number of intervals.",
  )
  flags.DEFINE_enum(
    "boundaries",
    d.boundaries,
    list(config_lib.BOUNDARIES),
    "given: the stream says where each interval ends and whether its distribution is new "
    "(the paper). detect: a task-free stream: the intervals are cut into chunks of "
    "--chunk_size examples that reach the learner with no signal; before training on a chunk "
    "it decides same / return to a component / new distribution (method.md section 9). "
    "Decisions: W/boundaries.jsonl; one metrics row per detected interval.",
  )
  flags.DEFINE_integer(
    "chunk_size",
    d.chunk_size,
    "detect: examples per chunk (at least --batch_size); the last chunk of a distribution "
    "takes the remainder.",
  )
  flags.DEFINE_integer(
    "chunk_steps",
    d.chunk_steps,
    "detect: training steps on the interval's data after each chunk joins it (counted in "
    "--max_steps_per_interval); the early-stopped training follows when the interval ends.",
  )
  flags.DEFINE_float(
    "shift_threshold",
    d.shift_threshold,
    "detect: a chunk stays in the current interval while its shift statistic (the largest "
    "standard score of a change of its -ELBO profile against the interval's held-out share) "
    "is at most this.",
  )
  flags.DEFINE_float(
    "return_threshold",
    d.return_threshold,
    "detect: a changed chunk returns to component j when the encoder sends at least "
    "--return_mass of it to j and its -ELBO profile (under j, KL_c, and against the other "
    "components) lies within this many standard deviations of j's reference in every "
    "entry; otherwise it is a new distribution.",
  )
  flags.DEFINE_float(
    "return_mass",
    d.return_mass,
    "detect: the share of a chunk's mean posterior q(z_d = j | x) that a return to j needs.",
  )
  flags.DEFINE_bool("verbose", False, "Show full tracebacks and TensorFlow's logging.")


_SIMPLE = (
  "dataset",
  "data_dir",
  "num_intervals",
  "strategy",
  "num_cpu_devices",
  "arch",
  "batch_size",
  "learning_rate",
  "continuous_dim",
  "consistency_weight",
  "mi_weight",
  "consistency_kl",
  "consistency_gaussian",
  "decoder_distillation",
  "baseline",
  "patience",
  "lr_plateau_decays",
  "lr_plateau_factor",
  "eval_every",
  "max_steps_per_interval",
  "seed",
  "threads",
  "deterministic",
  "binarize",
  "jit_compile",
  "precision",
  "eval_examples",
  "eval_split",
  "checkpoint_every",
  "keep_checkpoints",
  "steps_per_execution",
  "grow_init",
  "hidden_units",
  "tau0",
  "tau_rate",
  "tau_min",
  "teacher_pad_eps",
  "replay_sample_pixels",
  "validation_synthetic_examples",
  "min_steps_per_interval",
  "boundaries",
  "chunk_size",
  "chunk_steps",
  "shift_threshold",
  "return_threshold",
  "return_mass",
)


_STREAM = ("dataset", "order", "num_intervals", "angles")
"""The fields that say which stream a run learns: a continuation takes them from the flags."""


def config_from_flags(base_file: str | None = None, new_stream: bool = False) -> config_lib.Config:
  """Builds the run's Config: defaults < --config_file < flags given explicitly.

  Args:
    base_file: a JSON configuration to start from when --config_file is not
      given (bin/train passes the config.json of the workdir it resumes).
    new_stream: the stream's fields (`_STREAM`) come from the flags (given or
      default), not from the file (bin/train --continue).
  """
  values: dict = {}
  path = FLAGS.config_file or base_file
  if path:
    try:
      values = config_lib.Config.from_json(files.read_text(path)).to_dict()
    except (OSError, files.not_found()) as e:
      why = getattr(e, "strerror", None) or getattr(e, "message", None) or e
      raise config_lib.ConfigError(f"cannot read {path}: {why}") from None
    except config_lib.ConfigError as e:
      hint = "" if FLAGS.config_file else "; pass --overwrite to start afresh"
      raise config_lib.ConfigError(f"{path}: {e}{hint}") from None
  if new_stream:
    values = {k: v for k, v in values.items() if k not in _STREAM}
  for name in _SIMPLE:
    if FLAGS[name].present or name not in values:
      values[name] = FLAGS[name].value
  if FLAGS["order"].present or "order" not in values:
    values["order"] = _ints(FLAGS.order)
  if FLAGS["angles"].present or "angles" not in values:
    values["angles"] = _floats(FLAGS.angles)
  if FLAGS["download"].present or "download" not in values:
    values["download"] = FLAGS.download
  return config_lib.Config.from_dict(values)


def show_in_help(module_name: str) -> None:
  """Lists the flags defined in `module_name` under the program's own --help."""
  program = sys.argv[0]
  for flag in FLAGS.get_flags_for_module(module_name):
    FLAGS.register_key_flag_for_module(program, flag)


def default_workdir(config: config_lib.Config) -> str:
  name = config.dataset.replace(":", "_").replace("/", "_").strip("_")[:40]
  return os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
