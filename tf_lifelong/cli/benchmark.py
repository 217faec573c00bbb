"""bin/benchmark: times the student step, the plain VAE step, the matmul bound, the input
pipeline and one lifelong interval, side by side; writes JSON.

    bin/benchmark --output=benchmark.json                 # the full benchmark (~10 min)
    bin/benchmark --output=b.json --quick                 # a tiny setting (seconds)
    bin/benchmark --output=b.json --nointerval            # the step benchmark only
    bin/benchmark --output=b.json --nointerval --precisions=float32,mixed_float16
    bin/benchmark --output=s.json --devices=1,2           # only the scaling benchmark
    bin/benchmark --output=s.json --stretch_chunks=100    # only the endless-stretch one

With --devices, bin/benchmark runs only the scaling benchmark
(tf_lifelong/benchmarks/scaling.py, docs/scaling.md): the student step with the
default strategy on one device, then MirroredStrategy over each number of
devices listed (the first N GPUs, or the CPU split into N logical devices where
there is no GPU), each in a fresh process; the JSON gives examples/s and the
speed-up over the one-device default run. --quick, --steps, --rounds,
--batch_size (the global batch), --hidden_units, --continuous_dim,
--num_categories, --dataset, --data_dir, --threads and --seed apply; the other
flags do not.

The student is the one after nine hand-overs (J = 10, k = 9, with the default
replay share 105 of 128 rows from the teacher), with the default objective; the same
step without decoder distillation is timed beside it (`replay_overhead`). The matmul
bound counts the matmuls of the step that runs. docs/performance.md explains every
number; `estimated_default_run` (with the interval benchmark, not --nointerval) is the
default bin/train run's predicted wall time on this machine.
"""

from __future__ import annotations

import dataclasses
import sys
import time

from absl import app, flags

from tf_lifelong.cli import errors

FLAGS = flags.FLAGS


def define_flags() -> None:
  """Defines bin/benchmark's flags; their defaults are benchmarks.settings.Settings()'s."""
  from tf_lifelong.benchmarks.settings import Settings  # noqa: PLC0415 - no TensorFlow import here.

  d = Settings()
  _define_run_flags()
  _define_model_flags(d)
  _define_step_flags(d)
  _define_interval_flags(d)
  _define_precision_flags(d)
  _define_scaling_flags()
  flags.DEFINE_integer(
    "stretch_chunks",
    0,
    "Run only the endless-stretch benchmark (benchmarks/stretch.py, docs/task_free.md): a "
    "task-free learner fed N chunks of one distribution (--dataset's images, shuffled), with "
    "the default --interval_buffer and with every example kept, each in a fresh process; "
    "seconds, memory and disk per chunk. --dataset, --data_dir, --threads and --seed apply.",
    lower_bound=0,
  )


def _define_run_flags() -> None:
  """The command as a whole: where the result goes, the tiny setting, how much it says."""
  flags.DEFINE_string("output", None, "Where to write the JSON result.", required=True)
  flags.DEFINE_bool(
    "quick",
    False,
    "A tiny setting that runs in seconds: batch 32, 32 hidden units, 4-step "
    "bursts, 2 rounds, 8-step intervals run in this process. Flags given "
    "explicitly override it.",
  )
  flags.DEFINE_bool("verbose", False, "Show TensorFlow's logging and full tracebacks.")


def _define_model_flags(d) -> None:
  """What is benchmarked: the student's sizes, its data, TensorFlow's threads, the seed."""
  flags.DEFINE_integer(
    "batch_size", d.batch_size, "Global batch size (real + synthetic rows).", lower_bound=2
  )
  flags.DEFINE_integer(
    "hidden_units", d.hidden_units, "Width of the MLP's hidden layers.", lower_bound=1
  )
  flags.DEFINE_integer(
    "continuous_dim", d.continuous_dim, "F, the dimension of z_c.", lower_bound=1
  )
  flags.DEFINE_integer(
    "num_categories",
    d.num_categories,
    "J of the benchmarked student; its teacher has J - 1 and k = J - 1.",
    lower_bound=2,
  )
  flags.DEFINE_string("dataset", d.dataset, "The stream whose first interval feeds the steps.")
  flags.DEFINE_string("data_dir", d.data_dir, "As bin/train's --data_dir.")
  flags.DEFINE_integer("threads", d.threads, "TensorFlow op threads (0: all cores).", lower_bound=0)
  flags.DEFINE_integer("seed", d.seed, "Seed of the data order and the initialisation.")


def _define_step_flags(d) -> None:
  """How the step benchmark times: bursts, rounds, its variants, the Adam comparison, profile."""
  flags.DEFINE_integer("steps", d.steps, "Steps per timed burst.", lower_bound=1)
  flags.DEFINE_integer(
    "rounds", d.rounds, "Interleaved bursts per variant (medians reported).", lower_bound=1
  )
  flags.DEFINE_integer(
    "steps_per_execution",
    d.steps_per_execution,
    "steps_per_execution of the variants that use more than 1.",
    lower_bound=2,
  )
  flags.DEFINE_bool(
    "compare_keras_adam",
    None,
    "Also time the step with Keras' own Adam update instead of the fused "
    "kernel (default: yes, but not with --quick).",
  )
  flags.DEFINE_integer(
    "profile_steps",
    d.profile_steps,
    "Also profile this many student steps with tf.profiler and report op "
    "time per step by kind (matmul, optimizer, ...).",
    lower_bound=0,
  )


def _define_interval_flags(d) -> None:
  """The interval benchmark: whether it runs, its variants, their steps and evaluation."""
  flags.DEFINE_bool("interval", True, "Run the interval benchmark.")
  flags.DEFINE_integer(
    "interval_steps",
    d.interval_steps,
    "max_steps_per_interval of the interval benchmark.",
    lower_bound=1,
  )
  flags.DEFINE_integer(
    "eval_every", d.eval_every, "eval_every of the interval benchmark.", lower_bound=1
  )
  flags.DEFINE_integer(
    "eval_examples", d.eval_examples, "eval_examples of the interval benchmark (default: all)."
  )
  flags.DEFINE_list(
    "interval_variants",
    list(d.interval_variants),
    "Interval benchmark runs: default (config defaults), xla, spe, xla_spe.",
  )
  flags.DEFINE_bool(
    "interval_subprocess",
    None,
    "Each interval variant in a fresh process, for its own peak memory "
    "(default: yes, but not with --quick).",
  )


def _define_precision_flags(d) -> None:
  """The precisions timed side by side, and the conv step timed in each."""
  flags.DEFINE_list(
    "precisions",
    list(d.precisions),
    "Precisions (bin/train's --precision values) timed side by side, float32 always "
    "included: the student and plain VAE steps, the matmul bound in the compute dtype and "
    "the conv step in each, with their rates over float32 and the CPU's bf16/AMX flags "
    "(`precision` in the JSON; docs/performance.md, Mixed precision). float32 alone: none.",
  )
  flags.DEFINE_bool(
    "precision_conv",
    d.precision_conv,
    "Also time the conv plain VAE step (32x32x3, --conv_filters) in each of --precisions.",
  )
  flags.DEFINE_integer(
    "conv_filters", d.conv_filters, "conv_filters of the conv step.", lower_bound=1
  )


def _define_scaling_flags() -> None:
  """The scaling benchmark (--devices), which runs instead of the step and interval ones."""
  flags.DEFINE_list(
    "devices",
    [],
    "Run only the scaling benchmark (docs/scaling.md) over these device counts, "
    "e.g. 1,2 (1,2,4,8 on a host with 8 GPUs): the default strategy on one "
    "device, then MirroredStrategy over N GPUs (N logical CPUs without a GPU) "
    "for each N, each in a fresh process; --batch_size is the global batch. "
    "--quick, --steps, --rounds and the model and data flags apply. Empty: the "
    "step and interval benchmark.",
  )
  flags.DEFINE_bool(
    "weak_scaling",
    True,
    "With --devices: also time N > 1 replicas with --batch_size rows each "
    "(global batch N x --batch_size).",
  )


_FIELDS = (
  "steps",
  "rounds",
  "batch_size",
  "hidden_units",
  "continuous_dim",
  "num_categories",
  "steps_per_execution",
  "dataset",
  "data_dir",
  "interval_steps",
  "eval_every",
  "eval_examples",
  "profile_steps",
  "precision_conv",
  "conv_filters",
  "threads",
  "seed",
)


def settings_from_flags():
  from tf_lifelong.benchmarks.settings import Settings  # noqa: PLC0415

  given = {name: FLAGS[name].value for name in _FIELDS if FLAGS[name].present or not FLAGS.quick}
  if FLAGS["interval_variants"].present or not FLAGS.quick:
    given["interval_variants"] = tuple(FLAGS.interval_variants)
  if not FLAGS.interval:
    given["interval_variants"] = ()
  if FLAGS["precisions"].present or not FLAGS.quick:
    given["precisions"] = tuple(FLAGS.precisions)
  for name in ("interval_subprocess", "compare_keras_adam"):
    if FLAGS[name].value is not None:
      given[name] = FLAGS[name].value
  return Settings.quick(**given) if FLAGS.quick else dataclasses.replace(Settings(), **given)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  errors.quiet_tensorflow(FLAGS.verbose)
  with errors.reported("benchmark", FLAGS.verbose):
    settings = settings_from_flags()
    devices = None
    if FLAGS.devices:
      from tf_lifelong.benchmarks import scaling  # noqa: PLC0415 - no TensorFlow import here.

      devices = scaling.parse_devices(FLAGS.devices)
    with errors.native_stderr_silenced(not FLAGS.verbose):
      # TensorFlow loads here, its C++ start-up lines silenced.
      import tensorflow as tf  # noqa: PLC0415

      from tf_lifelong.benchmarks import steps  # noqa: PLC0415
    if not FLAGS.verbose:
      # Each of the benchmark's models traces its own step: not a retracing problem.
      tf.get_logger().setLevel("ERROR")

    start = time.monotonic()

    def log(message: str) -> None:
      print(
        f"benchmark: [{time.monotonic() - start:5.0f} s] {message}", file=sys.stderr, flush=True
      )

    if devices:
      from tf_lifelong.benchmarks import scaling  # noqa: PLC0415

      result = scaling.run(settings, devices, weak=FLAGS.weak_scaling, log=log)
      text = scaling.summary(result)
    elif FLAGS.stretch_chunks:
      from tf_lifelong.benchmarks import stretch  # noqa: PLC0415

      result = stretch.run(settings, FLAGS.stretch_chunks, log=log)
      text = stretch.summary(result)
    else:
      result = steps.run(settings, log=log)
      text = summary(result)
    result["command"] = errors.command_line()
    steps.write(result, FLAGS.output)
    log(text)
    log(f"wrote {FLAGS.output}")


def summary(result: dict) -> str:
  """A few lines with the headline numbers."""
  lines = [
    f"student step (k=9): {result['lgm_examples_per_sec']:.0f} rows/s; plain VAE "
    f"{result['plain_vae_examples_per_sec']:.0f} rows/s; step time ratio "
    f"{result['lgm_over_plain_step_time']:.2f}",
    f"matmul bound {result['matmul_bound_examples_per_sec']:.0f} rows/s "
    f"({result['matmul_gflops_per_sec']:.0f} GFLOP/s); student at "
    f"{100 * result['lgm_fraction_of_matmul_bound']:.0f}% of it",
    f"pipeline {result['pipeline_examples_per_sec']:.0f} rows/s "
    f"({result['pipeline_over_plain_vae']:.1f}x the plain VAE step)",
  ]
  lines += _overhead_lines(result)
  if result.get("keras_adam"):
    k = result["keras_adam"]
    lines.append(
      f"  with Keras' own Adam: student {k['lgm_examples_per_sec']:.0f} rows/s, plain "
      f"{k['plain_vae_examples_per_sec']:.0f} rows/s (the fused kernel: "
      f"{k['lgm_fused_over_keras_adam_rate']:.2f}x, "
      f"{k['plain_fused_over_keras_adam_rate']:.2f}x)"
    )
  precision = result.get("precision") or {}
  for name in precision.get("precisions", [])[1:]:
    p = precision[name]
    line = (
      f"  {name}: student {p['lgm_examples_per_sec']:.0f} rows/s "
      f"({p['lgm_rate_over_float32']:.2f}x float32), plain {p['plain_vae_examples_per_sec']:.0f} "
      f"({p['plain_vae_rate_over_float32']:.2f}x), matmul bound "
      f"{p['matmul_gflops_per_sec']:.0f} GFLOP/s ({p['matmul_rate_over_float32']:.2f}x)"
    )
    if "conv_plain_vae_rate_over_float32" in p:
      line += f", conv step {p['conv_plain_vae_rate_over_float32']:.2f}x"
    lines.append(line)
  if precision.get("cpu"):
    cpu = precision["cpu"]
    has = ", ".join(f for f, on in cpu["flags"].items() if on) or "none"
    lacks = ", ".join(f for f, on in cpu["flags"].items() if not on) or "none"
    lines.append(f"  CPU: {cpu['model_name']}; has {has}; lacks {lacks}")
  if result.get("profile"):
    kinds = ", ".join(
      f"{k} {100 * v:.0f}%" for k, v in result["profile"]["by_kind_fraction"].items()
    )
    lines.append(f"  profile (op time): {kinds}")
  for name, v in result["step_variants"].items():
    lines.append(
      f"  {name}: student {v['lgm_examples_per_sec']:.0f} rows/s, plain "
      f"{v['plain_vae_examples_per_sec']:.0f} rows/s"
    )
  return "\n".join(lines + _interval_lines(result))


def _overhead_lines(result: dict) -> list[str]:
  """The replay overhead with the default objective and without decoder distillation."""
  overhead = result.get("replay_overhead")
  if not overhead:
    return []
  return [
    f"replay overhead (student / plain VAE step time): {overhead['default_objective']:.2f} "
    f"with the default objective (decoder distillation {overhead['decoder_distillation']:g}), "
    f"{overhead['without_distillation']:.2f} without decoder distillation; the distillation "
    f"alone {overhead['distillation_step_time']:.2f}x the step time"
  ]


def _interval_lines(result: dict) -> list[str]:
  """The interval runs and the estimated default run (none without the interval benchmark)."""
  lines = []
  for name, v in result["interval"].items():
    walls = ", ".join(f"{i['wall_seconds']:.1f} s / {i['steps']} steps" for i in v["intervals"])
    lines.append(f"  interval {name}: {walls}; peak RSS {v['peak_rss_mb']:.0f} MB")
  if not result.get("estimated_run"):
    lines.append(
      "estimated default run: none (it needs the interval benchmark: run without --nointerval)"
    )
  for name, estimate in (result.get("estimated_run") or {}).items():
    if estimate:
      lines.append(
        f"estimated {estimate['num_intervals']}-interval run ({name}): "
        f"{estimate['seconds'] / 60:.1f} min (worst case "
        f"{estimate['worst_case_seconds'] / 60:.1f} min)"
      )
  return lines


def entry() -> None:
  define_flags()
  errors.run_app("benchmark", main, (__name__,))


if __name__ == "__main__":
  entry()
