"""TensorFlow Datasets as a source: the offline probe, the checked features, the splits.

`load_tfds` opens a TFDS builder, asks it whether the data are prepared (it
only reads the data directory: never the network, unless `download=True`
lets TFDS download and prepare them), checks that the dataset is one of
fixed-size grey or RGB uint8 images with a class-label feature, and reads its
train and test splits into memory (a fixed held-out test share when it has
none). `load_tfds_source` is the `tfds:NAME[:FEATURE]` source built on it,
with its one message when the data are not prepared. TFDS is imported only
inside these functions: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os

import numpy as np

from tf_lifelong.data.splits import (
  TEST_FRACTION,
  DataError,
  SourceData,
  Split,
  first_line,
  split_off_test,
)

TFDS_LABEL = "label"
"""The class-label feature of `tfds:NAME` (`tfds:NAME:FEATURE` names another)."""
_TFDS_BATCH = 8192


def parse_tfds(name: str) -> tuple[str, str]:
  """`tfds:NAME` or `tfds:NAME:FEATURE` -> (NAME, FEATURE); FEATURE defaults to TFDS_LABEL.

  Raises:
    DataError: not of that form.
  """
  parts = name[len("tfds:") :].split(":") if name.startswith("tfds:") else []
  if not 1 <= len(parts) <= 2 or not all(parts):
    raise DataError(
      f"{name!r} is not tfds:NAME or tfds:NAME:FEATURE "
      "(e.g. tfds:cifar10, tfds:cifar100:coarse_label)"
    )
  return parts[0], parts[1] if len(parts) == 2 else TFDS_LABEL


def _open_builder(tfds_name: str, data_dir: str | None):
  import tensorflow_datasets as tfds  # noqa: PLC0415 - TFDS only where asked

  try:
    return tfds.builder(tfds_name, data_dir=data_dir)
  except Exception as e:  # noqa: BLE001 - TFDS raises many types: each becomes a DataError
    if type(e).__name__ == "DatasetNotFoundError":
      raise DataError(
        f"TFDS has no dataset {tfds_name!r} ({first_line(e)}); name one of "
        "`tfds.list_builders()` (a config as NAME/CONFIG)"
      ) from None
    raise DataError(
      f"TFDS cannot open {tfds_name!r} ({type(e).__name__}: {first_line(e)}); check that "
      "`python -c 'import tensorflow_datasets'` works in this environment"
    ) from None


def _checked_features(builder, tfds_name: str, label: str) -> tuple[str, tuple[str, ...]]:
  """The key of the image feature and the class names of `label`, checked."""
  import tensorflow_datasets as tfds  # noqa: PLC0415 - TFDS only where asked

  features = dict(builder.info.features.items())
  images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  if not images:
    raise DataError(
      f"TFDS dataset {tfds_name!r} has no image feature (it has: {', '.join(features)}); "
      "tfds:NAME needs an image dataset"
    )
  key = "image" if "image" in images else images[0] if len(images) == 1 else None
  if key is None:
    raise DataError(
      f"TFDS dataset {tfds_name!r} has several image features ({', '.join(images)}) and none "
      "named 'image'; tfds:NAME reads one image per example"
    )
  shape = tuple(features[key].shape)
  if len(shape) != 3 or None in shape or shape[-1] not in (1, 3):
    raise DataError(
      f"TFDS dataset {tfds_name!r}: its images are {list(shape)} (None: varies); tfds:NAME "
      "needs images of one size, grey or RGB ([H, W, 1] or [H, W, 3])"
    )
  labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
  if label not in labels:
    raise DataError(
      f"TFDS dataset {tfds_name!r} has no class-label feature {label!r} (its class-label "
      f"features: {', '.join(labels) or 'none'}); name one as tfds:{tfds_name}:FEATURE"
    )
  feature = features[label]
  names = tuple(feature.names) if feature.names else tuple(map(str, range(feature.num_classes)))
  return key, names


def _read_split(builder, split: str, image: str, label: str, what: str) -> Split:
  """One split of a prepared TFDS dataset in memory (only its image and label features)."""
  import tensorflow_datasets as tfds  # noqa: PLC0415 - TFDS only where asked

  dataset = builder.as_dataset(split=split)
  dataset = dataset.map(lambda x: (x[image], x[label])).batch(_TFDS_BATCH)
  batches = list(tfds.as_numpy(dataset))
  if not batches:
    raise DataError(f"{what}: TFDS split {split!r} holds no examples")
  pixels = np.concatenate([b[0] for b in batches])
  if pixels.dtype != np.uint8:
    raise DataError(f"{what}: TFDS images are {pixels.dtype}; only 8-bit (uint8) images work")
  return Split(pixels, np.concatenate([b[1] for b in batches]).astype(np.int64))


def load_tfds(
  name: str,
  data_dir: str | None,
  download: bool,
  tfds_name: str,
  label: str = TFDS_LABEL,
) -> SourceData | None:
  """The TFDS splits, or None when TFDS has not prepared them and may not download.

  Args:
    name: the source's name (`mnist`, ..., or `tfds:...`), for the messages.
    data_dir: TFDS's data directory; None: TFDS's default.
    download: let TFDS download and prepare what it has not prepared.
    tfds_name: the TFDS name of the dataset (e.g. `svhn_cropped`).
    label: the class-label feature whose classes are the distributions.

  Raises:
    DataError: an unknown dataset, one that is not a fixed-size image dataset
      with the class-label feature `label`, or a failed download.
  """
  with _probe_warnings_hidden():
    builder = _open_builder(tfds_name, data_dir)
    prepared = builder.is_prepared()  # Reads the data directory only: no network.
  image, names = _checked_features(builder, tfds_name, label)
  if not prepared:
    if not download:
      return None
    try:
      builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - TFDS raises many types: each becomes a DataError
      raise DataError(
        f"TFDS could not download and prepare {tfds_name!r} into "
        f"{builder.data_dir}: {first_line(e)}"
      ) from None
  known = set(builder.info.splits)  # Empty only where TFDS records none (its mocks).
  if known and "train" not in known:
    raise DataError(f"{name}: TFDS dataset {tfds_name!r} has no train split ({', '.join(known)})")
  train = _read_split(builder, "train", image, label, name)
  if not known or "test" in known:
    test = _read_split(builder, "test", image, label, name)
  else:  # No test split of its own: a fixed held-out share, as for folders.
    logging.info("%s: no test split; holding out %g of each class", name, TEST_FRACTION)
    train, test = split_off_test(train)
  logging.info("%s: %d train and %d test examples from TFDS", name, len(train), len(test))
  return SourceData(name, train, test, names)


@contextlib.contextmanager
def _probe_warnings_hidden():
  """Hides TFDS's warnings while it probes its data directory, unless logging asks for INFO.

  An unprepared dataset makes TFDS warn "Variant folder ... has no
  dataset_info.json": that is the answer 'not prepared', which the caller
  turns into its one message.
  """
  logger = logging.getLogger("absl")  # TFDS logs through absl.
  previous = logger.level
  if logger.getEffectiveLevel() >= logging.WARNING:
    logger.setLevel(logging.ERROR)
  try:
    yield
  finally:
    logger.setLevel(previous)


def load_tfds_source(
  name: str, data_dir: str | None, download: bool, default_dir: str | None
) -> SourceData:
  """`tfds:NAME[:FEATURE]`: any TFDS image dataset, by the classes of a class-label feature.

  Args:
    name: `tfds:NAME` or `tfds:NAME:FEATURE`.
    data_dir: TFDS's data directory given by the user, or None.
    download: let TFDS download and prepare what it has not prepared.
    default_dir: the data directory without `data_dir`; None: TFDS's default.

  Raises:
    DataError: a malformed name, a dataset `load_tfds` refuses, or data TFDS
      has not prepared (without `download`).
  """
  tfds_name, label = parse_tfds(name)
  root = os.path.expanduser(data_dir) if data_dir else default_dir
  data = load_tfds(name, root, download, tfds_name=tfds_name, label=label)
  if data is None:
    raise DataError(
      f"{name} data not found: TFDS has not prepared {tfds_name!r} in "
      f"{root or tfds_root(default_dir)}; let TFDS fetch it with --download (or run `tfds build "
      f"{tfds_name}` first), or pass --data_dir=DIR where TFDS has prepared it"
    )
  return data


def tfds_root(default_dir: str | None) -> str:
  """The data directory TFDS probes, as a message names it (`default_dir` when set)."""
  if default_dir is not None:
    return default_dir
  return os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
