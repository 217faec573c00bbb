"""The lifelong stream: distributions, the schedule of intervals, tf.data pipelines.

`build_stream(config)` turns a dataset into distributions (method.md
sections 1 and 7) and a schedule of intervals over them:

- `mnist`, `fashion_mnist`, `folder:PATH`, `npz:PATH`: one distribution per
  class / folder / distribution id, scheduled by `config.order` (default: all
  ids in increasing order), truncated to `config.num_intervals`.
- a stream source (`frames`: `npz:PATH` without `distribution`, `npy:PATH`, a
  folder of frames): one distribution (id 0, named after the file), one
  interval. A detect run reads it a chunk at a time instead (lifelong.py).
- `tfds:NAME`, `tfds:NAME:FEATURE`: one distribution per class (of the
  `label` feature, or FEATURE) present in the TFDS data, its id the class
  index, scheduled as above.
- `rotated_mnist`: one distribution per digit and angle, id
  `digit * len(angles) + angle_index`; `config.num_intervals` (default 70)
  intervals, each drawn uniformly with replacement with
  `np.random.default_rng(config.seed)`. An explicit `config.order` replaces
  the draws.
- `svhn_mnist`, `fashion_mnist_mnist`: distribution 0 is all of SVHN (or
  Fashion-MNIST), 1 is all of MNIST, both as 32x32 RGB.

An interval whose distribution was scheduled before is flagged `is_new=False`.
Each distribution's validation split is `config.validation_fraction` of its
training split, chosen by a permutation with a fixed seed (not `config.seed`),
so it is the same in every run; its test split is the source's test split for
that class (for folders and .npz files: the held-out share, see splits.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from tf_lifelong.config import Config
from tf_lifelong.data import frames, transforms
from tf_lifelong.data.sources import (
  DataError,
  SourceData,
  Split,
  concat_splits,
  holdout,
  load_source,
)

ROTATED_MNIST_INTERVALS = 70
"""Intervals drawn for rotated_mnist when `config.num_intervals` is None."""
_VALIDATION_SALT = 1


@dataclasses.dataclass(frozen=True, eq=False)
class Distribution:
  """One distribution P*_c of the stream with its three splits."""

  id: int
  name: str
  train: Split
  validation: Split
  test: Split
  members: tuple[int, ...] = ()
  """For a pooled distribution (the batch baseline's), the ids it pools."""

  @property
  def member_ids(self) -> tuple[int, ...]:
    """The stream distribution ids this distribution stands for."""
    return self.members or (self.id,)


@dataclasses.dataclass(frozen=True, eq=False)
class Interval:
  """One interval of the schedule: its position, distribution, and newness."""

  index: int
  distribution: Distribution
  is_new: bool

  @property
  def distribution_id(self) -> int:
    return self.distribution.id


@dataclasses.dataclass(frozen=True, eq=False)
class Stream:
  """A dataset's distributions (all of them, by id) and the schedule over them."""

  name: str
  image_shape: tuple[int, int, int]
  distributions: dict[int, Distribution]
  intervals: tuple[Interval, ...]

  def __iter__(self) -> Iterator[Interval]:
    return iter(self.intervals)

  def __len__(self) -> int:
    return len(self.intervals)

  @property
  def scheduled_ids(self) -> tuple[int, ...]:
    """Distribution ids in schedule order (repeats included)."""
    return tuple(i.distribution_id for i in self.intervals)


# ----------------------------------------------------------- distributions
def _validation(train: Split, key: int, fraction: float) -> tuple[Split, Split]:
  """Holds `fraction` of `train` out for validation; keyed, not seeded by the run."""
  kept, held = holdout(len(train), fraction, (_VALIDATION_SALT, key))
  return train.take(kept), train.take(held)


def _distribution(
  ident: int, name: str, train: Split, test: Split, fraction: float
) -> Distribution:
  """A distribution whose train split gives up a validation share (keyed by its id)."""
  train, validation = _validation(train, ident, fraction)
  return Distribution(ident, name, train, validation, test)


def _plain(split: Split) -> Split:
  """The split without per-example distribution ids (its distribution is known)."""
  return Split(split.images, split.labels)


def _per_group(
  source: SourceData, names: dict[int, str], fraction: float
) -> dict[int, Distribution]:
  """One distribution per group id (class, folder or npz id) of `source`."""
  out = {}
  for ident, name in names.items():
    train = _plain(source.train.take(source.train.groups == ident))
    test = _plain(source.test.take(source.test.groups == ident))
    out[ident] = _distribution(ident, name, train, test, fraction)
  return out


def _class_distributions(config: Config, name: str) -> dict[int, Distribution]:
  source = load_source(name, config.data_dir, config.download)
  if name == "mnist":
    names = {k: f"digit {c}" for k, c in enumerate(source.class_names)}
  else:
    names = dict(enumerate(source.class_names))
  return _per_group(source, names, config.validation_fraction)


def _file_distributions(config: Config) -> dict[int, Distribution]:
  """folder:, npz:, npy: and tfds: sources: one distribution per id present in the data."""
  source = load_source(config.dataset, config.data_dir, config.download)
  ids = sorted(set(np.unique(source.train.groups)) | set(np.unique(source.test.groups)))
  if config.dataset.startswith(("folder:", "tfds:")) or frames.is_stream_source(config.dataset):
    names = {int(i): source.class_names[i] for i in ids}
  else:
    names = {int(i): f"distribution {i}" for i in ids}
  return _per_group(source, names, config.validation_fraction)


def _rotated_distributions(config: Config) -> dict[int, Distribution]:
  """Digit x angle; the validation images of a digit are the same at every angle."""
  source = load_source("mnist", config.data_dir, config.download)
  digits = range(len(source.class_names))
  train = {
    d: _validation(source.train.take(source.train.labels == d), d, config.validation_fraction)
    for d in digits
  }
  test = {d: source.test.take(source.test.labels == d) for d in digits}
  out = {}
  for a, angle in enumerate(config.angles):
    for d in digits:
      splits = [_rotated(s, angle) for s in (*train[d], test[d])]
      ident = d * len(config.angles) + a
      out[ident] = Distribution(ident, f"digit {d} at {angle:g} degrees", *splits)
  return out


def _rotated(split: Split, angle: float) -> Split:
  return Split(transforms.rotate(split.images, angle), split.labels)


def _two_domains(config: Config, first: str) -> dict[int, Distribution]:
  """Distribution 0: all of `first`; 1: all of MNIST; both 32x32 RGB."""
  out = {}
  for ident, name in enumerate((first, "mnist")):
    source = load_source(name, config.data_dir, config.download)
    # Split the small uint8 originals first, then make each split 32x32 RGB.
    d = _distribution(
      ident, name, _plain(source.train), _plain(source.test), config.validation_fraction
    )
    out[ident] = Distribution(ident, name, *(_rgb32(s) for s in (d.train, d.validation, d.test)))
  return out


def _rgb32(split: Split) -> Split:
  return Split(transforms.to_rgb32(split.images), split.labels)


def _distributions(config: Config) -> dict[int, Distribution]:
  dataset = config.dataset
  if dataset in ("mnist", "fashion_mnist"):
    return _class_distributions(config, dataset)
  if dataset == "rotated_mnist":
    return _rotated_distributions(config)
  if dataset == "svhn_mnist":
    return _two_domains(config, "svhn")
  if dataset == "fashion_mnist_mnist":
    return _two_domains(config, "fashion_mnist")
  if dataset.startswith(("folder:", "npz:", "npy:", "tfds:")):
    return _file_distributions(config)
  raise DataError(f"unknown dataset {dataset!r}")


# ---------------------------------------------------------------- schedule
def _order(config: Config, ids: list[int]) -> tuple[int, ...]:
  """The distribution ids of the intervals, in order."""
  if config.order is not None:
    order = tuple(config.order)
  elif config.dataset == "rotated_mnist":
    count = config.num_intervals or ROTATED_MNIST_INTERVALS
    draws = np.random.default_rng(config.seed).integers(0, len(ids), size=count)
    return tuple(ids[i] for i in draws)
  else:
    order = tuple(ids)
  if config.num_intervals is not None:
    if config.num_intervals > len(order):
      raise DataError(
        f"num_intervals={config.num_intervals} but the order of {config.dataset} "
        f"has only {len(order)} intervals; lower num_intervals or give a longer "
        "--order"
      )
    order = order[: config.num_intervals]
  return order


def _check(config: Config, distributions: dict[int, Distribution], order: tuple[int, ...]) -> None:
  known = sorted(distributions)
  ids = ", ".join(map(str, known)) if len(known) <= 12 else f"{known[0]}..{known[-1]}"
  for ident in order:
    if ident not in distributions:
      raise DataError(
        f"order names distribution {ident}, but {config.dataset} has ids "
        f"{ids} ({len(known)} distributions); fix --order"
      )
  for d in distributions.values():
    sizes = {"train": len(d.train), "validation": len(d.validation), "test": len(d.test)}
    empty = [k for k, v in sizes.items() if v == 0]
    if empty:
      raise DataError(
        f"distribution {d.id} ({d.name}) of {config.dataset} has an empty "
        f"{' and '.join(empty)} split ({sizes}); it needs at least 3 examples "
        "(more in folder/npz sources)"
      )


def build_stream(config: Config) -> Stream:
  """Builds the stream of `config.dataset` (see the module docstring).

  Args:
    config: uses dataset, data_dir, order, num_intervals, angles, seed,
      validation_fraction and download.

  Returns:
    The Stream, with every distribution of the dataset in `distributions`.

  Raises:
    DataError: data missing or malformed, an order naming an unknown
      distribution, or a distribution with an empty split.
  """
  distributions = _distributions(config)
  order = _order(config, sorted(distributions))
  _check(config, distributions, order)
  seen: set[int] = set()
  intervals = []
  for index, ident in enumerate(order):
    intervals.append(Interval(index, distributions[ident], ident not in seen))
    seen.add(ident)
  first = next(iter(distributions.values()))
  return Stream(
    config.dataset, tuple(first.train.images.shape[1:]), distributions, tuple(intervals)
  )


def joint(stream: Stream) -> Stream:
  """The batch baseline's stream: one interval holding every scheduled distribution.

  Its distribution (id -1) pools the train, validation and test splits of the
  distinct distributions of `stream`'s schedule; `distributions` is unchanged,
  so evaluation still sees each distribution on its own.
  """
  ids = list(dict.fromkeys(stream.scheduled_ids))
  parts = [stream.distributions[i] for i in ids]
  pooled = Distribution(
    -1,
    "all of " + ", ".join(d.name for d in parts),
    concat_splits([d.train for d in parts]),
    concat_splits([d.validation for d in parts]),
    concat_splits([d.test for d in parts]),
    members=tuple(ids),
  )
  return dataclasses.replace(stream, intervals=(Interval(0, pooled, True),))


# ---------------------------------------------------------------- tf.data
MAP_THREADS = 2
"""Parallel gathers of the training/evaluation pipelines (tf.data autotuning is off)."""
PREFETCH_BATCHES = 2
"""Batches made ahead of the step."""


def as_dataset(
  split: Split,
  batch_size: int,
  *,
  shuffle: bool,
  seed: int | None = None,
  repeat: bool = False,
  drop_remainder: bool = False,
  stateless: bool = False,
) -> tf.data.Dataset:
  """A tf.data pipeline of (images float32 [B, H, W, C] in [0, 1], labels int64 [B]).

  The uint8 images stay in memory (on the CPU); the pipeline shuffles and
  batches example indices, gathers each batch and only then casts and scales
  it, so its cost per example is a few bytes of index work. Gathers run on
  MAP_THREADS threads, PREFETCH_BATCHES batches ahead; tf.data's autotuning is
  off, so that deleting an iterator does not wait for its model thread.

  Args:
    split: the examples.
    batch_size: examples per batch.
    shuffle: reshuffle the examples every epoch.
    seed: shuffle seed; the same seed gives the same batches. None: random.
    repeat: repeat the epochs forever.
    drop_remainder: drop each epoch's last, smaller batch.
    stateless: epoch e's order is a function of (seed, e) alone, not of the global seed
      (as tf.data's shuffle is): no reseed before a chunk's steps (train/task_free.py).

  Returns:
    The tf.data.Dataset.

  Raises:
    DataError: the split is empty, or smaller than one batch with
      drop_remainder and no repeat (the dataset would be empty). With repeat,
      batches run across epoch boundaries, so every batch is full.
  """
  n = len(split)
  if batch_size < 1:
    raise ValueError(f"batch_size must be at least 1, got {batch_size}")
  if n == 0 or (drop_remainder and not repeat and n < batch_size):
    raise DataError(
      f"a split of {n} examples yields no batch of {batch_size}"
      f"{' with drop_remainder' if n else ''}"
    )
  with tf.device("/cpu:0"):
    images = tf.constant(split.images)
    labels = tf.constant(split.labels)
  index = _indices(n, shuffle, seed, repeat, stateless)
  index = index.batch(batch_size, drop_remainder=drop_remainder)

  def gather(batch):
    pixels = tf.cast(tf.gather(images, batch), tf.float32) / 255.0
    return pixels, tf.gather(labels, batch)

  batches = index.map(gather, num_parallel_calls=MAP_THREADS, deterministic=True)
  return batches.prefetch(PREFETCH_BATCHES).with_options(_without_autotune())


def _indices(n: int, shuffle: bool, seed, repeat: bool, stateless: bool) -> tf.data.Dataset:
  """as_dataset's example indices, epoch after epoch (see its arguments)."""
  if shuffle and stateless:
    if seed is None:
      raise ValueError("a stateless shuffle needs a seed")

    def order(epoch):  # A stateless permutation of (seed, epoch).
      key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
      permutation = tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), key)
      return tf.data.Dataset.from_tensor_slices(permutation)

    epochs = tf.data.Dataset.counter() if repeat else tf.data.Dataset.range(1)
    return epochs.flat_map(order)
  index = tf.data.Dataset.range(n)
  if shuffle:
    if seed is None:
      seed = int(np.random.default_rng().integers(2**31 - 1))
    index = index.shuffle(n, seed=seed, reshuffle_each_iteration=True)
  return index.repeat() if repeat else index


def _without_autotune() -> tf.data.Options:
  """tf.data options with autotuning off (fixed parallelism and buffers instead).

  With autotuning on, deleting an iterator (as Keras' `fit` does at its end)
  waits for tf.data's model thread, which sleeps between optimisation rounds
  whose period doubles up to 60 s: seen here as a 35 s stall at the end of
  some 45-50 s intervals, and 50 s after a 150 s one (docs/performance.md).
  These pipelines are index work and one gather per batch, far faster than the
  step without tuning.
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return options
