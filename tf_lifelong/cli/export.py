"""bin/export: writes the serving SavedModel of a run's checkpoint.

    bin/export --workdir=runs/mnist-20261129-101500                 # latest checkpoint
    bin/export --workdir=W --checkpoint=interval-003 --output=/srv/models/lgm/1

Restores the student of the checkpoint (its configuration from W/config.json)
and writes a SavedModel with the signatures sample, encode, reconstruct, elbo
and metadata (docs/serving.md) to --output (default W/export). Writing into W
takes W's lock (another writer there is refused); an --output outside W only
reads W and needs no lock (docs/reliability.md).
"""

from __future__ import annotations

import sys

from absl import app, flags

from tf_lifelong.cli import errors

FLAGS = flags.FLAGS


def define_flags() -> None:
  flags.DEFINE_string("workdir", None, "The workdir of a run (holds config.json and checkpoints/).")
  flags.DEFINE_string(
    "checkpoint",
    None,
    "A checkpoint name in W/checkpoints, e.g. "
    "interval-003. Default: the latest (W/checkpoints/latest.json).",
  )
  flags.DEFINE_string(
    "output",
    None,
    "Directory of the SavedModel. Default: W/export. An "
    "existing export there is replaced once the new one is complete.",
  )
  flags.DEFINE_bool("verbose", False, "Show full tracebacks and TensorFlow's logging.")


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  errors.quiet_tensorflow(FLAGS.verbose)
  with errors.reported("export", FLAGS.verbose):
    if not FLAGS.workdir:
      print("export: error: --workdir is required\nTry --help.", file=sys.stderr)
      sys.exit(2)
    with errors.native_stderr_silenced(not FLAGS.verbose):
      # TensorFlow loads here, where its native start-up lines are silenced.
      import tensorflow  # noqa: F401, PLC0415

      from tf_lifelong.state import checkpoints, lock  # noqa: PLC0415

    held = lock.acquire(FLAGS.workdir) if _writes_into(FLAGS.workdir, FLAGS.output) else None
    try:
      path = checkpoints.export_checkpoint(FLAGS.workdir, FLAGS.checkpoint, FLAGS.output)
    finally:
      if held is not None:
        held.release()
    print(path)


def _writes_into(workdir: str, output: str | None) -> bool:
  """Whether the export lands inside an existing `workdir` (then it is one of its writers)."""
  from tf_lifelong.state import files, lock  # noqa: PLC0415

  if not files.isdir(workdir):
    return False  # Nothing to lock: the export says that there is no workdir.
  return output is None or lock.inside(workdir, output)


def entry() -> None:
  define_flags()
  errors.run_app("export", main, (__name__,))


if __name__ == "__main__":
  entry()
