"""Lifelong metrics (method.md section 8) as standalone objects.

Numbers in, numbers out: these take arrays computed by the model's evaluation
helpers and know nothing of Keras. Conventions: -ELBO in nats per example,
lower is better; "forgetting" is positive when a distribution got worse.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np


def posterior_consistency(student_argmax: np.ndarray, teacher_argmax: np.ndarray) -> float:
  """Paper eq. 4: the fraction of examples on which argmax q_S(z_d|x) == argmax q_T(z_d|x).

  Args:
    student_argmax: int [N], the student's most probable category per example.
    teacher_argmax: int [N], the teacher's, on the same examples (examples of the
      distributions the teacher had seen).

  Returns:
    A fraction in [0, 1]; NaN for N = 0 (no teacher yet).
  """
  s, t = np.asarray(student_argmax), np.asarray(teacher_argmax)
  if s.shape != t.shape:
    raise ValueError(f"argmax shapes differ: {s.shape} vs {t.shape}")
  return float(np.mean(s == t)) if s.size else math.nan


def pooled_mean(sums: dict[int, float], counts: dict[int, int], ids: Sequence[int]) -> float:
  """Mean over the union of the distributions `ids` from per-distribution sums/counts."""
  n = sum(counts[i] for i in ids)
  return sum(sums[i] for i in ids) / n if n else math.nan


@dataclasses.dataclass
class ElboMatrix:
  """R[i][j]: test -ELBO of distribution j after interval i (NaN: not measured).

  Built row by row as intervals end. `learned[i]` is the distribution trained
  in interval i.
  """

  distribution_ids: list[int]
  rows: list[list[float]] = dataclasses.field(default_factory=list)
  learned: list[int] = dataclasses.field(default_factory=list)

  def add(self, learned: int, neg_elbo: dict[int, float]) -> None:
    self.learned.append(learned)
    self.rows.append([float(neg_elbo.get(j, math.nan)) for j in self.distribution_ids])

  @property
  def array(self) -> np.ndarray:
    return np.asarray(self.rows, dtype=np.float64).reshape(
      len(self.rows), len(self.distribution_ids)
    )

  def _col(self, j: int) -> int:
    return self.distribution_ids.index(j)

  def forgetting(self) -> dict[int, float]:
    """Per seen distribution j (not the last one learned): R[T][j] minus the best
    (lowest) -ELBO of j at any interval from its first training to T-1."""
    r, out = self.array, {}
    last = len(self.rows) - 1
    for j in dict.fromkeys(self.learned):
      first = self.learned.index(j)
      if first >= last:
        continue
      c = self._col(j)
      out[j] = float(r[last, c] - np.nanmin(r[first:last, c]))
    return out

  def backward_transfer(self) -> float:
    """Mean over seen distributions (not the last learned) of R[t_j][j] - R[T][j],
    t_j the last interval that trained j: positive when later learning helped."""
    r, last = self.array, len(self.rows) - 1
    deltas = []
    for j in dict.fromkeys(self.learned):
      t_j = max(i for i, d in enumerate(self.learned) if d == j)
      if t_j < last:
        deltas.append(r[t_j, self._col(j)] - r[last, self._col(j)])
    return float(np.mean(deltas)) if deltas else math.nan

  def to_dict(self) -> dict:
    return {
      "distribution_ids": self.distribution_ids,
      "learned": self.learned,
      "rows": [[None if math.isnan(v) else v for v in row] for row in self.rows],
    }


@dataclasses.dataclass
class RunningMean:
  """A weighted mean accumulated from (mean, weight) pairs."""

  total: float = 0.0
  weight: float = 0.0

  def add(self, mean: float | None, weight: float) -> None:
    if mean is None or not math.isfinite(mean) or weight <= 0:
      return
    self.total += mean * weight
    self.weight += weight

  @property
  def value(self) -> float:
    return self.total / self.weight if self.weight else math.nan
