"""End-of-run extras of one lifelong run: a hook for `lifelong.run`.

After the stream's last interval `FinalExtras` measures the final student:

- IWAE log-likelihood (K = `iwae_k`) on the full test set (every distribution
  of the stream, at most `iwae_examples` images in all, split evenly);
- consistent sampling (`sampling_metrics.consistent_sampling`) with the
  experiment's classifier;
- pictures in `workdir/extras/`: `reconstructions.png` (pairs of rows: test
  images of each seen distribution, at most 10, and their reconstructions) and, for F = 2,
  `interpolation-zd<j>.png` (z_c over [-3, 3]^2 for each one-hot z_d = j).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable

import numpy as np

from tf_lifelong.data import transforms
from tf_lifelong.evaluation import sampling_metrics
from tf_lifelong.monitor import summaries

EXTRAS_DIR = "extras"
MAX_RECONSTRUCTED = 10
"""Reconstructions show at most this many seen distributions (the first ones)."""


@dataclasses.dataclass(frozen=True)
class ExtrasOptions:
  """How much work the end-of-run metrics do."""

  iwae_k: int = 100
  """Importance samples of the IWAE bound."""
  iwae_examples: int | None = None
  """Cap on the test images of the IWAE bound (None: the whole test set)."""
  sampling_n: int = 100
  """Decoded samples per one-hot z_d for consistent sampling."""
  interpolation_points: int = 10
  """Grid points per z_c axis of the interpolation pictures (F = 2)."""
  classifier_epochs: int = 3
  classifier_max_per_class: int | None = 2000
  """Training examples per distribution of the sampling classifier (None: all)."""


def full_test_images(stream, limit: int | None) -> np.ndarray:
  """The test images of every distribution of `stream` in [0, 1], at most `limit` in all."""
  ids = sorted(stream.distributions)
  per = None if limit is None else max(1, math.ceil(limit / len(ids)))
  images = [stream.distributions[i].test.images[:per] for i in ids]
  out = np.concatenate(images)[:limit]
  return transforms.unit_float(out)


def compute_extras(
  student,
  stream,
  seen,
  workdir: str,
  options: ExtrasOptions,
  classifier: sampling_metrics.Classifier | None,
  seed: int = 0,
) -> dict:
  """Measures the final `student`; writes its pictures under `workdir/extras/`.

  Returns:
    A JSON-able dict: iwae_log_likelihood, iwae_k, iwae_examples,
    consistent_sampling (SamplingScore.to_dict() plus the classifier's
    test accuracy; None without a classifier) and pictures (paths relative
    to `workdir`).
  """
  from tf_lifelong.train import recording  # noqa: PLC0415

  images = full_test_images(stream, options.iwae_examples)
  out = {
    "iwae_log_likelihood": sampling_metrics.iwae_log_likelihood(
      student, images, options.iwae_k, seed=seed
    ),
    "iwae_k": options.iwae_k,
    "iwae_examples": len(images),
    "consistent_sampling": None,
    "pictures": {},
  }
  if classifier is not None:
    score = sampling_metrics.consistent_sampling(
      student, classifier.predict, classifier.class_ids, options.sampling_n, seed
    )
    out["consistent_sampling"] = {
      **score.to_dict(),
      "samples_per_component": options.sampling_n,
      "classifier_test_accuracy": classifier.test_accuracy,
    }
  folder = os.path.join(workdir, EXTRAS_DIR)
  tests = [
    transforms.unit_float(stream.distributions[i].test.images[:8])
    for i in list(seen)[:MAX_RECONSTRUCTED]
  ]
  recon = recording.reconstruction_grid(student, tests)
  out["pictures"]["reconstructions"] = _png(folder, "reconstructions.png", recon)
  if int(student.continuous_dim) == 2:
    for j in range(int(student.num_categories)):
      grid = sampling_metrics.interpolation_grid(student, j, options.interpolation_points)
      out["pictures"][f"interpolation_zd{j}"] = _png(folder, f"interpolation-zd{j}.png", grid)
  return out


def _png(folder: str, name: str, images: np.ndarray) -> str:
  summaries.write_png(os.path.join(folder, name), summaries.image_grid(images))
  return os.path.join(EXTRAS_DIR, name)


class FinalExtras:
  """lifelong.run hook: `compute_extras` after the last interval, kept in `.result`."""

  def __init__(
    self,
    options: ExtrasOptions,
    classifier: Callable[[], sampling_metrics.Classifier | None] | None = None,
  ):
    """`classifier`: a function that returns the classifier (called once, at the end)."""
    self.options = options
    self.classifier = classifier
    self.result: dict | None = None

  def after_interval(self, ctx, row) -> None:
    if not ctx.last:  # lifelong.run marks the stream's last interval (also a detected one)
      return
    classifier = self.classifier() if self.classifier is not None else None
    seen = ctx.seen_truth or ctx.seen  # A task-free run's ids are its own: use the truth's.
    self.result = compute_extras(
      ctx.student, ctx.stream, seen, ctx.workdir, self.options, classifier, ctx.config.seed
    )
