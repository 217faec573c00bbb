"""Gradual transitions: a mix that shifts from P to Q over several chunks gives one new
component, not one per step (issue #35 part 3; change_point.py's docstring has the rule and
its measurement on simulated scores).

A chunk of a transition is a mix (1 - pi) P + pi Q with pi rising over the chunks. The
shift test fires at nearly every step (each chunk's share of Q differs from the open
interval's), but what separates a step of the mix from a new distribution is support, not
level: the step holds nothing the interval has not seen, and its share of Q has not fallen.

1. `mark`: a segment decided *new* whose `outside_share` against the interval it leaves
   (the share of its rows beyond that interval's support, on the shift test's columns)
   lies in change_point.PARTIAL, and whose rows inside that support pass the shift test
   against the interval (they *are* the old distribution), is a partial mix: the interval
   it opens is a transition from the component it left (p) to the new one (q). The second
   condition tells a mix from a look-alike class, which overlaps the old support without
   being it (Shirt after T-shirt: outside share 0.12, but all of its rows shifted).
2. `judge`: in a transition, a segment that fails the shift test is *same* when nothing of
   it lies outside the interval's support (outside share <= change_point.OUTSIDE_MAX) and
   its `newer_share` (rows with s_q < s_p) is at least the interval's latest one, less
   0.05 (change_point.continues). A return to P has a share near 0; a new distribution R lies outside.
3. `after_training`: once a chunk has trained the interval's student, the newer share of
   its held-out rows under that student becomes the interval's latest one.

The transition is a dict in the open interval's record ({"from": p, "to": q, "share"}),
so that a resumed run goes on with it.
"""

from __future__ import annotations

import numpy as np

from tf_lifelong.train import change_point, detection


def _columns(scores: np.ndarray, k: int) -> np.ndarray:
  """The shift test's columns (detection.profile relative to k: s_k, KL_c, s_j - s_k)."""
  return detection.profile(scores, k, list(range(scores.shape[1] - 1)))


def judge(transition: dict | None, scores, held, out: dict, shift_threshold: float) -> dict:
  """What a segment's decision (`out`, detection.decide's) becomes: its outside share
  recorded when it changed, and whether it is a mix (`mix`: its rows inside the interval's
  support pass the shift test against the interval); *same* when it is a further step of
  the open transition."""
  k = out.get("current")
  if out["decision"] == detection.SAME or held is None or k is None:
    return out
  outside, rows = change_point.outside_share(_columns(scores, k), _columns(held, k))
  out = {**out, "outside_share": round(outside, 4)}
  if out["decision"] == detection.NEW and (~rows).sum() > 1:
    inside = detection.shift_statistic(scores[~rows], held, k)[0]
    out["mix"] = bool(inside <= shift_threshold)
  if transition is None or max(transition["from"], transition["to"]) >= scores.shape[1] - 1:
    return out
  share = change_point.newer_share(scores, transition["from"], transition["to"])
  out["newer_share"] = round(share, 4)
  latest = transition.get("share") or 0.0
  if change_point.continues(_columns(scores, k), _columns(held, k), share, latest):
    out.update(decision=detection.SAME, component=transition["to"], gradual=True)
  return out


def mark(interval, decision: detection.Decision) -> None:
  """Makes a newly opened interval a transition when its first segment was a partial mix."""
  lo, hi = change_point.PARTIAL
  share = decision.outside_share
  if decision.decision == detection.NEW and decision.mix and share is not None and lo < share < hi:
    interval.transition = {"from": decision.current, "to": decision.component, "share": None}


def after_training(interval, student, held_rows: np.ndarray | None, seed: int) -> None:
  """The transition's latest newer share: the chunk's held-out rows under the trained student."""
  transition = interval.transition
  if transition is None or held_rows is None or not len(held_rows):
    return
  scores = detection.component_scores(student, held_rows, seed)
  transition["share"] = round(
    change_point.newer_share(scores, transition["from"], transition["to"]), 4
  )
