"""The nearest-sample ratio of a return (issue #35 part 4): how a chunk lies against a
component's fresh samples, against how the component's own data lay.

For a set of images X (ROWS of them at most, evenly spaced) and component j of a model m,
with S = S_m(j) the model's SAMPLES Bernoulli-mean samples of j (pixels in [0, 1]; the
same latents, from the seed, every time), each distance is in units of the sample's own
spread:

    d(x, s) = ||x - s||_2 / sqrt(v(s)),   v(s) = sum over pixels p of s_p (1 - s_p),

v(s) = E ||y - s||^2 for an image y ~ Bernoulli(s) that the sample could have drawn, so d
is about 1 for an image the sample explains as well as its own draws. Then

    near_m(X, j)  = mean over x in X of min_{s in S} d(x, s)   (each image's nearest sample)
    cover_m(X, j) = mean over s in S of min_{x in X} d(x, s)   (each sample's nearest image)

When an interval of j ends, its reference keeps both for its held-out share H under the
model of that time (`detection.Reference.neighbour`: three numbers). A chunk c that is a
candidate return to j is judged by

    r = near_now(c, j) / near_ref(H, j) * cover_now(c, j) / cover_ref(H, j),

`cover` on as many images as the reference's (where the chunk has fewer, near's ratio
stands in: r = near ratio squared). Each factor compares real images with the *same* kind
of model samples, so a model whose samples of j moved with its data cancels. A return lies
about as near j's samples as j's data did and covers them as well (r near 1). A newcomer,
even a look-alike that the encoder sends to j (a Coat to the Pullover component), lies
farther (no sample of j is a coat) and leaves some of j's samples uncovered (no coat is a
pullover): both factors grow, which is why the product separates where either alone
barely does.

Why the spread's units: as the model forgets j, its samples of j blur, and a blurred
sample lies farther from every real image. In plain L2 that moved a return's r by what the
images' own distances were worth: little for Fashion-MNIST's full garments, most for sparse
images (MNIST ones: 1.279 against the bound at age 2 on MNIST with repeats, taken for new;
rotated ones 2.37 after 18 intervals). A blurred sample's v(s) grows with the distance it
adds, so d keeps a return near 1.

Why pixels and not the encoder's features: the encoder's z_c is style shared by every
component, and its z_d is the posterior whose vote neighbours split (docs/task_free.md);
pixel distances to a component's own samples are what a generative model of it promises.

Calibrated offline on training and validation images only (docs/results/issue35/
return_cases.py: every end checkpoint of a told-boundaries run as the judge, every seen
distribution's training images as a return case, every unseen one's as a new case,
references on the validation split; five runs: Fashion-MNIST 0..9 and look-alikes,
MNIST 0..9 and with repeats, rotated MNIST): docs/task_free.md has the figures. In the
spread's units the returns' r stays within 1.02-1.11 on the class streams at any age, and
rotated MNIST's reaches 1.16 after 7 intervals (1.32 for the ones at 200 degrees after 18),
while a young newcomer whose profile passes lies at 1.17 and more (1.12 for one MNIST case
at age 3). Hence the bound `bound`: --return_ratio 1.10 + --return_ratio_growth 0.02
ln(1 + age).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from tf_lifelong.data import transforms

SAMPLES = 1024
"""Samples of the candidate component per measurement."""
ROWS = 300
"""Images of the chunk (or held-out share) measured at most, evenly spaced through it."""
SEED_OFFSET = 104_729
"""Separates these samples' latents from the reference profile's (detection.py)."""
METRIC = "spread"
"""The distance d of the module docstring; references measured otherwise (plain L2, before
2026-12-07's session 18: no `metric`) are not compared (`comparable`)."""
MIN_SPREAD = 1.0
"""A floor on v(s): a sample that is 0 or 1 in nearly every pixel is not infinitely sure."""


@dataclasses.dataclass(frozen=True)
class Distances:
  """Images against a component's samples, both ways (module docstring)."""

  near: float
  """Mean over the images of the distance to the nearest sample."""
  cover: float
  """Mean over the samples of the distance to the nearest image (depends on how many)."""
  rows: int
  """How many images were measured."""
  metric: str = METRIC
  """The distance they were measured with (`METRIC`)."""

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def pairwise(images: np.ndarray, samples: np.ndarray) -> np.ndarray:
  """||x - s||_2 for every image x and sample s: [N, S]. Both [N or S, ...] in [0, 1]."""
  x = np.asarray(images, np.float64).reshape(len(images), -1)
  s = np.asarray(samples, np.float64).reshape(len(samples), -1)
  squared = (x * x).sum(1)[:, None] + (s * s).sum(1)[None, :] - 2.0 * x @ s.T
  return np.sqrt(np.maximum(squared, 0.0))


def spread(samples: np.ndarray) -> np.ndarray:
  """v(s) = sum_p s_p (1 - s_p) of each sample [S, ...] (at least MIN_SPREAD): [S]."""
  s = np.asarray(samples, np.float64).reshape(len(samples), -1)
  return np.maximum((s * (1.0 - s)).sum(1), MIN_SPREAD)


def scaled(images: np.ndarray, samples: np.ndarray) -> np.ndarray:
  """d(x, s) = ||x - s||_2 / sqrt(v(s)) for every image and sample (module docstring): [N, S]."""
  return pairwise(images, samples) / np.sqrt(spread(samples))[None, :]


def comparable(neighbour: dict | None) -> bool:
  """Was a reference's `neighbour` measured with today's distance (`METRIC`)?"""
  return bool(neighbour) and neighbour.get("metric") == METRIC


def rows(images: np.ndarray, n: int = ROWS) -> np.ndarray:
  """Up to n images, evenly spaced through `images` (a stream's order), in [0, 1]."""
  x = np.asarray(images)
  if len(x) > n:
    x = x[np.linspace(0, len(x) - 1, n).round().astype(int)]
  return transforms.unit_float(x) if x.dtype == np.uint8 else x


def measure(model, j: int, images: np.ndarray, seed: int, n: int = ROWS) -> Distances:
  """Up to n of the images against SAMPLES samples of component j of `model` (the same
  latents for a given seed and j every time)."""
  samples = np.asarray(
    model.sample(SAMPLES, component=int(j), seed=seed + SEED_OFFSET + 7919 * int(j))
  )
  d = scaled(rows(images, n), samples)
  return Distances(float(d.min(axis=1).mean()), float(d.min(axis=0).mean()), len(d))


def ratio(now: Distances, ref: Distances) -> float:
  """r = (near now / near ref) * (cover now / cover ref); where `now` measured fewer
  images than `ref` (a short segment), its cover is not comparable and the near ratio
  stands in for it: r = (near now / near ref)^2."""
  near = now.near / ref.near
  if now.rows < ref.rows:
    return near * near
  return near * now.cover / ref.cover


def bound(base: float, growth: float, age: int) -> float:
  """The bound on r for a reference made `age` interval ends before the judging model:
  base + growth * ln(1 + age). A return's r grows as the model forgets its component (its
  samples blur): on the calibration streams by about this much (module docstring)."""
  return base + growth * math.log1p(max(age, 0))
