"""Evaluates a student after an interval on the test sets it is given.

Every reported -ELBO uses a hard z_d (method.md section 3), in nats per
example. The test sets are only ever read here, after an interval's training
has ended: never for early stopping.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from tf_lifelong.data import streams, transforms
from tf_lifelong.evaluation import metrics
from tf_lifelong.model import batching, inference

_BATCH = 1000


@dataclasses.dataclass
class Assessment:
  """The test-set picture of a student after one interval."""

  neg_elbo: dict[int, float]
  """Mean test -ELBO per distribution id."""
  counts: dict[int, int]
  consistency: float
  """Posterior consistency with the student's teacher (NaN without a teacher)."""

  def pooled(self, ids: Sequence[int]) -> float:
    sums = {i: self.neg_elbo[i] * self.counts[i] for i in ids}
    return metrics.pooled_mean(sums, self.counts, ids)


def _float_images(split: streams.Split, limit: int | None) -> np.ndarray:
  images = split.images if limit is None else split.images[:limit]
  return transforms.unit_float(images)


def per_example(fn, images: np.ndarray) -> np.ndarray:
  """fn(batch) for batches of `_BATCH` images, concatenated: [N] (or [0] for none)."""
  return batching.batch_map(lambda x, _: fn(x), images, _BATCH)


def test_sets(stream: streams.Stream, split: str = "test") -> dict[int, streams.Split]:
  """The `split` (test or validation) of every distribution of a stream, by id."""
  return {i: getattr(d, split) for i, d in stream.distributions.items()}


class Evaluator:
  """Holds test images by distribution id; evaluates students on them."""

  def __init__(
    self, tests: dict[int, streams.Split] | None = None, limit: int | None = None, seed: int = 0
  ):
    """`tests`: test splits by distribution id (more can be added); `limit`: examples per id."""
    self.limit = limit
    self.images: dict[int, np.ndarray] = {}
    self.seed = seed
    self.add(tests or {})

  @property
  def ids(self) -> list[int]:
    """The distribution ids with test images, sorted."""
    return sorted(self.images)

  def add(self, tests: dict[int, streams.Split]) -> None:
    """Adds (or replaces) the test splits of some distribution ids; empty ones are skipped."""
    for i, split in tests.items():
      if len(split):
        self.images[int(i)] = _float_images(split, self.limit)

  def assess(self, student, teacher_seen: Sequence[int]) -> Assessment:
    """Test -ELBO of every distribution, and consistency on `teacher_seen`'s.

    Args:
      student: the trained student (its teacher, if any, is `student.teacher`).
      teacher_seen: the distribution ids the teacher had seen.
    """
    neg_elbo, counts = {}, {}
    for i in self.ids:
      values = per_example(lambda x: inference.neg_elbo(student, x), self.images[i])
      neg_elbo[i], counts[i] = float(np.mean(values)), len(values)
    return Assessment(neg_elbo, counts, self.consistency(student, teacher_seen))

  def consistency(self, student, teacher_seen: Sequence[int]) -> float:
    teacher = getattr(student, "teacher", None)
    seen = [i for i in teacher_seen if i in self.images]
    if teacher is None or not seen:
      return math.nan
    images = np.concatenate([self.images[i] for i in seen])
    s = per_example(lambda x: inference.posterior_argmax(student, x), images)
    t = per_example(lambda x: inference.posterior_argmax(teacher, x), images)
    return metrics.posterior_consistency(s, t)
