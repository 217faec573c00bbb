"""Task-free streams: the learner finds the transitions itself (method.md section 9).

    learner = Learner(Config(boundaries="detect"), "runs/camera")
    for chunk in chunks:                      # [n, H, W(, C)] images, in time order, nothing else
      decision = learner.observe(chunk)       # same / return to j / new, before training on it
    learner.finish()                          # ends the last interval, exports

Each chunk is decided first (detection.py, with the current student and the
current interval's held-out share), then:

- *same*: the chunk joins the current interval's data;
- *return to j* / *new*: the current interval ends (trained with early
  stopping on all its chunks, as with given boundaries: its metrics row,
  checkpoint and component reference), then the next one starts with the
  hand-over the decision implies (J kept / J + 1) and this chunk.

Then the interval's student trains `chunk_steps` steps on the interval's data
so far (within its `max_steps_per_interval` budget), so that the next chunk
meets a model of the current distribution. Nothing of earlier intervals is
kept but a `detection.Reference` per component (a few numbers).

Files: `W/boundaries.jsonl` has one line per decision (`detection.Decision`:
chunk, decision, component, statistics, thresholds, seconds, truth when the
stream knows it); the open interval's chunks lie in `W/detect/` until it ends
(chunk_files.py), so that a killed run resumes (from the latest `chunk`,
`train` or `end` checkpoint, whose record holds this module's state) with the
same decisions.

A bin/train run keeps the interval that ends it (`last`, its chunks still in
W/detect/): `bin/train --continue` with the next part of the stream decides
its first chunk against that interval's held-out share, and *same* continues
it (a repeat hand-over to its component, its chunks carried over); the chunk
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
from tf_lifelong.train import chunk_files, detection, held_out, milestones, open_interval, training
from tf_lifelong.train.open_interval import OpenInterval

BOUNDARIES = "boundaries.jsonl"
_CHUNK_SALT = 17
"""Keys the held-out share of each chunk (with the chunk's number)."""
_CHUNK_SEEDS = 1_000_000
"""Chunk c trains from the random state of (seed, _CHUNK_SEEDS + c) (runtime.reseed)."""
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
    """A decision whose interval is not open yet (its chunk's number is `chunks`)."""
    self.truth_seen: list = []
    self.decisions: list[dict] = []
    self.last: OpenInterval | None = None
    """The interval that ended a bin/train part, kept (its chunks in W/detect/) so that
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
    """What a checkpoint record keeps (the chunks themselves are in W/detect/)."""
    return {
      "chunks": self.chunks,
      "open": self.open.meta() if self.open else None,
      "pending": self.pending.to_dict() if self.pending else None,
      "references": {str(j): r.to_dict() for j, r in self.references.items()},
      "truth_seen": self.truth_seen,
      "last": self.last.meta() if self.last else None,
    }

  def restore(self, state: dict, begun) -> None:
    """Restores from a checkpoint record's `detect` entry (and the chunk files)."""
    self.chunks = int(state["chunks"])
    self.pending = detection.Decision.from_dict(state["pending"]) if state["pending"] else None
    self.references = {
      int(j): detection.Reference.from_dict(r) for j, r in state["references"].items()
    }
    self.truth_seen = list(state["truth_seen"])
    self.open = open_interval.reopen(self.learner.workdir, state["open"])
    self.last = open_interval.reopen(self.learner.workdir, state.get("last"))
    if self.held_mode:
      self.learner.add_tests(held_out.read_all(self.learner.workdir))
    self.begun = begun
    path = os.path.join(self.learner.workdir, BOUNDARIES)
    if files.exists(path):
      keep = self.chunks + (1 if self.pending is not None else 0)
      lines = [json.loads(line) for line in files.read_text(path).splitlines() if line.strip()]
      self.decisions = [d for d in lines if d["chunk"] < keep]

  # ---------------------------------------------------------------- observe
  def observe(self, chunk, truth=None, truth_name=None, callbacks=()) -> detection.Decision:
    """Decides the chunk (same / return / new), acts on it, trains on it; returns the decision."""
    learner, config = self.learner, self.learner.config
    split, _, _ = inputs.as_split(chunk, "chunk", config.data_dir, config.download)
    images = split.images
    if len(images) < config.batch_size:
      raise inputs.DataError(
        f"chunk: {len(images)} images, fewer than batch_size ({config.batch_size})"
      )
    learner.check_shape(images.shape[1:])
    index = self.chunks
    truth = None if truth is None else int(truth)
    if self.pending is not None and self.pending.chunk == index:
      decision = self.pending  # Decided before the interruption.
    else:
      decision = self._decide(index, images, truth, truth_name)
      self._log(decision)
    seen_before = list(self.truth_seen)
    opened_here = self.open is not None and self.open.first_chunk == index
    if not opened_here and (self.open is None or decision.decision != detection.SAME):
      self.pending = decision
      if self.open is not None:
        self._close(callbacks, keep=False)
      self._start(decision, images, seen_before)
    self.pending = None
    if truth is not None and truth not in self.truth_seen:
      self.truth_seen.append(truth)
    self.open.decision_seconds += decision.seconds
    self._learn_chunk(index, images, truth)
    return decision

  def _decide(self, index, images, truth, truth_name) -> detection.Decision:
    start = time.monotonic()
    learner, config = self.learner, self.learner.config
    student = learner.ctx.student
    fields = {"chunk": index, "truth": truth, "truth_name": truth_name}
    if student is None:
      return detection.Decision(decision=detection.NEW, component=0, **fields)
    seed = config.seed * 1_000_003 + index
    scores = detection.component_scores(student, images, seed)

    # Returns are judged by the teacher (the model as the last interval ended, like the
    # references) where there is one: the student, a few chunks into its interval, has
    # not yet recovered its old distributions (the stability gap of continual learning).
    # The interval that ended an earlier bin/train part (`last`) is judged like an open one.
    current = self.open or self.last
    judge = student
    if self.open is not None and getattr(student, "teacher", None) is not None:
      judge = student.teacher
    judged = scores if judge is student else detection.component_scores(judge, images, seed)
    distances = {}
    masses = detection.posterior_masses(judge, images)

    def returns(exclude):
      # Only the candidate the encoder votes for is judged (detection.choose_return):
      # its profile alone is computed, J decoder rows per sample instead of J^2.
      refs = {j: r for j, r in self.references.items() if j != exclude and j < len(masses)}
      if refs:
        j = max(refs, key=lambda i: float(masses[i]))
        now = detection.sample_profile(judge, j, refs[j].components, config.seed)
        distances[j] = detection.return_distances(judged, refs[j], now)
      return distances

    held = None
    if current is not None:
      held = detection.component_scores(student, current.split("held").images, seed)
    out = detection.decide(
      scores,
      held,
      returns,
      masses,
      shift_threshold=config.shift_threshold,
      return_threshold=config.return_threshold,
      return_mass=config.return_mass,
    )
    if out["decision"] == detection.NEW:
      out["component"] = int(student.num_categories)  # The one the hand-over adds.
    if out.get("best_return") is not None:
      out["return_distances"] = [round(float(v), 4) for v in distances[out["best_return"]]]
    return detection.Decision(
      **fields,
      **out,
      threshold=config.shift_threshold if current is not None else None,
      return_threshold=config.return_threshold,
      seconds=round(time.monotonic() - start, 4),
    )

  def _log(self, decision: detection.Decision) -> None:
    learner = self.learner
    self.decisions.append(decision.to_dict())
    if learner.ctx.chief:
      artifacts.write_json_lines(os.path.join(learner.workdir, BOUNDARIES), self.decisions)
    if decision.decision != detection.SAME or decision.statistic is None:
      learner.progress.message(describe(decision))

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
      teacher_truths=seen_before,
    )
    if continues:
      self.open.carried = last.carried + last.chunks
      self.open.train, self.open.held = list(last.train), list(last.held)
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

  def _learn_chunk(self, index: int, images: np.ndarray, truth) -> None:
    """Adds the chunk to the open interval, trains on the interval's data, checkpoints."""
    learner, config, open_ = self.learner, self.learner.config, self.open
    kept, held = sources.holdout(len(images), config.validation_fraction, (_CHUNK_SALT, index))
    train, held = images[kept], images[held]
    if learner.ctx.chief:
      chunk_files.write(learner.workdir, index, train, held)
    open_.chunks.append(index)
    open_.truths.append(truth)
    open_.train.append(train)
    open_.held.append(held)
    budget = config.max_steps_per_interval - config.eval_every
    trained = open_.steps + config.chunk_steps <= budget
    if trained:
      started = time.monotonic()
      runtime.reseed(config.seed, _CHUNK_SEEDS + index)
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
    self.chunks = index + 1
    every, total = config.checkpoint_every, learner.ctx.global_step
    if every and trained and total // every > (total - config.chunk_steps) // every:
      # As often as --checkpoint_every steps: a resume from an earlier chunk redoes the
      # chunks after it, with the same decisions (each is a function of the weights).
      learner.checkpoint("chunk", self.begun.teacher_seen, chunk=index)
    milestones.reached("chunk", open_.index, index)

  def close(self, callbacks=()) -> dict | None:
    """Ends the open interval: early-stopped training on its chunks, its row; None if none.

    In a bin/train run (an invocation of the workdir: `learner.invocation` is set) the
    interval is kept as `last`, its chunks in W/detect/, so that `bin/train --continue`
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
      "chunks": len(open_.chunks),
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
    learner, config, open_ = self.learner, self.learner.config, self.open
    student = learner.ctx.student
    held = open_.split("held").images
    scores = detection.component_scores(student, held, config.seed)
    # The interval's own component (the new one, or the one it returned to), even where
    # another explains its data better: a reference stands for one distribution, and
    # an old component's must not be overwritten by a newcomer that it happens to fit.
    j = self.open.component
    self.references[j] = detection.make_reference(student, scores, j, config.seed)
    self.last = self.open if self._keep else None
    self.open = None


def describe(decision: detection.Decision) -> str:
  """The progress line of a decision."""
  d = decision
  truth = f" (truth: {d.truth_name or d.truth})" if d.truth is not None else ""
  if d.statistic is None and d.return_statistic is None:
    return f"chunk {d.chunk}: new -> component {d.component}{truth}"
  shift = f"z = {d.statistic:.1f} vs {d.threshold:g}" if d.statistic is not None else "no interval"
  ret = (
    f"; candidate {d.best_return}: posterior {d.return_mass:.2f}, profile "
    f"{d.return_statistic:.2f} sds (vs {d.return_threshold:g})"
    if d.return_statistic is not None
    else ""
  )
  target = {"same": "same, component", "return": "return to component", "new": "new: component"}
  return f"chunk {d.chunk}: {shift}{ret} -> {target[d.decision]} {d.component}{truth}"
