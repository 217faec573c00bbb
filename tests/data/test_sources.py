"""Tests of tf_lifelong.data.sources on the real MNIST / Fashion-MNIST and on tiny files."""

import gzip
import os

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st
from PIL import Image
from scipy import io as scipy_io

from tests import paths
from tests.data.conftest import (
  MNIST_TEST_COUNTS,
  MNIST_TRAIN_COUNTS,
  MNIST_TRAIN_MEAN,
  needs_fashion,
  needs_mnist,
  rows,
  write_idx,
  write_idx_dir,
  write_image_folder,
  write_png,
)
from tf_lifelong.data import sources
from tf_lifelong.data.sources import DataError, load_source


def _error(fn, *args, **kwargs) -> str:
  """The message of the DataError that fn raises; checks that it is one line."""
  with pytest.raises(DataError) as info:
    fn(*args, **kwargs)
  message = str(info.value)
  assert "\n" not in message and message
  return message


# ------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def mnist():
  return load_source("mnist", paths.DATA_ROOT)


FASHION_FILES = (
  "train-images-idx3-ubyte.gz",
  "train-labels-idx1-ubyte.gz",
  "t10k-images-idx3-ubyte.gz",
  "t10k-labels-idx1-ubyte.gz",
)


def _debian_fashion(name: str) -> np.ndarray:
  """The bytes after the IDX header of one of Debian's Fashion-MNIST files, read here.

  Debian's package is part of the test environment (scripts/setup installs it): without
  it the tests fail, rather than read whatever TFDS has prepared.
  """
  assert sources.DEBIAN_FASHION_DIR == paths.FASHION_DIR
  path = os.path.join(paths.FASHION_DIR, name)
  assert os.path.isfile(path), f"{path} is missing: apt-get install dataset-fashion-mnist"
  with gzip.open(path) as f:
    data = f.read()
  header = 16 if "images" in name else 8
  return np.frombuffer(data[header:], np.uint8)


@pytest.fixture(scope="module")
def fashion():
  for name in FASHION_FILES:
    _debian_fashion(name)  # the package is there
  return load_source("fashion_mnist")  # no flag: the Debian package path


@needs_mnist
def test_mnist_from_data_dir_has_the_official_counts(mnist):
  assert mnist.train.images.shape == (60000, 28, 28, 1)
  assert mnist.test.images.shape == (10000, 28, 28, 1)
  assert mnist.train.images.dtype == np.uint8 and mnist.train.labels.dtype == np.int64
  assert tuple(np.bincount(mnist.train.labels)) == MNIST_TRAIN_COUNTS
  assert tuple(np.bincount(mnist.test.labels)) == MNIST_TEST_COUNTS
  assert mnist.train.images.mean() / 255 == pytest.approx(MNIST_TRAIN_MEAN, abs=1e-6)
  assert mnist.class_names == tuple("0123456789")


@needs_fashion
def test_fashion_from_debian_path_has_the_official_counts(fashion):
  assert fashion.train.images.shape == (60000, 28, 28, 1)
  assert tuple(np.bincount(fashion.train.labels)) == (6000,) * 10
  assert tuple(np.bincount(fashion.test.labels)) == (1000,) * 10
  assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
  assert 0 < fashion.train.images.mean() < 255
  # The very files of Debian's package, in their order.
  np.testing.assert_array_equal(fashion.test.labels, _debian_fashion(FASHION_FILES[3]))
  np.testing.assert_array_equal(fashion.train.images.reshape(-1), _debian_fashion(FASHION_FILES[0]))


@needs_fashion
def test_data_dir_is_preferred_over_the_debian_path(tmp_path):
  debian_labels = _debian_fashion(FASHION_FILES[3])  # both are there: a real choice
  arrays = write_idx_dir(tmp_path / "fashion_mnist")
  assert len(arrays["test"][1]) != len(debian_labels)
  data = load_source("fashion_mnist", str(tmp_path))
  np.testing.assert_array_equal(data.train.images[..., 0], arrays["train"][0])
  np.testing.assert_array_equal(data.test.labels, arrays["test"][1])


# ----------------------------------------------------------- IDX files
def test_idx_folder_round_trips(tmp_path):
  arrays = write_idx_dir(tmp_path / "mnist")
  data = load_source("mnist", str(tmp_path))
  for split, (images, labels) in (("train", arrays["train"]), ("test", arrays["test"])):
    got = getattr(data, split)
    np.testing.assert_array_equal(got.images, images[..., None])
    np.testing.assert_array_equal(got.labels, labels.astype(np.int64))


def test_uncompressed_idx_files_are_read_too(tmp_path):
  arrays = write_idx_dir(tmp_path / "mnist")
  gz = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
  write_idx(str(gz)[:-3], arrays["train"][1], compress=False)
  gz.unlink()
  np.testing.assert_array_equal(
    load_source("mnist", str(tmp_path)).train.labels, arrays["train"][1]
  )


def test_missing_data_without_data_dir_names_every_way(tmp_path, monkeypatch):
  monkeypatch.setattr(sources, "TFDS_DATA_DIR", str(tmp_path / "tfds"))
  monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", str(tmp_path / "debian"))
  message = _error(load_source, "mnist")
  assert "--data_dir" in message and "TFDS" in message and "--download" in message
  assert "tfds build mnist" in message
  message = _error(load_source, "fashion_mnist")
  assert "apt-get install dataset-fashion-mnist" in message and "--data_dir" in message
  message = _error(load_source, "svhn")
  assert "train_32x32.mat" in message and "svhn_cropped" in message


def test_missing_file_under_data_dir_is_named(tmp_path):
  message = _error(load_source, "mnist", str(tmp_path))
  assert str(tmp_path / "mnist" / "train-images-idx3-ubyte.gz") in message
  assert "TFDS" in message and "--data_dir" in message


def test_corrupt_gz_is_named(tmp_path):
  write_idx_dir(tmp_path / "mnist")
  bad = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
  bad.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(200))
  assert str(bad) in _error(load_source, "mnist", str(tmp_path))
  bad.write_bytes(b"this is not gzip at all")
  assert str(bad) in _error(load_source, "mnist", str(tmp_path))


def test_truncated_gz_is_named(tmp_path):
  write_idx_dir(tmp_path / "mnist", n_train=500)
  bad = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
  bad.write_bytes(bad.read_bytes()[:-300])
  message = _error(load_source, "mnist", str(tmp_path))
  assert str(bad) in message and "truncated" in message


def test_truncated_idx_content_is_named(tmp_path):
  write_idx_dir(tmp_path / "mnist")
  bad = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
  data = gzip.decompress(bad.read_bytes())
  bad.write_bytes(gzip.compress(data[:-5]))
  message = _error(load_source, "mnist", str(tmp_path))
  assert str(bad) in message and "5x4x3" in message


def test_wrong_magic_is_named(tmp_path):
  arrays = write_idx_dir(tmp_path / "mnist")
  bad = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
  write_idx(bad, arrays["train"][1])  # a labels file under the images name
  message = _error(load_source, "mnist", str(tmp_path))
  assert str(bad) in message and "2049" in message and "2051" in message


def test_image_label_count_mismatch_names_both_files(tmp_path):
  write_idx_dir(tmp_path / "mnist", n_train=12)
  labels = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
  write_idx(labels, np.zeros(11, np.uint8))
  message = _error(load_source, "mnist", str(tmp_path))
  assert str(labels) in message and "train-images-idx3-ubyte.gz" in message


def test_unknown_source_is_an_error():
  assert "folder:PATH" in _error(load_source, "cifar10")


# ------------------------------------------------------------------ SVHN
def _write_svhn(folder, n, seed):
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
  y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
  y[0, 0] = 10
  return x, y


def test_svhn_mat_in_the_official_layout(tmp_path):
  folder = tmp_path / "svhn_cropped"
  written = {}
  for split, n in (("train", 7), ("test", 4)):
    x, y = _write_svhn(folder, n, seed=n)
    scipy_io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
    written[split] = (x, y)
  data = load_source("svhn", str(tmp_path))
  for split in ("train", "test"):
    x, y = written[split]
    got = getattr(data, split)
    np.testing.assert_array_equal(got.images, x.transpose(3, 0, 1, 2))
    np.testing.assert_array_equal(got.labels, np.where(y[:, 0] == 10, 0, y[:, 0]))
    assert got.labels[0] == 0 and got.labels.max() <= 9


def test_svhn_bad_mat_is_named(tmp_path):
  folder = tmp_path / "svhn_cropped"
  folder.mkdir()
  x, y = _write_svhn(folder, 3, seed=0)
  scipy_io.savemat(folder / "train_32x32.mat", {"X": x, "y": y})
  bad = folder / "test_32x32.mat"
  bad.write_bytes(b"garbage" * 30)
  assert str(bad) in _error(load_source, "svhn", str(tmp_path))
  scipy_io.savemat(bad, {"X": x[..., :2], "y": y})
  assert str(bad) in _error(load_source, "svhn", str(tmp_path))


# --------------------------------------------------------------- folder
def test_folder_source_orders_by_name_and_holds_out_a_test_share(tmp_path):
  written = write_image_folder(tmp_path, {"b_cats": 12, "a_dogs": 5, "c_owls": 20})
  data = load_source(f"folder:{tmp_path}")
  assert data.class_names == ("a_dogs", "b_cats", "c_owls")
  assert data.train.images.shape[1:] == (4, 5, 1)
  for label, name in enumerate(data.class_names):
    train = data.train.images[data.train.labels == label]
    test = data.test.images[data.test.labels == label]
    assert len(test) == max(1, round(0.1 * len(written[name])))
    assert rows(np.concatenate([train, test])[..., 0]) == rows(written[name])
  again = load_source(f"folder:{tmp_path}")
  np.testing.assert_array_equal(again.test.images, data.test.images)


def test_folder_rgb_and_jpeg_images(tmp_path):
  rng = np.random.default_rng(0)
  (tmp_path / "x").mkdir()
  for i in range(3):
    write_png(tmp_path / "x" / f"{i}.png", rng.integers(0, 256, (6, 4, 3), dtype=np.uint8))
  Image.fromarray(rng.integers(0, 256, (6, 4, 3), dtype=np.uint8)).save(tmp_path / "x" / "3.JPG")
  data = load_source(f"folder:{tmp_path}")
  assert len(data.train) + len(data.test) == 4
  assert data.train.images.shape[1:] == (6, 4, 3)


def test_folder_without_images_is_named(tmp_path):
  write_image_folder(tmp_path, {"a": 3})
  (tmp_path / "b").mkdir()
  (tmp_path / "b" / "notes.txt").write_text("no images here")
  message = _error(load_source, f"folder:{tmp_path}")
  assert str(tmp_path / "b") in message and "no PNG or JPEG" in message


def test_folder_with_no_subfolders_or_missing_is_an_error(tmp_path):
  assert str(tmp_path) in _error(load_source, f"folder:{tmp_path}")
  assert "nowhere" in _error(load_source, f"folder:{tmp_path}/nowhere")


def test_folder_unreadable_image_is_named(tmp_path):
  write_image_folder(tmp_path, {"a": 3})
  bad = tmp_path / "a" / "img001.png"
  bad.write_bytes(b"not a png")
  assert str(bad) in _error(load_source, f"folder:{tmp_path}")


def test_folder_mixed_sizes_are_named(tmp_path):
  write_image_folder(tmp_path, {"a": 3, "b": 3})
  bad = write_png(tmp_path / "b" / "zz_big.png", np.zeros((8, 8), np.uint8))
  message = _error(load_source, f"folder:{tmp_path}")
  assert bad in message and "8x8" in message
  os.remove(bad)
  bad = write_png(tmp_path / "b" / "zz_rgb.png", np.zeros((4, 5, 3), np.uint8))
  assert bad in _error(load_source, f"folder:{tmp_path}")


# ------------------------------------------------------------------ npz
def test_npz_source_with_labels_and_float_pixels(tmp_path):
  rng = np.random.default_rng(1)
  images = rng.random((30, 3, 4)).astype(np.float32)
  dist = np.repeat([4, 2, 9], 10)
  labels = rng.integers(0, 5, 30)
  path = tmp_path / "d.npz"
  np.savez(path, images=images, distribution=dist, labels=labels)
  data = load_source(f"npz:{path}")
  assert data.train.images.dtype == np.uint8 and data.train.images.shape[1:] == (3, 4, 1)
  both = [
    np.concatenate(a)
    for a in zip(
      (data.train.images, data.train.labels, data.train.distribution),
      (data.test.images, data.test.labels, data.test.distribution),
      strict=True,
    )
  ]
  expected = np.rint(images * 255).astype(np.uint8)[..., None]
  assert rows(both[0]) == rows(expected)
  assert sorted(zip(both[2], both[1], strict=True)) == sorted(zip(dist, labels, strict=True))
  assert sorted(np.unique(data.test.distribution)) == [2, 4, 9]


def _save(path, **arrays):
  np.savez(path, **arrays)
  return str(path)


def test_npz_bad_inputs_are_named(tmp_path):
  ok = np.zeros((4, 3, 3), np.uint8)
  cases = {
    "lengths": (dict(images=ok, distribution=np.zeros(3, int)), "same length"),
    "nan": (dict(images=np.full((4, 3, 3), np.nan), distribution=np.zeros(4, int)), "NaN"),
    "range": (dict(images=np.full((4, 3, 3), 1.5), distribution=np.zeros(4, int)), "[0, 1]"),
    "empty": (
      dict(images=np.zeros((0, 3, 3), np.uint8), distribution=np.zeros(0, int)),
      "non-empty",
    ),
    "missing": (dict(distribution=np.zeros(4, int)), "images"),  # images alone: a stream
    "labels": (dict(images=ok, distribution=np.zeros(4, int), labels=np.zeros(2, int)), "labels"),
    "negative": (dict(images=ok, distribution=-np.ones(4, int)), "negative"),
  }
  for name, (arrays, words) in cases.items():
    path = _save(tmp_path / f"{name}.npz", **arrays)
    message = _error(load_source, f"npz:{path}")
    assert path in message and words in message, name
  bad = tmp_path / "bad.npz"
  bad.write_bytes(b"not a zip")
  assert str(bad) in _error(load_source, f"npz:{bad}")
  assert "nope.npz" in _error(load_source, f"npz:{tmp_path}/nope.npz")


@hypothesis.settings(max_examples=25, deadline=None)
@hypothesis.given(
  counts=st.dictionaries(st.integers(0, 20), st.integers(1, 12), min_size=1, max_size=4),
  shape=st.tuples(st.integers(1, 5), st.integers(1, 5), st.sampled_from([None, 1, 3])),
  as_float=st.booleans(),
  seed=st.integers(0, 2**16),
)
def test_npz_round_trip_property(tmp_path_factory, counts, shape, as_float, seed):
  rng = np.random.default_rng(seed)
  dist = rng.permutation(np.concatenate([[i] * n for i, n in counts.items()]))
  n = len(dist)
  pixels = (n, shape[0], shape[1]) + (() if shape[2] is None else (shape[2],))
  images = rng.integers(0, 256, pixels, dtype=np.uint8)
  stored = images.astype(np.float64) / 255 if as_float else images
  path = tmp_path_factory.mktemp("npz") / "d.npz"
  np.savez(path, images=stored, distribution=dist)
  data = load_source(f"npz:{path}")
  expected = images if shape[2] is not None else images[..., None]
  for ident, count in counts.items():
    train = data.train.images[data.train.distribution == ident]
    test = data.test.images[data.test.distribution == ident]
    assert len(train) + len(test) == count
    assert len(test) == (0 if count < 3 else max(1, round(0.1 * count)))
    assert rows(np.concatenate([train, test])) == rows(expected[dist == ident])
  scaled = data.train.images.astype(np.float32) / 255
  assert scaled.min() >= 0 and scaled.max() <= 1
  np.testing.assert_array_equal(data.train.labels, data.train.distribution)


def test_tfds_branch_with_mock_data(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  monkeypatch.setattr(sources, "TFDS_DATA_DIR", str(tmp_path))
  monkeypatch.setattr(sources, "DEBIAN_FASHION_DIR", str(tmp_path / "no-debian"))
  with tfds.testing.mock_data(num_examples=6):
    with pytest.raises(DataError, match="--download"):
      load_source("fashion_mnist")  # not prepared, and no download allowed
    data = load_source("fashion_mnist", download=True)
  assert data.train.images.shape == (6, 28, 28, 1) and data.train.images.dtype == np.uint8
  assert data.train.labels.dtype == np.int64 and data.train.labels.max() <= 9
  assert len(data.test) == 6 and data.class_names == sources.FASHION_CLASSES
