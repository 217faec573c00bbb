"""bin/experiment: reproduces one of the paper's experiments, every variant and seed.

    bin/experiment --preset=mnist_sequential --seeds=3 --output=results/mnist
    bin/experiment --preset=fashion_sequential --seeds=1 --output=results/fashion \\
        --variants=with_consistency,without_consistency --max_steps_per_interval=2000 \\
        --threads=1 --parallel=2

For each seed (--seed, --seed + 1, ...) and variant, a lifelong run into
OUT/runs/<variant>/seed-<n>/ with end-of-run extras (IWAE, consistent sampling,
reconstructions, z_c interpolation for F = 2); then OUT/report.md,
OUT/summary.json and OUT/figures/. Run flags (those of bin/train) override the
preset's fields; a command run again in the same --output skips the finished
runs and resumes unfinished ones from their checkpoints. `--terms` writes
OUT/terms.json instead: each finished run's test -ELBO split into its terms.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import app, flags

from tf_lifelong import config as config_lib
from tf_lifelong.cli import errors
from tf_lifelong.cli import flags as run_flags
from tf_lifelong.experiments import presets

FLAGS = flags.FLAGS


def define_flags() -> None:
  run_flags.define_run_flags()
  flags.DEFINE_enum(
    "preset",
    None,
    list(presets.PRESETS),
    "The experiment: " + "; ".join(f"{p.name}: {p.description}" for p in presets.PRESETS.values()),
  )
  flags.DEFINE_string("output", None, "Folder of the experiment's runs, report and figures.")
  flags.DEFINE_integer("seeds", 1, "Number of seeds: --seed, --seed + 1, ...", lower_bound=1)
  flags.DEFINE_string(
    "variants",
    ",".join(presets.PAPER_VARIANTS),
    "Comma-separated variants: with_consistency (gamma, lambda as given), "
    "without_consistency (both 0), batch_vae (all data at once, upper "
    "bound), naive (no teacher, lower bound); also detect (with_consistency on the "
    "task-free stream, --boundaries=detect: the report compares it with with_consistency, "
    "transitions found, missed and false, new/return accuracy).",
  )
  flags.DEFINE_integer(
    "parallel",
    1,
    "Runs at once, as subprocesses (2 on a 2-core machine, with --threads=1, the default then).",
    lower_bound=1,
  )
  flags.DEFINE_integer(
    "iwae_k", 100, "Importance samples of the final IWAE log-likelihood.", lower_bound=1
  )
  flags.DEFINE_integer(
    "iwae_examples",
    None,
    "Cap on the test images of the IWAE bound (default: the whole test set).",
    lower_bound=1,
  )
  flags.DEFINE_integer(
    "sampling_n", 100, "Samples per one-hot z_d for consistent sampling.", lower_bound=1
  )
  flags.DEFINE_integer(
    "classifier_epochs", 3, "Epochs of the consistent-sampling classifier.", lower_bound=1
  )
  flags.DEFINE_integer(
    "classifier_max_per_class",
    2000,
    "Training examples per distribution of that classifier (0: all).",
    lower_bound=0,
  )
  flags.DEFINE_bool("report_only", False, "Only rebuild the report from the finished runs.")
  flags.DEFINE_bool(
    "terms",
    False,
    "Only write OUT/terms.json: each finished run's test -ELBO split into "
    "reconstruction, KL_c and KL_d (exact over z_d), with the mean per variant.",
  )
  flags.register_validator(
    "variants", _variants_ok, "must name some of " + ", ".join(presets.VARIANTS)
  )
  flags.mark_flag_as_required("preset")
  flags.mark_flag_as_required("output")


def _variants_ok(text: str) -> bool:
  try:
    presets.parse_variants(text)
  except config_lib.ConfigError:
    return False
  return True


def base_config() -> config_lib.Config:
  """--profile's defaults < preset < --config_file < run flags given on the command line."""
  given = run_flags.config_from_flags()
  values = presets.preset_config(FLAGS.preset, FLAGS.profile).to_dict()
  if FLAGS.config_file:  # Already read (and checked) by config_from_flags.
    with open(FLAGS.config_file) as f:
      values.update(config_lib.Config.from_json(f.read()).to_dict())
  for field in dataclasses.fields(config_lib.Config):
    if field.name in FLAGS and FLAGS[field.name].present:
      values[field.name] = getattr(given, field.name)
  if FLAGS.parallel > 1 and not FLAGS["threads"].present:
    values["threads"] = 1
  return config_lib.Config.from_dict(values)


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS["workdir"].present:
    print("experiment: error: bin/experiment writes into --output, not --workdir", file=sys.stderr)
    sys.exit(2)
  errors.quiet_tensorflow(FLAGS.verbose)
  with errors.reported("experiment", FLAGS.verbose):
    variants = presets.parse_variants(FLAGS.variants)
    config = base_config()
    with errors.native_stderr_silenced(not FLAGS.verbose):
      from tf_lifelong import runtime  # noqa: PLC0415
      from tf_lifelong.experiments import extras, report, runner  # noqa: PLC0415

      runtime.configure(config)
    if FLAGS.terms:
      _write_terms(FLAGS.output)
      return
    if FLAGS.report_only:
      report.build_report(FLAGS.output)
      print(f"report: {FLAGS.output}/report.md")
      return
    options = extras.ExtrasOptions(
      iwae_k=FLAGS.iwae_k,
      iwae_examples=FLAGS.iwae_examples,
      sampling_n=FLAGS.sampling_n,
      classifier_epochs=FLAGS.classifier_epochs,
      classifier_max_per_class=FLAGS.classifier_max_per_class or None,
    )
    seeds = [config.seed + k for k in range(FLAGS.seeds)]
    runner.run_experiment(
      FLAGS.preset,
      config,
      seeds=seeds,
      variants=variants,
      output=FLAGS.output,
      options=options,
      parallel=FLAGS.parallel,
      command=errors.command_line(),
      out=sys.stdout,
    )
    print(f"report: {FLAGS.output}/report.md")


def _write_terms(output: str) -> None:
  from tf_lifelong.experiments import runner, terms  # noqa: PLC0415
  from tf_lifelong.state import artifacts  # noqa: PLC0415

  result = terms.experiment_terms(output)
  if not result["variants"]:
    raise runner.ExperimentError(f"{output} holds no finished run to decompose")
  path = os.path.join(output, "terms.json")
  artifacts.write_json(path, result)
  for variant, found in result["variants"].items():
    mean = found["mean"]
    print(
      f"{variant} ({len(found['runs'])} run(s)): -ELBO {mean['neg_elbo']:.2f} = reconstruction "
      f"{mean['reconstruction']:.2f} + KL_c {mean['kl_continuous']:.2f} + KL_d "
      f"{mean['kl_discrete']:.2f}"
    )
  print(f"terms: {path}")


def entry() -> None:
  define_flags()
  errors.run_app("experiment", main, (run_flags.__name__, __name__))


if __name__ == "__main__":
  entry()
