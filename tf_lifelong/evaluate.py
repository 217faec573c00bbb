"""Evaluates a student after an interval on the stream's test sets.

Every reported -ELBO uses a hard z_d (method.md section 3), in nats per
example. The test sets are only ever read here, after an interval's training
has ended: never for early stopping.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from tf_lifelong import metrics
from tf_lifelong.data import streams
from tf_lifelong.model import evaluation as model_eval

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
  return images.astype(np.float32) / 255.0


def _per_example(fn, images: np.ndarray) -> np.ndarray:
  out = [
    np.asarray(fn(tf.convert_to_tensor(images[i : i + _BATCH])))
    for i in range(0, len(images), _BATCH)
  ]
  return np.concatenate(out) if out else np.zeros([0])


class Evaluator:
  """Holds the stream's test images once; evaluates students on them."""

  def __init__(self, stream: streams.Stream, limit: int | None = None, seed: int = 0):
    self.ids = sorted(stream.distributions)
    self.images = {i: _float_images(stream.distributions[i].test, limit) for i in self.ids}
    self.seed = seed

  def assess(self, student, teacher_seen: Sequence[int]) -> Assessment:
    """Test -ELBO of every distribution, and consistency on `teacher_seen`'s.

    Args:
      student: the trained student (its teacher, if any, is `student.teacher`).
      teacher_seen: the distribution ids the teacher had seen.
    """
    neg_elbo, counts = {}, {}
    for i in self.ids:
      values = _per_example(lambda x: model_eval.neg_elbo(student, x), self.images[i])
      neg_elbo[i], counts[i] = float(np.mean(values)), len(values)
    return Assessment(neg_elbo, counts, self.consistency(student, teacher_seen))

  def consistency(self, student, teacher_seen: Sequence[int]) -> float:
    teacher = getattr(student, "teacher", None)
    if teacher is None or not teacher_seen:
      return math.nan
    images = np.concatenate([self.images[i] for i in teacher_seen])
    s = _per_example(lambda x: model_eval.posterior_argmax(student, x), images)
    t = _per_example(lambda x: model_eval.posterior_argmax(teacher, x), images)
    return metrics.posterior_consistency(s, t)
