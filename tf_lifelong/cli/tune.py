"""bin/tune: searches lambda, gamma, tau_min, F and the learning rate with keras-tuner.

    bin/tune --dataset=mnist --order=3,7 --max_trials=20 --workdir=runs/tune-mnist
    bin/train --config_file=runs/tune-mnist/best_config.json

Every trial is a whole lifelong run with the training flags given here (the
same flags as bin/train) and the trial's values of the searched fields; the
objective is the mean over intervals of the best validation -ELBO (never the
test sets). Writes into --workdir: trials.jsonl, best_config.json (a full
configuration) and keras-tuner's records with each trial's run under search/.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from tf_lifelong.cli import errors
from tf_lifelong.cli import flags as run_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
  run_flags.define_run_flags()
  flags.DEFINE_integer(
    "max_trials",
    10,
    "Number of trials (lifelong runs); a search "
    "continued in the same --workdir counts its finished trials.",
    lower_bound=1,
  )


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  errors.quiet_tensorflow(FLAGS.verbose)
  with errors.reported("tune", FLAGS.verbose):
    config = run_flags.config_from_flags()
    with errors.native_stderr_silenced(not FLAGS.verbose):
      from tf_lifelong import runtime  # noqa: PLC0415
      from tf_lifelong.experiments import tuning  # noqa: PLC0415

      runtime.configure(config)

    workdir = FLAGS.workdir or os.path.join(
      "runs", "tune-" + os.path.basename(run_flags.default_workdir(config))
    )
    tuning.tune(
      config, workdir, max_trials=FLAGS.max_trials, overwrite=FLAGS.overwrite, out=sys.stdout
    )


def entry() -> None:
  define_flags()
  errors.run_app("tune", main, (run_flags.__name__, __name__))


if __name__ == "__main__":
  entry()
