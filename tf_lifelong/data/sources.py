"""Named datasets as uint8 arrays, with checks and one-line errors.

`load_source(name, data_dir, download)` returns the train and test splits of
one dataset in memory:

- `mnist`, `fashion_mnist`: with `data_dir`, the four official IDX .gz files
  in `data_dir/mnist/` or `data_dir/fashion_mnist/` (TFDS's folder names; a
  TFDS data directory works too). Fashion-MNIST is also found, with no flag,
  at the Debian package path `/usr/share/datasets/fashion-mnist/` (when
  `data_dir` has no fashion_mnist/ folder at all). Otherwise TFDS is used if
  it has prepared the data, or fetches them when `download=True`; else a
  DataError lists every way to get them.
- `svhn` (TFDS `svhn_cropped`): `data_dir/svhn_cropped/train_32x32.mat` and
  `test_32x32.mat` in the official layout, or TFDS.
- `folder:PATH`: one sub-folder of PNG/JPEG images per distribution.
- `npz:PATH`: arrays `images`, `distribution` and optionally `labels`.
- Streams (`frames`): `npz:PATH` with `images` and no `distribution`, `npy:PATH`,
  and `folder:PATH` holding the frames themselves (no sub-folders): one
  distribution named after the file or folder, loaded whole here (a detect run
  reads them a chunk at a time instead, `frames.Chunks`).
- `tfds:NAME` (`tfds:NAME:FEATURE`): any TFDS dataset of fixed-size grey or RGB
  uint8 images, its labels those of the class-label feature `label` (or
  FEATURE); `data_dir` is TFDS's data directory. The same offline probe as
  above (`is_prepared`, never a download without `download=True`). A dataset
  without a test split gets one held out, as folders do.

Local files are only read from `data_dir` or a known install path; they are
never a silent substitute for a missing dataset. Folders and .npz files have
no test split of their own: `splits.TEST_FRACTION` of each distribution
(chosen by a fixed-seed permutation, so it never moves) is held out as the
test split.

This module chooses where a source's data come from; the file formats are
read in `formats`, TFDS in `tfds_source`, and the types (`Split`,
`SourceData`, `DataError`, the holdouts) live in `splits`, re-exported here.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from tf_lifelong.data import formats, frames, tfds_source
from tf_lifelong.data.splits import (
  DataError,
  SourceData,
  Split,
  concat_splits,
  holdout,
  split_off_test,
)

__all__ = [
  "DataError",
  "SourceData",
  "Split",
  "concat_splits",
  "holdout",
  "load_source",
]

DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
"""Where `apt-get install dataset-fashion-mnist` puts the four IDX files."""
TFDS_DATA_DIR: str | None = None
"""TFDS data directory probed without `data_dir`; None: TFDS's own default."""

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
  "T-shirt/top",
  "Trouser",
  "Pullover",
  "Dress",
  "Coat",
  "Sandal",
  "Shirt",
  "Sneaker",
  "Bag",
  "Ankle boot",
)
_IDX_CLASSES = {"mnist": MNIST_CLASSES, "fashion_mnist": FASHION_CLASSES}
_TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "svhn": "svhn_cropped"}


# ------------------------------------------------------------- named sets
def _missing_message(name: str) -> str:
  """The one message for a named dataset found nowhere: every way to get it."""
  tfds_name = _TFDS_NAMES[name]
  root = tfds_source.tfds_root(TFDS_DATA_DIR)
  if name == "svhn":
    local = "pass --data_dir=ROOT with train_32x32.mat and test_32x32.mat in ROOT/svhn_cropped/"
  else:
    local = f"pass --data_dir=ROOT with the four IDX .gz files in ROOT/{name}/"
  return (
    f"{name} data not found: TFDS has not prepared {tfds_name!r} in "
    f"{root}; {local}{_debian_hint(name)}, or let TFDS fetch it with "
    f"--download (or run `tfds build {tfds_name}` first)"
  )


def _debian_hint(name: str) -> str:
  if name != "fashion_mnist":
    return ""
  return (
    f", install the Debian package (`apt-get install dataset-fashion-mnist`, files "
    f"in {DEBIAN_FASHION_DIR}/)"
  )


def _load_named(name: str, data_dir: str | None, download: bool) -> SourceData:
  debian = name == "fashion_mnist" and _missing_local(name, DEBIAN_FASHION_DIR) is None
  if data_dir is not None:
    folder = os.path.join(os.path.expanduser(data_dir), _TFDS_NAMES[name])
    # A ROOT without any fashion_mnist/ falls back on the Debian package (same files).
    if os.path.isdir(folder) or not debian:
      return _load_from_root(name, data_dir, folder, download)
  if debian:
    logging.info("%s: reading the Debian package files in %s", name, DEBIAN_FASHION_DIR)
    return _read_local(name, DEBIAN_FASHION_DIR)
  data = tfds_source.load_tfds(name, TFDS_DATA_DIR, download, _TFDS_NAMES[name])
  if data is None:
    raise DataError(_missing_message(name))
  return data


def _load_from_root(name: str, data_dir: str, folder: str, download: bool) -> SourceData:
  """The official files in ROOT/<tfds name>/, or TFDS data prepared under ROOT."""
  missing = _missing_local(name, folder)
  if missing is None:
    logging.info("%s: reading %s", name, folder)
    return _read_local(name, folder)
  tfds_data = (
    tfds_source.load_tfds(name, data_dir, download, _TFDS_NAMES[name])
    if _looks_tfds(folder, download)
    else None
  )
  if tfds_data is not None:
    return tfds_data
  raise DataError(
    f"{missing} not found; put the official files of {name} in {folder}/"
    f"{_debian_hint(name)}, or drop --data_dir to use TFDS (with --download "
    "if TFDS has not prepared it)"
  )


def _local_files(name: str) -> tuple[str, ...]:
  if name == "svhn":
    return ("train_32x32.mat", "test_32x32.mat")
  return tuple(f for pair in formats.IDX_FILES.values() for f in pair)


def _missing_local(name: str, folder: str) -> str | None:
  """The first official file missing from `folder`, or None when all are there."""
  for file in _local_files(name):
    path = os.path.join(folder, file)
    if not (os.path.isfile(path) or (file.endswith(".gz") and os.path.isfile(path[:-3]))):
      return path
  return None


def _looks_tfds(folder: str, download: bool) -> bool:
  return download or (
    os.path.isdir(folder)
    and any(
      os.path.isfile(os.path.join(folder, v, "dataset_info.json")) for v in os.listdir(folder)
    )
  )


def _read_local(name: str, folder: str) -> SourceData:
  if name == "svhn":
    train = formats.read_svhn_mat(os.path.join(folder, "train_32x32.mat"))
    test = formats.read_svhn_mat(os.path.join(folder, "test_32x32.mat"))
    return SourceData(name, Split(*train), Split(*test), MNIST_CLASSES)
  classes = _IDX_CLASSES[name]
  splits = [
    Split(*formats.read_idx_split(folder, split, len(classes))) for split in ("train", "test")
  ]
  return SourceData(name, splits[0], splits[1], classes)


# ------------------------------------------------------------ folder, npz
def _load_folder(path: str) -> SourceData:
  images, groups, names = formats.read_image_folder(path)
  logging.info(
    "folder:%s: %d images (%s) in %d sub-folders",
    path,
    len(images),
    formats.shape_text(images.shape[1:]),
    len(names),
  )
  train, test = split_off_test(Split(images, groups))
  return SourceData(f"folder:{path}", train, test, names)


def _load_npz(path: str) -> SourceData:
  images, dist, labels = formats.read_npz(path)
  logging.info("npz:%s: %d images, %d distributions", path, len(images), len(np.unique(dist)))
  if labels is None:
    labels = dist
  num = int(labels.max()) + 1
  names = tuple(str(i) for i in range(num))
  train, test = split_off_test(Split(images, labels, dist))
  return SourceData(f"npz:{path}", train, test, names)


def _load_stream(name: str) -> SourceData:
  """A time-ordered source as one distribution (every image, loaded whole)."""
  source = frames.open_frames(name)
  try:
    images = source.read_all()
  finally:
    source.close()
  logging.info("%s: %d frames (%s), one distribution", name, len(images), source.shape)
  train, test = split_off_test(Split(images, np.zeros(len(images), np.int64)))
  return SourceData(name, train, test, (frames.display_name(name),))


def load_source(name: str, data_dir: str | None = None, download: bool = False) -> SourceData:
  """Loads a dataset's train and test splits as uint8 arrays.

  Args:
    name: 'mnist', 'fashion_mnist', 'svhn' (or 'svhn_cropped'), 'folder:PATH',
      'npz:PATH', 'npy:PATH' or 'tfds:NAME' / 'tfds:NAME:FEATURE' (any TFDS image dataset).
    data_dir: root holding one folder per dataset (mnist/, fashion_mnist/,
      svhn_cropped/) with the official files; None: the Debian Fashion-MNIST
      path or TFDS. For `tfds:`, TFDS's data directory.
    download: let TFDS download and prepare data it has not prepared.

  Returns:
    The SourceData.

  Raises:
    DataError: the data are missing, unreadable or malformed (one line that
      names the file and says how to fix it).
  """
  if name.startswith(frames.STREAM_PREFIXES) and frames.is_stream_source(name):
    return _load_stream(name)
  if name.startswith("folder:"):
    return _load_folder(os.path.expanduser(name[len("folder:") :]))
  if name.startswith("npz:"):
    return _load_npz(os.path.expanduser(name[len("npz:") :]))
  if name.startswith("tfds:"):
    return tfds_source.load_tfds_source(name, data_dir, download, TFDS_DATA_DIR)
  if name == "svhn_cropped":
    name = "svhn"
  if name not in _TFDS_NAMES:
    raise DataError(
      f"unknown data source {name!r}; choose mnist, fashion_mnist, svhn, folder:PATH, "
      "npz:PATH, npy:PATH or tfds:NAME"
    )
  return _load_named(name, data_dir, download)
