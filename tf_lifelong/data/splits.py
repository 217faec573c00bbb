"""The data types every reader returns, and fixed held-out splits.

`Split` (uint8 images, int64 labels, optional distribution ids), `SourceData`
(a dataset's train and test splits with its class names), `DataError` (the one
user-facing error of the data layer) and the seeded holdouts that carve a
validation or test share out of a split, the same whatever the run's seed.
`sources`, `formats` and `tfds_source` all build on this module; it imports
none of them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TEST_FRACTION = 0.1
"""Share of each folder/npz distribution held out as its test split."""

_HOLDOUT_SEED = 20180321
_TEST_SALT = 7


class DataError(Exception):
  """One-line, user-facing message that names the file/path and says how to fix it."""


def first_line(error: BaseException) -> str:
  """The first line of an exception's message (its type name when it has none)."""
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
  """Examples of one split, kept as uint8 in memory.

  Attributes:
    images: uint8 [N, H, W, C] (C = 1 for grey images).
    labels: int64 [N], class labels (for folders: the folder index).
    distribution: optional int64 [N], the distribution id of each example for
      sources whose distributions are not their classes (npz); None means the
      label is the distribution.
  """

  images: np.ndarray
  labels: np.ndarray
  distribution: np.ndarray | None = None

  def __post_init__(self):
    if self.images.ndim != 4 or self.images.dtype != np.uint8:
      raise ValueError(
        f"Split images must be uint8 [N, H, W, C], got "
        f"{self.images.dtype} {list(self.images.shape)}"
      )
    if self.labels.shape != (len(self.images),) or self.labels.dtype != np.int64:
      raise ValueError(
        f"Split labels must be int64 [{len(self.images)}], got "
        f"{self.labels.dtype} {list(self.labels.shape)}"
      )
    if self.distribution is not None and self.distribution.shape != self.labels.shape:
      raise ValueError("Split distribution ids must have the shape of the labels")

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def groups(self) -> np.ndarray:
    """Distribution id of every example (the labels when `distribution` is None)."""
    return self.labels if self.distribution is None else self.distribution

  def take(self, index: np.ndarray) -> Split:
    """The examples at `index` (integer indices or a boolean mask), copied."""
    dist = None if self.distribution is None else self.distribution[index]
    return Split(self.images[index], self.labels[index], dist)


@dataclasses.dataclass(frozen=True, eq=False)
class SourceData:
  """A dataset's two splits and the names of its classes (indexed by label)."""

  name: str
  train: Split
  test: Split
  class_names: tuple[str, ...]


def concat_splits(splits: list[Split]) -> Split:
  """Concatenates splits of one image shape (e.g. the test sets seen so far)."""
  if not splits:
    raise ValueError("concat_splits needs at least one split")
  dists = [s.distribution for s in splits]
  dist = None if any(d is None for d in dists) else np.concatenate(dists)
  return Split(
    np.concatenate([s.images for s in splits]), np.concatenate([s.labels for s in splits]), dist
  )


def holdout(
  n: int, fraction: float, key: tuple[int, ...], min_keep: int = 1
) -> tuple[np.ndarray, np.ndarray]:
  """Splits range(n) into (kept, held) by a permutation seeded by `key` only.

  `round(fraction * n)` indices are held (at least 1), as long as `min_keep`
  stay kept; both index arrays are sorted. The same (n, fraction, key) always
  gives the same split, whatever the run's seed.
  """
  count = min(max(1, int(round(fraction * n))), n - min_keep)
  count = max(count, 0)
  perm = np.random.default_rng((_HOLDOUT_SEED,) + tuple(key)).permutation(n)
  return np.sort(perm[count:]), np.sort(perm[:count])


def holdout_by_group(
  groups: np.ndarray, fraction: float, salt: int, min_keep: int = 1
) -> tuple[np.ndarray, np.ndarray]:
  """`holdout` within each group id: (kept, held) indices into `groups`, sorted."""
  kept, held = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
  for g in np.unique(groups):
    index = np.flatnonzero(groups == g)
    k, h = holdout(len(index), fraction, (salt, int(g)), min_keep)
    kept.append(index[k])
    held.append(index[h])
  return np.sort(np.concatenate(kept)), np.sort(np.concatenate(held))


def split_off_test(data: Split) -> tuple[Split, Split]:
  """(train, test) of a source with no test split: `TEST_FRACTION` of each distribution held."""
  # Two kept per distribution leave one for training and one for validation.
  kept, held = holdout_by_group(data.groups, TEST_FRACTION, _TEST_SALT, min_keep=2)
  return data.take(kept), data.take(held)
