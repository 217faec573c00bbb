"""Where a chunk is cut before it is decided (issue #35 part 3; task_free.py).

A chunk may hold a change: the end of one distribution and the start of the next. Decided
whole, its statistics are a mix of both, and the learner either keeps the new images in
the old interval or opens a component for the mix, and then another for the pure new
distribution in the next chunk (the spurious component). So before a chunk is decided:

1. The chunk is scored once under the current student (`detection.component_scores`),
   and so is the open interval's held-out share (the reference; none when no interval is
   open: then the chunk is scanned alone).
2. `cut` turns both into per-example profiles relative to k, the component that explains
   the reference best (`detection.profile`: s_k, KL_c and s_j - s_k for every other
   component j: the columns of the shift test) and asks `change_point.locate` where the
   chunk changes: a rank scan with a false-alarm rate of `change_point.FALSE_ALARM` per
   scan and `MIN_SEGMENT` rows at least on each side of a cut.
3. The learner decides the segments in order (task_free.py): the first against the open
   interval, each later one against the interval open after the one before it (after a
   hand-over: under the new student, against the new interval's held-out share, which
   then holds the segment before it). Training (`--chunk_steps`) follows once per chunk,
   on the interval open after its last segment.

The cut points are fixed once per chunk, by the model that scored it: a run killed
between two segments of a chunk resumes with the cut points of its checkpoint record
(task_free.py's state `cuts`), never locating again under the model of after the
hand-over. Each segment's `start` and `end` rows are in its decision (boundaries.jsonl
has a line per segment), and the scan's statistic and threshold in the decision of the
segment that starts at the cut (`cut_statistic`, `cut_threshold`).

Not located: a change in the run's first chunk (no model scores it yet; it is decided
whole, new) and a change within `MIN_SEGMENT` rows of a chunk's end that the scan does
not see (the next chunk then starts with it). A chunk of fewer than 2 MIN_SEGMENT rows is
never cut.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from tf_lifelong.train import change_point, detection

MIN_SEGMENT = change_point.MIN_SEGMENT
"""The fewest rows on either side of a cut (100): a change is placed within this many rows
(change_point's docstring, "The edges"). A module constant, not a flag: below it the scan
loses power and a segment's own statistics (its mean profile) are too noisy to decide."""


CUT_MARGIN = 2.0
"""How many times --shift_threshold the two sides of a cut must differ by. The cut is where
the sides differ most, so their shift statistic is inflated by the choice (and by the J + 1
columns it takes the largest of): with the margin 1, rotated MNIST (default settings, seed 0,
365 chunks, J up to 94) had 158 cuts, 25 of them inside one distribution whose second
segments then failed the shift test at z = 5.0-8.2 and opened spurious components (all 25
of the run's false shifts); changes at chunk starts had z >= 19.8 (class streams) and
>= 14.7 (rotated MNIST), 1s to 7s far more. With the margin, 30 intervals of rotated MNIST
(156 chunks) had no cut and no false shift (docs/results, "Issue #35's streams")."""


@dataclasses.dataclass(frozen=True)
class Segment:
  """Rows [start, end) of a chunk, decided on their own; the scan's M and critical value at
  `start` (None for the chunk's first segment)."""

  start: int
  end: int
  statistic: float | None = None
  threshold: float | None = None

  def to_list(self) -> list:
    return [self.start, self.end, self.statistic, self.threshold]

  @classmethod
  def from_list(cls, values) -> Segment:
    return cls(int(values[0]), int(values[1]), *values[2:])


def whole(n: int) -> list[Segment]:
  """The chunk as one segment."""
  return [Segment(0, n)]


def cut(
  chunk_scores: np.ndarray, held_scores: np.ndarray | None, shift_threshold: float
) -> list[Segment]:
  """The segments of a chunk (module docstring, step 2), in time order.

  A cut the rank scan finds is kept only where the segments on its two sides also differ
  by the learner's own shift test, CUT_MARGIN times over (`detection.shift_statistic` >
  CUT_MARGIN * shift_threshold): the scan sees any difference in law, also a drift of
  style inside one class (real MNIST: 2 cuts in 5 chunks of one digit at a 1% false-alarm
  rate), which is no change of distribution for the learner, and a segment decided alone
  is noisier than its chunk.

  Args:
    chunk_scores: the chunk's `detection.component_scores` under the current student,
      [n, J + 1], rows in time order.
    held_scores: the same of the open interval's held-out share, [m, J + 1], or None
      (no interval open).
    shift_threshold: the learner's --shift_threshold.
  """
  n, components = len(chunk_scores), list(range(chunk_scores.shape[1] - 1))
  if n < 2 * MIN_SEGMENT:
    return whole(n)
  reference = held_scores if held_scores is not None and len(held_scores) else None
  k = detection.current_component(chunk_scores if reference is None else reference)
  values = detection.profile(chunk_scores, k, components)
  ref = None if reference is None else detection.profile(reference, k, components)
  split = change_point.locate(values, ref, min_segment=MIN_SEGMENT)
  if split is None:
    return whole(n)
  at = {
    t: (round(m, 3), round(b, 3))
    for t, m, b in zip(split.points, split.statistics, split.thresholds)
  }
  kept = [Segment(a, b, *at.get(a, (None, None))) for a, b in change_point.bounds(n, split)]
  return _distinct(kept, chunk_scores, k, CUT_MARGIN * shift_threshold)


def _distinct(segments: list[Segment], scores: np.ndarray, k: int, threshold: float):
  """The segments with each cut between two that the shift test cannot tell apart undone."""
  out = [segments[0]]
  for seg in segments[1:]:
    before, after = scores[out[-1].start : out[-1].end], scores[seg.start : seg.end]
    if detection.shift_statistic(after, before, k)[0] > threshold:
      out.append(seg)
    else:  # The same distribution on both sides: one segment.
      out[-1] = dataclasses.replace(out[-1], end=seg.end)
  return out


def truth_of(truth, start: int, end: int) -> int | None:
  """A segment's true distribution: `truth` itself (one id for the chunk, or None), or
  the most frequent id of its rows when `truth` holds one per row."""
  if truth is None or np.ndim(truth) == 0:
    return None if truth is None else int(truth)
  counts = collections.Counter(int(t) for t in np.asarray(truth)[start:end])
  return counts.most_common(1)[0][0] if counts else None


def holdout_key(chunk: int, segment: Segment, n: int) -> tuple[int, ...]:
  """What keys a segment's held-out share (with task_free's salt): the chunk's number for a
  whole chunk (as before chunks were cut), the chunk's number and the start row otherwise."""
  return (chunk,) if (segment.start, segment.end) == (0, n) else (chunk, segment.start)


def describe_cut(chunk: int, segments: list[Segment]) -> str:
  """The progress line of a chunk that was cut."""
  cuts = ", ".join(
    f"{s.start} (rank scan {s.statistic:.1f} vs {s.threshold:.1f})"
    for s in segments[1:]
    if s.statistic is not None
  )
  return f"chunk {chunk}: a change inside, cut at row {cuts}; {len(segments)} segments"
