"""A task-free learner's decision for a chunk or a segment of one: its statistics under the
learner's models, detection.decide on them, the Decision and its progress line (task_free.py).

The chunk is scored once (`scored`: the chunk and the current interval's held-out share
under the student; first on a few components, screening.py, which decides most unchanged
chunks *same* alone), for segmenting.cut and for its first segments: while the student is
the model that cut the chunk, a segment's scores are its rows of the chunk's. After a
hand-over inside the chunk the later segments are scored again, under the new student.
"""

from __future__ import annotations

import time

import numpy as np

from tf_lifelong.train import detection, gradual, neighbours, screening

Scored = tuple["np.ndarray | None", "np.ndarray | None", float, "dict | None"]
"""(the chunk's scores, the current interval's held-out scores or None, seconds taken, and
screening.screen's entries for a chunk it found unchanged: then the scores are None)."""


def seed(config, index: int) -> int:
  """The z_c noise of chunk `index`'s scores (and of its interval's held-out share's)."""
  return config.seed * 1_000_003 + index


def scored(task_free, index: int, images: np.ndarray) -> Scored | None:
  """The chunk's and the current interval's held-out scores under the current student;
  None before the first interval (no model yet). The current interval is the open one, or
  the one that ended an earlier bin/train part (`last`)."""
  student, current = task_free.learner.ctx.student, task_free.open or task_free.last
  if student is None:
    return None
  config = task_free.learner.config
  started, noise = time.monotonic(), seed(config, index)
  held_images = current.split("held").images if current is not None else None
  same = screening.screen(
    student, images, held_images, noise, config.shift_threshold, config.screen_mass
  )
  if same is not None:
    return None, None, time.monotonic() - started, same
  scores = detection.component_scores(student, images, noise)
  held = None
  if held_images is not None:
    held = detection.component_scores(student, held_images, noise)
  return scores, held, time.monotonic() - started, None


def decide(task_free, index, images, segment, truths, chunk: Scored | None) -> detection.Decision:
  """The decision for a segment's `images` (rows segment.start..end of chunk `index`).

  Args:
    task_free: the learner's TaskFree (its student, open / last interval, references).
    truths: (truth, truth_name) of the segment.
    chunk: the chunk's `scored` while the model that cut it is still the student (its
      rows are then not scored again), else None.
  """
  start = time.monotonic()
  learner, config = task_free.learner, task_free.learner.config
  student = learner.ctx.student
  fields = {
    "chunk": index,
    "truth": truths[0],
    "truth_name": truths[1] if truths[0] is not None else None,
    "start": segment.start,
    "end": segment.end,
    "cut_statistic": segment.statistic,
    "cut_threshold": segment.threshold,
  }
  if student is None:
    return detection.Decision(decision=detection.NEW, component=0, **fields)
  if chunk is not None and chunk[3] is not None:  # The screen found it unchanged, uncut.
    return detection.Decision(
      **fields,
      **chunk[3],
      decision=detection.SAME,
      component=chunk[3]["current"],
      threshold=config.shift_threshold,
      return_threshold=config.return_threshold,
      seconds=round(time.monotonic() - start + chunk[2], 4),
    )
  noise, current = seed(config, index), task_free.open or task_free.last
  held, spent = None, 0.0
  if chunk is not None:
    scores = chunk[0][segment.start : segment.end]
    if segment.start == 0:  # Nothing joined the interval since it was scored.
      held, spent = chunk[1], chunk[2]
  else:
    scores = detection.component_scores(student, images, noise)
  if held is None and current is not None:
    held = detection.component_scores(student, current.split("held").images, noise)
  out = _judge(task_free, images, scores, held, noise)
  return detection.Decision(
    **fields,
    **out,
    threshold=config.shift_threshold if current is not None else None,
    return_threshold=config.return_threshold,
    seconds=round(time.monotonic() - start + spent, 4),
  )


def _judge(task_free, images, scores, held, noise) -> dict:
  """detection.decide's entries for a segment (its scores, the interval's held-out ones)."""
  config, student = task_free.learner.config, task_free.learner.ctx.student
  # Returns are judged by the teacher (the model as the last interval ended, like the
  # references) where there is one: the student, a few chunks into its interval, has
  # not yet recovered its old distributions (the stability gap of continual learning).
  # The interval that ended an earlier bin/train part (`last`) is judged like an open one.
  judge = student
  if task_free.open is not None and getattr(student, "teacher", None) is not None:
    judge = student.teacher
  distances, lazy = {}, {}

  def judged():
    # The judge's scores and posterior, only for a segment that is not *same* (most are).
    if not lazy:
      lazy["scores"] = scores
      if judge is not student:
        lazy["scores"] = detection.component_scores(judge, images, noise)
      lazy["masses"] = detection.posterior_masses(judge, images)
    return lazy

  def returns(exclude):
    # Only the candidate the encoder votes for is judged (detection.choose_return):
    # its profile alone is computed, J decoder rows per sample instead of J^2.
    masses = judged()["masses"]
    refs = {j: r for j, r in task_free.references.items() if j != exclude and j < len(masses)}
    if refs:
      j = max(refs, key=lambda i: float(masses[i]))
      now = detection.sample_profile(judge, j, refs[j].components, config.seed)
      distances[j] = detection.return_distances(judged()["scores"], refs[j], now)
    return distances

  ratio = _nearest_sample_ratio(task_free, judge, images)

  out = detection.decide(
    scores,
    held,
    returns,
    lambda: judged()["masses"],
    shift_threshold=config.shift_threshold,
    return_threshold=config.return_threshold,
    return_mass=config.return_mass,
    ratio=ratio,
  )
  if out["decision"] == detection.NEW:
    out["component"] = int(student.num_categories)  # The one the hand-over adds.
  transition = task_free.open.transition if task_free.open is not None else None
  out = gradual.judge(transition, scores, held, out, config.shift_threshold)
  if out.get("best_return") is not None:
    out["return_distances"] = [round(float(v), 4) for v in distances[out["best_return"]]]
  return out


def _nearest_sample_ratio(task_free, judge, images):
  """choose_return's `ratio`: candidate j -> (r_j, its bound) (neighbours.py), or None."""
  config, student = task_free.learner.config, task_free.learner.ctx.student
  # The interval whose end made the judge: the teacher's is the one before the open one.
  # Without an interval to go by, the newest reference's.
  current = task_free.open or task_free.last
  if current is not None:
    judged_at = current.index - (1 if judge is not student else 0)
  else:
    judged_at = max((r.interval or 0 for r in task_free.references.values()), default=0)

  def ratio(j):
    # The chunk against j's fresh samples under the judge, relative to j's held-out share
    # against them under the model of the reference, and its bound.
    ref = task_free.references[j]
    if not neighbours.comparable(ref.neighbour) or not config.return_ratio:
      return None
    then = neighbours.Distances(**ref.neighbour)
    now = neighbours.measure(judge, j, images, config.seed, n=then.rows)
    age = max(judged_at - ref.interval, 0) if ref.interval is not None else 0
    bound = neighbours.bound(config.return_ratio, config.return_ratio_growth, age)
    return neighbours.ratio(now, then), bound

  return ratio


def describe(decision: detection.Decision, n: int | None = None) -> str:
  """The progress line of a decision (of a chunk of n rows: its rows if it is a segment)."""
  d = decision
  truth = f" (truth: {d.truth_name or d.truth})" if d.truth is not None else ""
  rows = f" rows {d.start}-{d.end}" if d.end is not None and (d.start, d.end) != (0, n) else ""
  if d.statistic is None and d.return_statistic is None:
    return f"chunk {d.chunk}{rows}: new -> component {d.component}{truth}"
  shift = f"z = {d.statistic:.1f} vs {d.threshold:g}" if d.statistic is not None else "no interval"
  near = (
    f", nearest-sample ratio {d.return_ratio:.3f} (vs {d.ratio_threshold:.3f})"
    if d.return_ratio is not None and d.ratio_threshold is not None
    else ""
  )
  ret = (
    f"; candidate {d.best_return}: posterior {d.return_mass:.2f}, profile "
    f"{d.return_statistic:.2f} sds (vs {d.return_threshold:g}){near}"
    if d.return_statistic is not None
    else ""
  )
  target = {"same": "same, component", "return": "return to component", "new": "new: component"}
  return f"chunk {d.chunk}{rows}: {shift}{ret} -> {target[d.decision]} {d.component}{truth}"
