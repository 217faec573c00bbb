"""`--dataset=tfds:NAME[:FEATURE]`: any TFDS image dataset, one class per interval.

TFDS is mocked (`tfds.testing.mock_data`) with examples made here, so that
labels and images are known: example i of a split has pixel [0, 0, 0] = i, label
i % 5 and coarse_label (i // 2) % 3. The unprepared-data error is also checked
without a mock, through bin/train, on an empty TFDS data directory.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds  # an install requirement (setup.py): fail, never skip

from tests import paths
from tf_lifelong import config as config_lib
from tf_lifelong.data import sources, streams
from tf_lifelong.data.sources import DataError, load_source

SIZES = {"train": 60, "test": 30}
LABEL_CLASSES = 5
COARSE_CLASSES = 3


def _labels(key: str, n: int) -> np.ndarray:
  index = np.arange(n)
  if key == "coarse_label":
    return (index // 2) % COARSE_CLASSES
  return index % LABEL_CLASSES


def _as_dataset(self, split, decoders=None, read_config=None, **kwargs):
  """The mocked `_as_dataset`: SIZES[split] examples of the builder's image and label features."""
  import tensorflow as tf

  del decoders, read_config, kwargs
  n = SIZES[str(split)]
  rng = np.random.default_rng(len(str(split)))
  columns = {}
  for key, feature in self.info.features.items():
    if isinstance(feature, tfds.features.Image):
      images = rng.integers(0, 256, (n, *feature.shape), dtype=np.uint8)
      images[:, 0, 0, 0] = np.arange(n)  # The example's index, to check where it went.
      columns[key] = images
    elif isinstance(feature, tfds.features.ClassLabel):
      columns[key] = _labels(key, n).astype(np.int64)
  return tf.data.Dataset.from_tensor_slices(columns)


@pytest.fixture
def mocked_tfds(tmp_path, monkeypatch):
  """TFDS mocked with `_as_dataset`; nothing is prepared, --download 'prepares' it."""
  monkeypatch.setattr(sources, "TFDS_DATA_DIR", str(tmp_path / "tfds"))
  with tfds.testing.mock_data(as_dataset_fn=_as_dataset):
    yield


def _error(fn, *args, **kwargs) -> str:
  with pytest.raises(DataError) as info:
    fn(*args, **kwargs)
  message = str(info.value)
  assert message and "\n" not in message, message
  return message


def _stream(dataset: str, **fields) -> streams.Stream:
  return streams.build_stream(config_lib.Config(dataset=dataset, download=True, **fields))


def test_one_distribution_per_class_of_label(mocked_tfds):
  stream = _stream("tfds:cifar100")
  names = tfds.builder("cifar100").info.features["label"].names
  assert stream.image_shape == (32, 32, 3)
  assert sorted(stream.distributions) == list(range(LABEL_CLASSES))
  assert stream.scheduled_ids == tuple(range(LABEL_CLASSES))
  for ident, d in stream.distributions.items():
    assert d.name == names[ident]
    assert len(d.train) + len(d.validation) == SIZES["train"] // LABEL_CLASSES
    assert len(d.validation) >= 1 and len(d.test) == SIZES["test"] // LABEL_CLASSES
    for split in (d.train, d.validation, d.test):
      index = split.images[:, 0, 0, 0].astype(int)
      np.testing.assert_array_equal(index % LABEL_CLASSES, ident)
      assert split.images.dtype == np.uint8


def test_feature_form_groups_by_that_label(mocked_tfds):
  stream = _stream("tfds:cifar100:coarse_label", order=(2, 0, 2))
  names = tfds.builder("cifar100").info.features["coarse_label"].names
  assert sorted(stream.distributions) == list(range(COARSE_CLASSES))
  assert stream.scheduled_ids == (2, 0, 2)
  assert [i.is_new for i in stream] == [True, True, False]
  for ident, d in stream.distributions.items():
    assert d.name == names[ident]
    index = np.concatenate([d.train.images, d.validation.images])[:, 0, 0, 0].astype(int)
    assert len(index) == SIZES["train"] // COARSE_CLASSES
    np.testing.assert_array_equal(_labels("coarse_label", SIZES["train"])[index], ident)


def test_grey_images_keep_one_channel(mocked_tfds):
  data = load_source("tfds:mnist", download=True)
  assert data.name == "tfds:mnist"
  assert data.train.images.shape == (SIZES["train"], 28, 28, 1)
  assert data.test.images.shape == (SIZES["test"], 28, 28, 1)
  assert data.class_names == tuple(str(i) for i in range(10))


def test_unprepared_without_download_is_one_line(mocked_tfds, tmp_path):
  message = _error(load_source, "tfds:cifar100")
  assert "tfds:cifar100 data not found" in message and str(tmp_path / "tfds") in message
  assert "--download" in message and "tfds build cifar100" in message
  assert "--data_dir" in message
  message = _error(load_source, "tfds:cifar100:coarse_label", str(tmp_path / "mine"))
  assert str(tmp_path / "mine") in message and "--download" in message


def test_bad_names_and_features_are_one_line(mocked_tfds):
  message = _error(load_source, "tfds:cifar100:fine", download=True)
  assert "no class-label feature 'fine'" in message and "label, coarse_label" in message
  message = _error(load_source, "tfds:cifar100:image", download=True)
  assert "no class-label feature 'image'" in message
  assert "TFDS has no dataset 'no_such_set_xyz'" in _error(load_source, "tfds:no_such_set_xyz")
  assert "tfds:NAME or tfds:NAME:FEATURE" in _error(load_source, "tfds:a:b:c")


@pytest.mark.parametrize("dataset", ["tfds:", "tfds:a:b:c", "tfds:mnist:", "tfds::label"])
def test_config_refuses_malformed_tfds_names(dataset):
  with pytest.raises(config_lib.ConfigError, match="tfds:NAME or tfds:NAME:FEATURE"):
    config_lib.Config(dataset=dataset)


@pytest.mark.parametrize("dataset", ["tfds:cifar10", "tfds:emnist/letters", "tfds:x:coarse"])
def test_config_accepts_tfds_names(dataset):
  assert config_lib.Config(dataset=dataset).resolved_arch == "mlp"


def test_train_without_download_fails_at_once_in_one_line(tmp_path):
  """No mock: TFDS's own offline probe of an empty data directory, through bin/train."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  result = subprocess.run(
    [
      sys.executable,
      os.path.join(paths.REPO, "bin", "train"),
      "--dataset=tfds:cifar10",
      f"--data_dir={tmp_path / 'tfds'}",
      f"--workdir={tmp_path / 'w'}",
    ],
    capture_output=True,
    text=True,
    timeout=120,
    env=env,
  )
  assert result.returncode == 2, result.stderr
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith("train: error: tfds:cifar10 data not found")
  assert "--download" in lines[0] and str(tmp_path / "tfds") in lines[0]
