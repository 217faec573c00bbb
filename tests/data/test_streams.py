"""Tests of tf_lifelong.data.streams: distributions, schedules, splits and tf.data pipelines."""

import os

import numpy as np
import pytest
import tensorflow as tf
from scipy import io as scipy_io

from tests import paths
from tests.data.conftest import (
  MNIST_TEST_COUNTS,
  MNIST_TRAIN_COUNTS,
  MNIST_TRAIN_MEAN,
  needs_fashion,
  needs_mnist,
  rows,
  write_image_folder,
)
from tf_lifelong.config import Config
from tf_lifelong.data import streams
from tf_lifelong.data.sources import DataError, Split, load_source
from tf_lifelong.data.streams import as_dataset, build_stream


def _mnist_config(**overrides) -> Config:
  return Config(**{"dataset": "mnist", "data_dir": paths.DATA_ROOT, **overrides})


@pytest.fixture(scope="module")
def mnist_stream():
  return build_stream(_mnist_config())


@pytest.fixture(scope="module")
def mnist_source():
  return load_source("mnist", paths.DATA_ROOT)


def _batches(dataset):
  return [(x.numpy(), y.numpy()) for x, y in dataset]


# ------------------------------------------------------------ class streams
@needs_mnist
def test_mnist_stream_partitions_each_class(mnist_stream, mnist_source):
  assert mnist_stream.image_shape == (28, 28, 1) and len(mnist_stream) == 10
  assert sorted(mnist_stream.distributions) == list(range(10))
  for k, d in mnist_stream.distributions.items():
    assert d.name == f"digit {k}"
    assert len(d.train) + len(d.validation) == MNIST_TRAIN_COUNTS[k]
    assert len(d.validation) == round(0.1 * MNIST_TRAIN_COUNTS[k])
    assert len(d.test) == MNIST_TEST_COUNTS[k]
    assert set(d.train.labels) == set(d.validation.labels) == set(d.test.labels) == {k}
    # train + validation is exactly the class's training split (as a multiset).
    source_k = mnist_source.train.images[mnist_source.train.labels == k]
    assert rows(np.concatenate([d.train.images, d.validation.images])) == rows(source_k)
    np.testing.assert_array_equal(
      d.test.images, mnist_source.test.images[mnist_source.test.labels == k]
    )
  assert [(i.index, i.distribution_id, i.is_new) for i in mnist_stream] == [
    (k, k, True) for k in range(10)
  ]


@needs_mnist
def test_splits_are_deterministic_and_independent_of_the_seed(mnist_stream):
  other = build_stream(_mnist_config(seed=123))
  for k in (0, 7):
    a, b = mnist_stream.distributions[k], other.distributions[k]
    np.testing.assert_array_equal(a.validation.images, b.validation.images)
    np.testing.assert_array_equal(a.train.images, b.train.images)


@needs_mnist
def test_validation_fraction_changes_the_share(mnist_stream):
  stream = build_stream(_mnist_config(validation_fraction=0.25, order=(3,)))
  d = stream.distributions[3]
  assert len(d.validation) == round(0.25 * MNIST_TRAIN_COUNTS[3])
  assert len(d.train) + len(d.validation) == MNIST_TRAIN_COUNTS[3]


@needs_mnist
def test_order_with_repeats_flags_them_and_truncates(mnist_stream):
  stream = build_stream(_mnist_config(order=(3, 1, 3, 3, 0, 1), num_intervals=5))
  assert [(i.distribution_id, i.is_new) for i in stream] == [
    (3, True),
    (1, True),
    (3, False),
    (3, False),
    (0, True),
  ]
  assert len(stream.distributions) == 10
  assert stream.intervals[2].distribution is stream.intervals[0].distribution


@needs_mnist
@pytest.mark.parametrize(
  "overrides,words",
  [
    (dict(order=(2, 10)), "distribution 10"),
    (dict(num_intervals=11), "num_intervals=11"),
  ],
)
def test_bad_schedules_are_data_errors(overrides, words):
  with pytest.raises(DataError, match=words):
    build_stream(_mnist_config(**overrides))


@needs_fashion
def test_fashion_stream_names_and_counts():
  stream = build_stream(Config(dataset="fashion_mnist", order=(9, 0)))
  assert [i.distribution.name for i in stream] == ["Ankle boot", "T-shirt/top"]
  d = stream.distributions[4]
  assert (len(d.train), len(d.validation), len(d.test)) == (5400, 600, 1000)
  x, y = next(iter(as_dataset(d.test, 1000, shuffle=False)))
  assert x.shape == (1000, 28, 28, 1) and np.all(y.numpy() == 4)
  assert 0 <= x.numpy().min() and x.numpy().max() <= 1


# ----------------------------------------------------------- rotated MNIST
@needs_mnist
def test_rotated_stream_ids_angles_and_repeats(mnist_stream):
  config = _mnist_config(dataset="rotated_mnist", angles=(0.0, 90.0), num_intervals=30, seed=4)
  stream = build_stream(config)
  assert len(stream) == 30 and sorted(stream.distributions) == list(range(20))
  ids = [i.distribution_id for i in stream]
  assert ids == list(np.random.default_rng(4).integers(0, 20, 30))
  assert len(set(ids)) < len(ids)  # 30 draws from 20: repeats must occur
  assert [i.is_new for i in stream] == [k not in ids[:n] for n, k in enumerate(ids)]
  for digit in (0, 6):
    upright, turned = stream.distributions[2 * digit], stream.distributions[2 * digit + 1]
    assert upright.name == f"digit {digit} at 0 degrees"
    assert turned.name == f"digit {digit} at 90 degrees"
    # Rotating by 0 is the identity; the splits are those of the plain MNIST stream.
    plain = mnist_stream.distributions[digit]
    for split in ("train", "validation", "test"):
      np.testing.assert_array_equal(getattr(upright, split).images, getattr(plain, split).images)
      np.testing.assert_array_equal(
        getattr(turned, split).images, np.rot90(getattr(plain, split).images, 1, axes=(1, 2))
      )
    assert not np.array_equal(turned.train.images, upright.train.images)


@needs_mnist
def test_rotated_default_schedule_has_70_intervals_over_50_distributions():
  stream = build_stream(_mnist_config(dataset="rotated_mnist", seed=1))
  assert len(stream) == 70 and len(stream.distributions) == 50
  assert stream.distributions[3 * 5 + 2].name == "digit 3 at 130 degrees"
  other = build_stream(
    _mnist_config(dataset="rotated_mnist", seed=1, angles=(30.0,), order=(4, 4, 9))
  )
  assert [(i.distribution_id, i.is_new) for i in other] == [(4, True), (4, False), (9, True)]
  np.testing.assert_array_equal(
    other.distributions[4].test.images, stream.distributions[4 * 5].test.images
  )


# ------------------------------------------------------------ cross-domain
@needs_mnist
@needs_fashion
def test_fashion_mnist_mnist_is_32x32_rgb():
  stream = build_stream(Config(dataset="fashion_mnist_mnist", data_dir=paths.DATA_ROOT))
  assert stream.image_shape == (32, 32, 3)
  assert [(i.distribution.name, i.is_new) for i in stream] == [
    ("fashion_mnist", True),
    ("mnist", True),
  ]
  mnist = stream.distributions[1]
  assert (len(mnist.train) + len(mnist.validation), len(mnist.test)) == (60000, 10000)
  assert tuple(np.bincount(mnist.test.labels)) == MNIST_TEST_COUNTS
  images = np.concatenate([mnist.train.images, mnist.validation.images])
  assert images.shape[1:] == (32, 32, 3)
  assert np.array_equal(images[..., 0], images[..., 2])
  assert images.mean() / 255 == pytest.approx(MNIST_TRAIN_MEAN, rel=0.02)
  assert len(stream.distributions[0].test) == 10000


def _write_svhn_root(root, n_train=40, n_test=12):
  folder = os.path.join(root, "svhn_cropped")
  os.makedirs(folder)
  rng = np.random.default_rng(0)
  for split, n in (("train", n_train), ("test", n_test)):
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    scipy_io.savemat(os.path.join(folder, f"{split}_32x32.mat"), {"X": x, "y": y})
  os.symlink(paths.MNIST_DIR, os.path.join(root, "mnist"))


@needs_mnist
def test_svhn_mnist_from_official_files(tmp_path):
  _write_svhn_root(str(tmp_path))
  stream = build_stream(Config(dataset="svhn_mnist", data_dir=str(tmp_path), order=(1, 0)))
  assert stream.image_shape == (32, 32, 3)
  svhn = stream.distributions[0]
  assert svhn.name == "svhn" and (len(svhn.train), len(svhn.validation)) == (36, 4)
  assert len(svhn.test) == 12 and svhn.test.labels.max() <= 9
  assert stream.distributions[1].train.images.shape[1:] == (32, 32, 3)
  assert [i.distribution_id for i in stream] == [1, 0]


# ------------------------------------------------------------ folder / npz
def test_folder_stream_one_distribution_per_folder(tmp_path):
  write_image_folder(tmp_path, {"zebra": 10, "ant": 6, "moth": 30})
  stream = build_stream(Config(dataset=f"folder:{tmp_path}"))
  assert [i.distribution.name for i in stream] == ["ant", "moth", "zebra"]
  assert stream.image_shape == (4, 5, 1)
  for d, n in zip(stream.distributions.values(), (6, 30, 10), strict=True):
    sizes = (len(d.train), len(d.validation), len(d.test))
    assert sum(sizes) == n and min(sizes) >= 1


def test_folder_with_too_few_images_is_an_error(tmp_path):
  write_image_folder(tmp_path, {"a": 10, "b": 2})
  with pytest.raises(DataError, match=r"distribution 1 \(b\).*empty"):
    build_stream(Config(dataset=f"folder:{tmp_path}"))


def test_npz_stream_keeps_ids_and_labels(tmp_path):
  rng = np.random.default_rng(0)
  dist = np.repeat([7, 2], [20, 15])
  labels = rng.integers(0, 3, 35)
  path = tmp_path / "d.npz"
  np.savez(
    path,
    images=rng.integers(0, 256, (35, 6, 6, 3), dtype=np.uint8),
    distribution=dist,
    labels=labels,
  )
  stream = build_stream(Config(dataset=f"npz:{path}"))
  assert [(i.distribution_id, i.distribution.name) for i in stream] == [
    (2, "distribution 2"),
    (7, "distribution 7"),
  ]
  d = stream.distributions[7]
  got = np.concatenate([d.train.labels, d.validation.labels, d.test.labels])
  assert sorted(got) == sorted(labels[dist == 7])
  with pytest.raises(DataError, match="distribution 3"):
    build_stream(Config(dataset=f"npz:{path}", order=(2, 3)))


# ----------------------------------------------------------------- tf.data
def _split(n=50, seed=0):
  rng = np.random.default_rng(seed)
  return Split(rng.integers(0, 256, (n, 3, 2, 1), dtype=np.uint8), np.arange(n, dtype=np.int64))


def test_as_dataset_runs_without_tf_data_autotuning():
  # With autotuning on, deleting the iterator at the end of Keras' fit waited up
  # to a minute for tf.data's model thread (docs/performance.md).
  for repeat in (False, True):
    dataset = as_dataset(_split(), 8, shuffle=True, seed=3, repeat=repeat)
    assert dataset.options().autotune.enabled is False
    assert len(next(iter(dataset))[1]) == 8


def test_as_dataset_one_epoch_covers_every_example_once():
  split = _split()
  batches = _batches(as_dataset(split, 8, shuffle=True, seed=3))
  assert [len(y) for _, y in batches] == [8] * 6 + [2]
  labels = np.concatenate([y for _, y in batches])
  assert sorted(labels) == list(range(50)) and list(labels) != list(range(50))
  for x, y in batches:
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape[1:] == (3, 2, 1)
    np.testing.assert_allclose(x, split.images[y] / 255.0, rtol=1e-6)
    assert x.min() >= 0 and x.max() <= 1


def test_as_dataset_is_deterministic_given_a_seed():
  split = _split()
  first = [y for _, y in _batches(as_dataset(split, 8, shuffle=True, seed=5))]
  again = [y for _, y in _batches(as_dataset(split, 8, shuffle=True, seed=5))]
  other = [y for _, y in _batches(as_dataset(split, 8, shuffle=True, seed=6))]
  assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
  assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
  plain = np.concatenate([y for _, y in _batches(as_dataset(split, 8, shuffle=False))])
  assert list(plain) == list(range(50))


def test_as_dataset_repeat_reshuffles_and_drop_remainder_fills_batches():
  split = _split(n=10)
  dataset = as_dataset(split, 4, shuffle=True, seed=1, repeat=True, drop_remainder=True)
  labels = np.concatenate([y.numpy() for _, y in dataset.take(10)])
  assert len(labels) == 40 and np.all(np.bincount(labels) == 4)
  assert list(labels[:10]) != list(labels[10:20])  # each epoch in a new order
  small = as_dataset(_split(n=3), 8, shuffle=True, seed=1, repeat=True, drop_remainder=True)
  assert next(iter(small))[0].shape == (8, 3, 2, 1)  # batches run across epochs


def test_as_dataset_stateless_order_ignores_the_global_seed():
  # A chunk's steps (train/task_free.py) make their pipeline without a reseed: its order
  # must be a function of the seed alone, every epoch a permutation, each in a new order.
  split = _split(n=10)

  def labels(global_seed, seed=4):
    tf.random.set_seed(global_seed)
    dataset = as_dataset(split, 5, shuffle=True, seed=seed, repeat=True, stateless=True)
    return np.concatenate([y.numpy() for _, y in dataset.take(6)])

  first = labels(1)
  assert np.array_equal(first, labels(2))
  assert not np.array_equal(first, labels(1, seed=5))
  epochs = first.reshape(3, 10)
  assert all(sorted(e) == list(range(10)) for e in epochs)
  assert len({tuple(e) for e in epochs}) == 3
  once = as_dataset(split, 5, shuffle=True, seed=4, stateless=True)
  assert np.array_equal(np.concatenate([y for _, y in _batches(once)]), epochs[0])
  with pytest.raises(ValueError, match="needs a seed"):
    as_dataset(split, 5, shuffle=True, stateless=True)


def test_as_dataset_rejects_splits_without_batches():
  with pytest.raises(DataError):
    as_dataset(_split(n=0), 4, shuffle=False)
  with pytest.raises(DataError, match="drop_remainder"):
    as_dataset(_split(n=3), 4, shuffle=False, drop_remainder=True)


@needs_mnist
def test_stream_is_iterable_and_sized():
  config = Config(dataset="mnist")
  dist = streams.Distribution(0, "d", _split(10), _split(2), _split(2))
  stream = streams.Stream(
    config.dataset,
    (3, 2, 1),
    {0: dist},
    (streams.Interval(0, dist, True), streams.Interval(1, dist, False)),
  )
  assert len(stream) == 2 and [i.is_new for i in stream] == [True, False]
  assert stream.scheduled_ids == (0, 0) and stream.intervals[1].distribution_id == 0
