"""bin/train: learns a stream of distributions with a lifelong VAE.

    bin/train                                  # Fashion-MNIST, one class per interval
    bin/train --dataset=mnist --order=3,7,3    # repeats allowed
    bin/train --dataset=svhn_mnist --strategy=mirrored
    bin/train --workdir=W                      # resumes the interrupted run in W
    bin/train --workdir=W --dataset=mnist --order=2,0 --continue   # more intervals for W's model
    bin/train --workdir=W --dataset=folder:day1 --boundaries=detect  # frames, changes found
    bin/train --workdir=W --dataset=folder:day2 --continue            # the next day, same learner

Writes into --workdir: config.json, metrics.csv / metrics.jsonl, checkpoints/,
tensorboard/, samples/ and export/ (a SavedModel). On a workdir that holds a run,
the flags start from its config.json: the run resumes from its latest
checkpoint, a finished one is left alone (exit 0), and flags that change its
configuration are refused unless --overwrite (docs/reliability.md). With
--continue, a finished workdir's model takes --dataset's intervals as further
intervals (docs/outputs.md, "Continuing a model"); a detect run's, the next part of
its stream (docs/task_free.md).
"""

from __future__ import annotations

import os

from absl import app, flags

from tf_lifelong.cli import errors
from tf_lifelong.cli import flags as run_flags

FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  errors.quiet_tensorflow(FLAGS.verbose)
  with errors.reported("train", FLAGS.verbose):
    continuing = FLAGS["continue"].value
    if continuing and not FLAGS.workdir:
      raise app.UsageError("--continue needs --workdir: the workdir whose model goes on")
    config = run_flags.config_from_flags(base_file=_stored_config(), new_stream=continuing)
    workdir = FLAGS.workdir or run_flags.default_workdir(config)
    from tf_lifelong.state import lock  # noqa: PLC0415 - no TensorFlow: answers at once.

    # One writer per workdir, refused before TensorFlow loads (multi-worker: the chief's run
    # takes it, state/lock.py).
    held = None if config.strategy == "multi_worker" else lock.acquire(workdir)
    try:
      if held is not None and held.taken_over:
        print(held.taken_over, flush=True)
      _run(config, workdir, continuing, held)
    finally:
      if held is not None:
        held.release()


def _run(config, workdir: str, continuing: bool, held) -> None:
  """The run in `workdir`, whose lock this process holds (`held`, None: multi-worker)."""
  from tf_lifelong.data import frames, sources  # noqa: F401, PLC0415 - no TensorFlow either
  from tf_lifelong.state import resume  # noqa: PLC0415 - no TensorFlow: answers at once.

  if continuing:
    start = resume.prepare_continuation(config, workdir, chief=False)  # Only looks.
  else:
    start = resume.prepare(config, workdir, FLAGS.overwrite, chief=False)  # Only looks.
  if start.finished:
    print(resume.finished_message(workdir, start))
    return
  frames.check_request(config)  # A stream source's headers: what it cannot honour.
  with errors.native_stderr_silenced(not FLAGS.verbose):
    # TensorFlow loads and initialises its devices here, after the flags are checked.
    from tf_lifelong import runtime  # noqa: PLC0415 - after the flags
    from tf_lifelong.train import lifelong  # noqa: PLC0415

    runtime.configure(config)

  lifelong.run(config, workdir, overwrite=FLAGS.overwrite, continue_run=continuing, lock=held)


def _stored_config() -> str | None:
  """The config.json of the run in --workdir, unless --config_file or --overwrite."""
  if not FLAGS.workdir or FLAGS.config_file or FLAGS.overwrite:
    return None
  path = os.path.join(FLAGS.workdir, "config.json")
  from tf_lifelong.state import files  # noqa: PLC0415 - no TensorFlow for local paths

  return path if files.isfile(path) else None


def entry() -> None:
  run_flags.define_run_flags()
  errors.run_app("train", main, (run_flags.__name__,))


if __name__ == "__main__":
  entry()
