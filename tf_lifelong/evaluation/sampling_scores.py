"""Does every component draw its own distribution? The per-interval sampling scores.

After each interval the learner (train/recording.py) decodes `n` samples per
one-hot z_d = j (z_c ~ N(0, I), `sampling_metrics.component_samples`) and adds
to its metrics row (docs/outputs.md):

- with a classifier (a stream whose distributions are known,
  classifier_cache.py) and the true distribution of each component:
  `sampling_own_share`, the mean over the components j whose truth the
  classifier knows of the share of j's samples classified as j's own
  distribution; `sampling_majority_own`, how many components' majority class is
  their own; `sampling_classes_covered`, how many distinct classes are the
  majority class of some component; per component (metrics.jsonl)
  `sampling_own_shares`, `sampling_majority`, `sampling_truth`;
- always (label-free): `self_consistency`, the mean over j of the share of
  j's samples that the model's own encoder, argmax_k q(z_d = k | x), sends back
  to j (per component: `self_consistency_per_component`); `real_on_component`,
  the share of the interval's real validation images whose argmax q(z_d | x) is
  the interval's component.

A model whose decoder ignores z_d draws the same images from every row (the
same distribution of classes and of posterior argmaxes p(c), q(k) in every
row): its own share, the mean over j of p(truth j), is at most 1 / J for
distinct truths, its self-consistency, the mean over j of q(j), at most 1 / J
(in expectation), every component has the same majority class. The pure functions below
take predicted classes and posterior argmaxes, testable by hand; `measure` does
the decoding, encoding and classifying around them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tf_lifelong.evaluation import sampling_metrics

COLUMNS = (
  "sampling_own_share",
  "sampling_majority_own",
  "sampling_classes_covered",
  "self_consistency",
  "real_on_component",
)
"""The metrics.csv columns this module adds (after the learner's own)."""
LISTS = (
  "sampling_own_shares",
  "sampling_majority",
  "sampling_truth",
  "self_consistency_per_component",
)
"""The per-component lists it adds to metrics.jsonl."""
BATCH = 500


# ------------------------------------------------------------- pure scoring
def own_shares(
  score: sampling_metrics.SamplingScore, truths: Sequence[int | None]
) -> list[float | None]:
  """Per component j, the share of its samples classified as truths[j] (None: unknown).

  A truth the classifier cannot predict (not in `score.class_ids`) is unknown too.
  """
  ids = list(score.class_ids)
  return [
    float(score.shares[j][ids.index(t)]) if t is not None and t in ids else None
    for j, t in enumerate(truths)
  ]


def classifier_columns(score: sampling_metrics.SamplingScore, truths: Sequence[int | None]) -> dict:
  """The classifier's columns and lists of a row from the score and each component's truth."""
  if len(truths) != len(score.purity):
    raise ValueError(f"{len(truths)} truths for {len(score.purity)} components")
  own = own_shares(score, truths)
  known = [j for j, v in enumerate(own) if v is not None]
  return {
    "sampling_own_share": float(np.mean([own[j] for j in known])) if known else math.nan,
    "sampling_majority_own": sum(score.majority[j] == truths[j] for j in known) if known else None,
    "sampling_classes_covered": score.distinct_majority_classes,
    "sampling_own_shares": own,
    "sampling_majority": list(score.majority),
    "sampling_truth": [None if t is None else int(t) for t in truths],
  }


def self_consistency(assigned: np.ndarray) -> tuple[float, list[float]]:
  """(mean over j, per j) of the share of row j of `assigned` equal to j.

  Args:
    assigned: int [J, N], argmax q(z_d | x) of sample n of component j.
  """
  assigned = np.asarray(assigned)
  if assigned.ndim != 2 or assigned.shape[1] == 0:
    raise ValueError(f"assigned must be [J, N] with N >= 1, got {assigned.shape}")
  per = [float(np.mean(row == j)) for j, row in enumerate(assigned)]
  return float(np.mean(per)), per


def real_on_component(assigned: np.ndarray, component: int | None) -> float:
  """The share of `assigned` (argmax q(z_d | x) of real images) equal to `component`
  (NaN without a component or images)."""
  assigned = np.asarray(assigned).reshape(-1)
  if component is None or assigned.size == 0:
    return math.nan
  return float(np.mean(assigned == component))


def empty_columns() -> dict:
  """The classifier's columns where there is no classifier (no truth)."""
  return {
    "sampling_own_share": math.nan,
    "sampling_majority_own": None,
    "sampling_classes_covered": None,
    "sampling_own_shares": None,
    "sampling_majority": None,
    "sampling_truth": None,
  }


# ----------------------------------------------------------- on a model
def posterior_argmax(student, images: np.ndarray) -> np.ndarray:
  """argmax_k q(z_d = k | x), int [N], of float images in [0, 1], in batches."""
  from tf_lifelong.model import batching, inference  # noqa: PLC0415

  if len(images) == 0:
    return np.zeros([0], np.int64)
  out = batching.batch_map(
    lambda x, _: np.asarray(inference.posterior_argmax(student, x)), images, BATCH
  )
  return np.asarray(out).astype(np.int64)


def measure(
  student,
  n: int,
  *,
  truths: Sequence[int | None] | None = None,
  classifier: sampling_metrics.Classifier | None = None,
  real: np.ndarray | None = None,
  component: int | None = None,
  seed: int = 0,
) -> dict:
  """The sampling columns of a row (COLUMNS and LISTS).

  Args:
    student: a LifelongVAE (`sample`, `encoder`, `num_categories`).
    n: samples per component (component j uses seed + j).
    truths: the true distribution id of each component (None entries: unknown).
    classifier: predicts distribution ids; None: the classifier's columns are empty.
    real: the interval's real validation images, float in [0, 1].
    component: the interval's component (None: unknown, `real_on_component` NaN).
  """
  samples = sampling_metrics.component_samples(student, n, seed)
  j = samples.shape[0]
  flat = samples.reshape(j * n, *samples.shape[2:])
  mean, per = self_consistency(posterior_argmax(student, flat).reshape(j, n))
  row = empty_columns()
  if classifier is not None and truths is not None:
    predictions = classifier.predict(flat).reshape(j, n)
    score = sampling_metrics.sampling_score(predictions, classifier.class_ids)
    row.update(classifier_columns(score, truths))
  real = np.zeros([0, *flat.shape[1:]], np.float32) if real is None else real
  row["self_consistency"] = mean
  row["self_consistency_per_component"] = per
  row["real_on_component"] = real_on_component(posterior_argmax(student, real), component)
  return row
