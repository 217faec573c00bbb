"""The lifelong run: `for interval in stream: learner.learn(interval)`.

    run(config, workdir)

A `Learner` (learner.py) does each interval: the hand-over (method.md section
5), training with replay until early stopping (training.py), best weights
restored, then the interval's record and checkpoint. This module adds what a
whole stream needs: the stream built from `config.dataset`, the test sets of
every distribution of the stream (and of those seen in earlier invocations,
see `continue_run`) evaluated after each interval, resuming an interrupted
run from its workdir (resume.py), and the export after the last interval.

With `config.boundaries == "detect"` the stream's intervals are cut into chunks
(feeding.py) that reach the learner with nothing else (`Learner.observe`); the
learner finds the intervals itself (task_free.py), and each chunk's true
distribution is only written down beside its decision. A time-ordered source
(data/frames.py: an npz of `images`, an .npy, a folder of frames) is read a
chunk at a time; it has no test split, so each row reports the held-out images
of the components (held_out.py). With told boundaries it is one interval.

A workdir holding a checkpoint of the same configuration is resumed from the
latest one; a finished one is left alone. With `continue_run`, a finished
workdir takes the stream of `config` as further intervals of its model
(`bin/train --continue`, resume.prepare_continuation): names seen before are
repeats, new names grow J. A detect run's continuation feeds the next part of its
stream to the same learner: chunk numbers, references and the interval that ended
the last part go on (task_free.py).

Hooks (objects with optional `before_interval(context)` / `after_interval(context,
row)` methods) let experiments add metrics without touching the loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from tf_lifelong import __version__, runtime
from tf_lifelong import config as config_lib
from tf_lifelong.data import frames, sources, streams
from tf_lifelong.evaluation import evaluate
from tf_lifelong.monitor import progress
from tf_lifelong.state import checkpoints, files, resume
from tf_lifelong.train import feeding, ownership, watchdog
from tf_lifelong.train.context import Context, RunError
from tf_lifelong.train.learner import Learner, setup_runtime
from tf_lifelong.train.recording import reconstruction_grid, sample_grid

__all__ = ["Context", "RunError", "run", "reconstruction_grid", "sample_grid", "SUMMARY_COLUMNS"]

SUMMARY_COLUMNS = (
  "interval",
  "distribution",
  "is_new",
  "num_categories",
  "steps",
  "wall_seconds",
  "test_neg_elbo_seen",
  "test_neg_elbo_full",
  "consistency",
)


def run(
  config: config_lib.Config,
  workdir: str,
  *,
  overwrite: bool = False,
  continue_run: bool = False,
  hooks: Sequence[Any] = (),
  out=None,
  lock=None,
) -> list[dict]:
  """Runs the lifelong stream of `config`, writing into `workdir`.

  The run holds the workdir's lock (state/lock.py) from its start to its end
  (the chief; `lock`: one the caller holds already); another writer is refused.

  A workdir holding a checkpoint of the same configuration is resumed from its
  latest checkpoint; a finished one is left as it is (its rows are returned).
  `overwrite` starts afresh, removing what another run left there;
  `continue_run` appends the stream to the finished learner in `workdir`.

  Returns:
    The metrics rows, one per interval (as in workdir/metrics.jsonl), those of
    earlier invocations included.

  Raises:
    RunError, config.ConfigError, data.sources.DataError: with a user message.
  """
  strategy, chief = setup_runtime(config)
  _check_request(config, overwrite, continue_run)
  with _holding(workdir, chief and lock is None, out), _disk_full(workdir):
    return _run(config, workdir, strategy, chief, overwrite, continue_run, hooks, out)


@contextlib.contextmanager
def _disk_full(workdir: str):
  """A full disk (ENOSPC through os or TensorFlow) while writing a checkpoint, the metrics,
  a sample grid or the export: one line; every write is atomic, so the last checkpoint
  stays and the same command resumes from it once there is space."""
  try:
    yield
  except files.write_errors() as e:
    if not files.no_space(e):
      raise
    try:
      last = f"its last checkpoint, {checkpoints.read_state(workdir)['checkpoint']}, stays"
    except checkpoints.CheckpointError:
      last = "it had written no checkpoint yet"
    where = getattr(e, "filename", None) or str(e).split(";")[0].split("}} ")[-1]
    raise RunError(
      f"no space left on the device of {workdir} (writing {where}); the run stopped and "
      f"{last}: free some space and run the same command to resume"
    ) from None


@contextlib.contextmanager
def _holding(workdir: str, take: bool, out):
  """The workdir's lock for the body, if `take` (says so when a dead holder's is taken)."""
  if not take:
    yield
    return
  with ownership.take_lock(workdir) as held:
    if held.taken_over:
      print(held.taken_over, file=out or sys.stdout, flush=True)
    yield


def _run(config, workdir, strategy, chief, overwrite, continue_run, hooks, out) -> list[dict]:
  """`run` with the lock held."""
  start = _prepare(config, workdir, overwrite, continue_run, chief)
  if start.finished:
    if chief:
      print(resume.finished_message(workdir, start), file=out or sys.stdout, flush=True)
    return start.rows
  frames.check_request(config)
  config, stream, chunks = _data(config, start)
  detect = config.boundaries == "detect"
  learner = Learner.for_run(
    config,
    workdir,
    start,
    strategy,
    stream=stream,
    hooks=hooks,
    out=out,
    tests={} if stream is None else evaluate.test_sets(stream, config.eval_split),
    catalogue={} if detect else {i: d.name for i, d in stream.distributions.items()},
  )
  learner.invocation = start.invocation
  _announce(learner, stream, chunks, start, strategy)
  try:
    feeding.feed(learner, stream, chunks, start)
    learner.finish()  # Every worker: saving may take part in collectives (multi-worker).
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
    if config.strategy != "multi_worker":
      raise
    raise _worker_gone(e, learner) from None
  finally:
    watchdog.stop_step_watchdog()  # Multi-worker: the run's collectives are over.
    if isinstance(chunks, frames.Chunks):
      chunks.source.close()
  _summarize(learner, chief, out, held_out=stream is None)
  return learner.history


def _check_request(config: config_lib.Config, overwrite: bool, continue_run: bool) -> None:
  """Refuses the combinations of a continuation that cannot be honoured (RunError)."""
  if continue_run and (overwrite or config.baseline == "batch_vae"):
    raise RunError(
      "--continue appends intervals to a lifelong model: not with --overwrite or "
      "--baseline=batch_vae"
    )


def _prepare(config, workdir, overwrite, continue_run, chief) -> resume.Start:
  """Where the run starts (state/resume.py), a workdir refusal as a RunError."""
  try:
    if continue_run:
      return resume.prepare_continuation(config, workdir, chief)
    return resume.prepare(config, workdir, overwrite, chief)
  except resume.WorkdirError as e:
    raise RunError(str(e)) from None


def _data(config: config_lib.Config, start: resume.Start):
  """(config, stream, chunks): a time-ordered source read as a stream has no Stream, its
  chunks are read one at a time (frames.Chunks); a labelled stream in detect mode is cut
  into chunks (feeding.chunked); with told boundaries there are no chunks."""
  if frames.reads_as_stream(config):
    return config, None, frames.Chunks(frames.open_frames(config.dataset), config.chunk_size)
  config, stream = _stream(config, start)
  detect = config.boundaries == "detect"
  return config, stream, feeding.chunked(stream, config.chunk_size) if detect else None


def _stream(config: config_lib.Config, start: resume.Start):
  """The stream to learn and the config to learn it with (the batch VAE's: one joint
  interval at the budget of the whole stream; a continuation's: ids of the earlier ones;
  a detect run's truth ids are the stream's own)."""
  stream = streams.build_stream(config)
  if config.baseline == "batch_vae":
    config = dataclasses.replace(
      config, max_steps_per_interval=config.max_steps_per_interval * len(stream)
    )
    stream = streams.joint(stream)
  if start.invocation and config.boundaries == "given":
    stream = _adopt(stream, _names(start))
  return config, stream


def _announce(learner: Learner, stream, chunks, start: resume.Start, strategy) -> None:
  """The run's first progress line (and the test sets of earlier invocations)."""
  config, shown = learner.config, learner.progress
  shown.num_intervals = None if chunks is not None else start.first_interval + len(stream)
  what = (
    f"{len(chunks)} chunks of about {config.chunk_size} examples, boundaries detected"
    if chunks is not None
    else f"{len(stream)} intervals"
  )
  if isinstance(chunks, frames.Chunks):
    what = f"a stream of {chunks.source.count} images, {what}"
  later = f", from chunk {start.first_chunk}" if chunks is not None else ""
  shown.message(
    f"tf_lifelong {__version__}: {config.dataset}, {what}, "
    f"{config.resolved_arch} model, strategy {config.strategy} "
    f"({strategy.num_replicas_in_sync} replica(s)); workdir {learner.workdir}"
    + (f"; continuing after {start.first_interval} intervals{later}" if start.invocation else "")
  )
  if start.invocation and stream is not None:  # A stream's held-out sets: task_free.py.
    _add_earlier_tests(learner, learner.workdir, start, shown)


def _summarize(learner: Learner, chief: bool, out, held_out: bool = False) -> None:
  """The run's closing table (the chief), or a worker's one line."""
  rows = learner.history
  if chief:
    columns = SUMMARY_COLUMNS
    if learner.config.boundaries == "detect":
      truth = ("truth",) if any(r.get("truth") is not None for r in rows) else ()
      columns = (*SUMMARY_COLUMNS, "first_chunk", "last_chunk", "decision", *truth)
    learner.progress.message("\n" + progress.table(rows, columns))
    if held_out:
      learner.progress.message(
        "test -ELBO: on each component's held-out chunk images (the stream has no test split)"
      )
    learner.progress.message(f"done: {learner.workdir}")
  else:
    print(
      f"worker done (not the chief; nothing written): {len(rows)} intervals, "
      f"{learner.ctx.global_step} steps",
      file=out or sys.stdout,
      flush=True,
    )


def _worker_gone(e, learner: Learner) -> RunError:
  """The one-line error of a multi-worker run whose peer is gone."""
  lines = [line.strip() for line in str(e.message).splitlines() if line.strip()] or [""]
  first = next((line for line in lines if "aborted" in line or "unhealthy" in line), lines[-1])
  interval = learner.ctx.interval.index if learner.ctx.interval else 0
  return RunError(
    f"multi-worker run: another worker is gone or did not answer within "
    f"{runtime.collective_timeout():.0f} s ({runtime.COLLECTIVE_TIMEOUT_ENV}) in interval "
    f"{interval}: {first[:300]}. Restart every worker; with the "
    f"workdir on storage all workers share, the run resumes from its latest checkpoint"
  )


def _names(start: resume.Start) -> dict[str, int]:
  """Name -> distribution id of the learner in a workdir (from its latest checkpoint)."""
  names = (start.state or {}).get("distribution_names") or {}
  return {name: int(i) for i, name in names.items()}


def _adopt(stream: streams.Stream, known: dict[str, int]) -> streams.Stream:
  """The stream with the learner's ids: a known name keeps its id; another distribution
  keeps its own id if the learner has not used it, else takes the next free one."""
  used = set(known.values())
  ids: dict[int, int] = {}
  for i in sorted(stream.distributions):
    name = stream.distributions[i].name
    if name in known:
      ids[i] = known[name]
    else:
      ids[i] = i if i not in used else max(used | set(ids.values())) + 1
      used.add(ids[i])
  distributions = {
    ids[i]: dataclasses.replace(d, id=ids[i]) for i, d in stream.distributions.items()
  }
  intervals = tuple(
    dataclasses.replace(x, distribution=distributions[ids[x.distribution.id]])
    for x in stream.intervals
  )
  return dataclasses.replace(stream, distributions=distributions, intervals=intervals)


def _add_earlier_tests(learner: Learner, workdir: str, start, shown) -> None:
  """Adds the test sets of the distributions seen in earlier invocations, where their
  data are still available (named datasets reload; folders only if still there)."""
  known = _names(start)
  have = set(learner.evaluated_ids)
  detect, split = learner.config.boundaries == "detect", learner.config.eval_split
  skipped = []
  for invocation in resume.read_invocations(workdir)[: start.invocation]:
    earlier = config_lib.Config.from_dict(invocation["config"])
    earlier = dataclasses.replace(earlier, data_dir=learner.config.data_dir or earlier.data_dir)
    if detect and earlier.dataset != learner.config.dataset:
      continue  # A task-free run is evaluated by truth ids: only the same labelled dataset's.
    try:
      stream = streams.build_stream(earlier)
    except sources.DataError as e:
      skipped.append(f"{earlier.dataset} ({e})")
      continue
    dists = stream.distributions.values()
    if detect:
      tests = {d.id: getattr(d, split) for d in dists if d.id not in have}
    else:
      tests = {
        known[d.name]: getattr(d, split)
        for d in dists
        if d.name in known and known[d.name] not in have
      }
    learner.add_tests(tests)
  if skipped:
    shown.message("evaluation skips the test sets of " + "; ".join(skipped))
