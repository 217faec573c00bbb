"""Task-free streams: the learner finds the transitions itself (method.md section 9).

    learner = Learner(Config(boundaries="detect"), "runs/camera")
    for chunk in chunks:                      # [n, H, W(, C)] images, in time order, nothing else
      decision = learner.observe(chunk)       # same / return to j / new, before training on it
    learner.finish()                          # ends the last interval, exports

A chunk that changes inside is first cut where it changes (segmenting.py: the
chunk and the interval's held-out share scored once, change_point.locate on
their per-example profiles); a chunk without a change is one segment. Each
segment is decided in order (detection.py, with the current student and the
current interval's held-out share), then:

- *same*: the segment joins the current interval's data;
- *return to j* / *new*: the current interval ends (trained with early
  stopping on all its data, as with given boundaries: its metrics row,
  checkpoint and component reference), then the next one starts with the
  hand-over the decision implies (J kept / J + 1) and this segment; the
  chunk's later segments are scored under the new student.

Then the student of the interval open after the chunk's last segment trains
`chunk_steps` steps on that interval's data so far (within its
`max_steps_per_interval` budget), so that the next chunk meets a model of the
current distribution. Nothing of earlier intervals is
kept but a `detection.Reference` per component (a few numbers).

Files: `W/boundaries.jsonl` has one line per decision (`detection.Decision`:
chunk, its rows `start` and `end`, decision, component, statistics, thresholds,
seconds, truth when the stream knows it). The open interval keeps at most
`--interval_buffer` of its examples, a uniform reservoir sample of its segments
(open_interval.py), snapshotted in `W/detect/` with each checkpoint until it ends,
so that memory and disk stay flat over an endless stretch and a killed run resumes
(from the latest `start`, `chunk`, `train` or `end` checkpoint, whose record
holds this module's state: with a chunk under way, its cut points and the rows
already decided) with the same decisions and the same cut points.

A bin/train run keeps the interval that ends it (`last`, its snapshot still in
W/detect/): `bin/train --continue` with the next part of the stream decides
its first chunk against that interval's held-out share, and *same* continues
it (a repeat hand-over to its component, its reservoirs carried over); the chunk
numbers and the references go on. Without test sets (an unlabelled stream, a
learner fed from Python) each component is evaluated on held-out images of its
first interval (held_out.py).
"""

from __future__ import annotations

import collections
import json
import os
import time

import numpy as np

from tf_lifelong import runtime
from tf_lifelong.data import inputs, sources, streams
from tf_lifelong.monitor import timeline
from tf_lifelong.state import artifacts, files
from tf_lifelong.train import (
  deciding,
  detection,
  gradual,
  held_out,
  milestones,
  open_interval,
  segmenting,
  training,
)
from tf_lifelong.train.open_interval import OpenInterval
from tf_lifelong.train.segmenting import Segment

BOUNDARIES = "boundaries.jsonl"
_CHUNK_SALT = 17
"""Keys the held-out share of each chunk (with the chunk's number)."""
_CHUNK_SEEDS = 1_000_000
"""Chunk c's batches are in an order of (seed, _CHUNK_SEEDS + c) alone (training.train_steps:
no reseed, which would clear TensorFlow's kernel caches and slow the next steps ~1 s)."""
_CLOSE_SEEDS = 2_000_000
"""Interval i's closing training starts from the random state of (seed, _CLOSE_SEEDS + i)."""


class TaskFree:
  """The learner's task-free state and its `observe` (see the module docstring)."""

  def __init__(self, learner):
    self.learner = learner
    self.open: OpenInterval | None = None
    self.begun = None
    """The open interval's context.Begun (teacher ids, resumed training state)."""
    self.chunks = 0
    """Chunks decided and learned so far (the next chunk's number)."""
    self.references: dict[int, detection.Reference] = {}
    self.pending: detection.Decision | None = None
    """A decision whose interval is not open yet (its chunk's number is `chunks`, its
    `start` is `offset`)."""
    self.cuts: list[Segment] | None = None
    """The segments of chunk number `chunks` while it is under way (None between chunks)."""
    self.offset = 0
    """The rows of chunk number `chunks` that have joined an interval (their segments done)."""
    self.truth_seen: list = []
    self.decisions: list[dict] = []
    self.last: OpenInterval | None = None
    """The interval that ended a bin/train part, kept (its snapshot in W/detect/) so that
    the next part's first chunk may continue it: decided *same* against its held-out
    share (see `close`)."""
    self._held_mode: bool | None = None
    self._keep = False

  @property
  def held_mode(self) -> bool:
    """No test sets were given (an unlabelled stream, a learner fed from Python): each
    component is evaluated on its held-out images (held_out.py). Fixed at first use."""
    if self._held_mode is None:
      self._held_mode = not self.learner.evaluated_ids
    return self._held_mode

  # ---------------------------------------------------------------- state
  def state(self) -> dict:
    """What a checkpoint record keeps (the open interval's data are in its snapshot)."""
    return {
      "chunks": self.chunks,
      "offset": self.offset,
      "cuts": [c.to_list() for c in self.cuts] if self.cuts else None,
      "open": self.open.meta() if self.open else None,
      "pending": self.pending.to_dict() if self.pending else None,
      "references": {str(j): r.to_dict() for j, r in self.references.items()},
      "truth_seen": self.truth_seen,
      "last": self.last.meta() if self.last else None,
    }

  def restore(self, state: dict, begun) -> None:
    """Restores from a checkpoint record's `detect` entry (and the chunk files)."""
    self.chunks, self.offset = int(state["chunks"]), int(state.get("offset", 0))
    self.cuts = [Segment.from_list(c) for c in state["cuts"]] if state.get("cuts") else None
    self.pending = detection.Decision.from_dict(state["pending"]) if state["pending"] else None
    self.references = {
      int(j): detection.Reference.from_dict(r) for j, r in state["references"].items()
    }
    self.truth_seen = list(state["truth_seen"])
    workdir, config = self.learner.workdir, self.learner.config
    self.open, self.last = (
      open_interval.reopen(workdir, state.get(k), config) for k in ("open", "last")
    )
    if self.held_mode:
      self.learner.add_tests(held_out.read_all(self.learner.workdir))
    self.begun = begun
    path = os.path.join(self.learner.workdir, BOUNDARIES)
    if files.exists(path):
      keep = (self.chunks, self.offset + (1 if self.pending is not None else 0))
      lines = [json.loads(line) for line in files.read_text(path).splitlines() if line.strip()]
      self.decisions = [d for d in lines if (d["chunk"], d.get("start") or 0) < keep]

  # ---------------------------------------------------------------- observe
  def observe(self, chunk, truth=None, truth_name=None, callbacks=()) -> detection.Decision:
    """Cuts the chunk where it changes, decides each segment (same / return / new) and acts
    on it, trains on the interval then open; returns the last segment's decision.

    `truth`: one id for the chunk, or one per image (each segment's is then its rows' most
    frequent id); only written down, never used."""
    learner, config = self.learner, self.learner.config
    split, _, _ = inputs.as_split(chunk, "chunk", config.data_dir, config.download)
    images = split.images
    if len(images) < config.batch_size:
      raise inputs.DataError(
        f"chunk: {len(images)} images, fewer than batch_size ({config.batch_size})"
      )
    if truth is not None and np.ndim(truth) and len(truth) != len(images):
      raise inputs.DataError(f"chunk: {len(truth)} truth ids for {len(images)} images")
    learner.check_shape(images.shape[1:])
    index, scored, decision = self.chunks, None, None
    if self.cuts is None and self.pending is not None:  # A record from before chunks were cut.
      self.cuts = segmenting.whole(len(images))
    if self.cuts is None:  # Not resumed inside this chunk: cut it under the current model.
      scored = deciding.scored(self, index, images)
      self.cuts = self._cut(index, len(images), scored)
    if self.cuts[-1].end != len(images):
      raise inputs.DataError(
        f"chunk {index}: {len(images)} images, but the run stopped inside this chunk when it "
        f"had {self.cuts[-1].end}; observe the same chunk again"
      )
    for segment in self.cuts:
      if segment.end <= self.offset:
        continue  # It joined its interval before the interruption.
      decision = self._segment(index, images, segment, truth, truth_name, scored, callbacks)
      if (self.open.first_chunk, self.open.first_start) == (index, segment.start):
        scored = None  # Handed over: the later segments are scored under the new student.
    self._learn_chunk(index)
    return decision or detection.Decision.from_dict(self.decisions[-1])

  def _cut(self, index: int, n: int, scored) -> list[Segment]:
    if scored is None or scored[0] is None:  # No model yet, or screened: unchanged, uncut.
      return segmenting.whole(n)
    segments = segmenting.cut(scored[0], scored[1], self.learner.config.shift_threshold)
    if len(segments) > 1:
      self.learner.progress.message(segmenting.describe_cut(index, segments))
    return segments

  def _segment(self, index, images, segment, truth, truth_name, scored, callbacks):
    """Decides one segment of the chunk (the whole chunk when it was not cut), acts on the
    decision and adds the segment to the interval then open."""
    rows, whole = images[segment.start : segment.end], segmenting.truth_of(truth, 0, len(images))
    truth = segmenting.truth_of(truth, segment.start, segment.end)
    truth_name = truth_name if truth == whole else None  # A name given is the chunk's.
    pending = self.pending
    if pending is not None and (pending.chunk, pending.start) == (index, segment.start):
      decision = pending  # Decided before the interruption.
    else:
      decision = deciding.decide(self, index, rows, segment, (truth, truth_name), scored)
      self._log(decision, len(images))
    seen_before = list(self.truth_seen)
    open_ = self.open
    opened_here = open_ is not None and (open_.first_chunk, open_.first_start) == (
      index,
      segment.start,
    )
    if not opened_here and (open_ is None or decision.decision != detection.SAME):
      self.pending = decision
      if open_ is not None:
        self._close(callbacks, keep=False)
      self._start(decision, rows, seen_before)
    self.pending = None
    if truth is not None and truth not in self.truth_seen:
      self.truth_seen.append(truth)
    self.open.decision_seconds += decision.seconds
    self._join(index, len(images), segment, rows, truth)
    return decision

  def _log(self, decision: detection.Decision, n: int) -> None:
    learner = self.learner
    self.decisions.append(decision.to_dict())
    if learner.ctx.chief:
      artifacts.write_json_lines(os.path.join(learner.workdir, BOUNDARIES), self.decisions)
    if decision.decision != detection.SAME or decision.statistic is None:
      learner.progress.message(deciding.describe(decision, n))

  # ------------------------------------------------------------ intervals
  def _start(self, decision: detection.Decision, images: np.ndarray, seen_before: list) -> None:
    """Opens the interval that `decision` starts with `images` (hand-over; start checkpoint).

    *same* with no open interval continues `last` (the interval that ended an earlier
    bin/train part): a repeat hand-over to its component, its chunks carried over."""
    learner = self.learner
    ctx = learner.ctx
    index = len(ctx.rows)
    last, self.last = self.last, None
    continues = decision.decision == detection.SAME and last is not None
    if continues:
      ident, is_new, component = last.ident, False, last.component
    elif decision.decision == detection.RETURN:
      ident, is_new, component = ctx.seen[decision.component], False, decision.component
    else:
      ident, is_new, component = max([*ctx.names, -1]) + 1, True, decision.component
    label = ctx.names.get(ident) or f"component {len(ctx.seen)}"
    self.open = OpenInterval(
      index=index,
      ident=ident,
      component=component,
      decision=decision.decision,
      first_chunk=decision.chunk,
      first_start=decision.start,
      teacher_truths=seen_before,
    )
    if continues:
      self.open.train, self.open.held = last.train.copy(), last.held.copy()
      self.open.carried = last.files  # An older workdir's chunk files go when this one ends.
    else:
      config = learner.config
      self.open.make_buffers(config.interval_buffer, config.validation_fraction, config.seed)
      gradual.mark(self.open, decision)
    split = sources.Split(images, np.zeros(len(images), np.int64))
    interval = streams.Interval(
      index, streams.Distribution(ident, label, split, split, None), is_new
    )
    self.begun = learner.begin_interval(interval, ident, label)
    if last is not None and not continues and ctx.chief:  # The start checkpoint has no `last`.
      open_interval.remove_files(learner.workdir, last)

  def _distribution(self, label: str) -> streams.Distribution:
    """The open interval's data as a Distribution: its chunks' train and held-out shares."""
    return streams.Distribution(
      self.open.ident, label, self.open.split("train"), self.open.split("held"), None
    )

  def _join(self, index: int, n: int, segment: Segment, rows: np.ndarray, truth) -> None:
    """Adds a segment of chunk `index` (n rows) to the open interval: its training and
    held-out shares join the interval's reservoirs (open_interval.py)."""
    learner, open_ = self.learner, self.open
    key = (_CHUNK_SALT, *segmenting.holdout_key(index, segment, n))
    kept, held = sources.holdout(len(rows), learner.config.validation_fraction, key)
    train, held = rows[kept], rows[held]
    open_.add((index, segment.start), train, held)
    open_.chunks.append(index)
    open_.starts.append(segment.start)
    open_.truths.append(truth)
    self.offset = segment.end

  def _learn_chunk(self, index: int) -> None:
    """Trains the open interval's student on its data once the chunk's segments have
    joined their intervals; checkpoints."""
    learner, config, open_ = self.learner, self.learner.config, self.open
    budget = config.max_steps_per_interval - config.eval_every
    trained = open_.steps + config.chunk_steps <= budget
    if trained:
      started = time.monotonic()
      try:
        training.train_steps(
          learner.ctx.student,
          open_.split("train"),
          config.chunk_steps,
          config,
          seed=config.seed * 100003 + _CHUNK_SEEDS + index,
        )
      except training.NonFiniteLossError as e:
        raise learner.non_finite_error(open_.steps + e.step, e.what) from None
      open_.steps += config.chunk_steps
      open_.chunk_train_seconds += time.monotonic() - started
      learner.ctx.global_step += config.chunk_steps
    gradual.after_training(open_, learner.ctx.student, open_.latest, deciding.seed(config, index))
    self.chunks, self.offset, self.cuts = index + 1, 0, None
    every, total = config.checkpoint_every, learner.ctx.global_step
    if every and trained and total // every > (total - config.chunk_steps) // every:
      # As often as --checkpoint_every steps: a resume from an earlier chunk redoes the
      # chunks after it, with the same decisions (each is a function of the weights).
      learner.checkpoint("chunk", self.begun.teacher_seen, chunk=index)
    milestones.reached("chunk", open_.index, index)

  def close(self, callbacks=()) -> dict | None:
    """Ends the open interval: early-stopped training on its chunks, its row; None if none.

    In a bin/train run (an invocation of the workdir: `learner.invocation` is set) the
    interval is kept as `last`, its snapshot in W/detect/, so that `bin/train --continue`
    with the next part of the stream may go on with it (docs/task_free.md)."""
    return self._close(callbacks, keep=self.learner.invocation is not None)

  def _close(self, callbacks, keep: bool) -> dict | None:
    learner, config, open_ = self.learner, self.learner.config, self.open
    if open_ is None:
      return None
    ctx = learner.ctx
    start = time.monotonic()
    label = ctx.names.get(open_.ident) or f"distribution {open_.ident}"
    interval = streams.Interval(open_.index, self._distribution(label), open_.decision == "new")
    ctx.interval = interval
    known = [t for t in open_.truths if t is not None]
    truth = collections.Counter(known).most_common(1)[0][0] if known else None
    extra = {
      "first_chunk": open_.first_chunk,
      "last_chunk": open_.chunks[-1],
      "chunks": open_.chunk_count,
      "decision": open_.decision,
      "truth": truth,
      "chunk_steps": open_.steps,
      "chunk_train_seconds": round(open_.chunk_train_seconds, 2),
      "decision_seconds": round(open_.decision_seconds, 2),
    }
    by_truth = bool(known) and not self.held_mode
    if self.held_mode and open_.ident not in learner.evaluated_ids:
      held_out.adopt(learner, open_.ident, open_.split("held").images)
    ctx.seen_truth = list(self.truth_seen) if by_truth else None
    self._keep = keep
    budget = max(config.eval_every, config.max_steps_per_interval - open_.steps)
    runtime.reseed(config.seed, _CLOSE_SEEDS + open_.index)
    row = learner.complete_interval(
      interval,
      open_.ident,
      label,
      self.begun,
      start,
      callbacks=callbacks,
      budget=budget,
      extra=extra,
      on_trained=self._update_references,
      eval_teacher=list(open_.teacher_truths) if by_truth else None,
    )
    ctx.seen_truth = None
    if ctx.chief:  # W/detection_timeline.png and its TensorBoard image, as each interval ends
      timeline.record(
        learner.workdir,
        learner._writer,
        self.decisions,
        open_.index,
        return_mass=config.return_mass,
      )
    if not keep and ctx.chief:
      open_interval.remove_files(learner.workdir, open_)
    return row

  def _update_references(self) -> None:
    """After the interval's training, before its end checkpoint: the component references."""
    seed, open_, student = self.learner.config.seed, self.open, self.learner.ctx.student
    held = open_.split("held").images
    scores = detection.component_scores(student, held, seed)
    # The interval's own component (new, or returned to), even where another explains its
    # data better: a reference stands for one distribution, not for a newcomer it fits.
    j, at = open_.component, open_.index
    self.references[j] = detection.make_reference(
      student, scores, j, seed, images=held, interval=at
    )
    self.last = self.open if self._keep else None
    self.open = None
