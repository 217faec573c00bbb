"""bin/train: learns a stream of distributions with a lifelong VAE.

    bin/train                                  # Fashion-MNIST, one class per interval
    bin/train --dataset=mnist --order=3,7,3    # repeats allowed
    bin/train --dataset=svhn_mnist --strategy=mirrored

Writes into --workdir: config.json, metrics.csv / metrics.jsonl, checkpoints/,
tensorboard/, samples/ and export/ (a SavedModel).
"""

from __future__ import annotations

from absl import app, flags

from tf_lifelong.cli import errors
from tf_lifelong.cli import flags as run_flags

FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  errors.quiet_tensorflow(FLAGS.verbose)
  with errors.reported("train", FLAGS.verbose):
    config = run_flags.config_from_flags()
    with errors.native_stderr_silenced(not FLAGS.verbose):
      # TensorFlow loads and initialises its devices here, after the flags are checked.
      from tf_lifelong import lifelong, runtime

      runtime.configure(config)

    workdir = FLAGS.workdir or run_flags.default_workdir(config)
    lifelong.run(config, workdir, overwrite=FLAGS.overwrite, verbose=FLAGS.verbose)


def entry() -> None:
  run_flags.define_run_flags()
  errors.run_app("train", main, (run_flags.__name__,))



if __name__ == "__main__":
  entry()
