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
- `tfds:NAME` (`tfds:NAME:FEATURE`): any TFDS dataset of fixed-size grey or RGB
  uint8 images, its labels those of the class-label feature `label` (or
  FEATURE); `data_dir` is TFDS's data directory. The same offline probe as
  above (`is_prepared`, never a download without `download=True`). A dataset
  without a test split gets one held out, as folders do.

Local files are only read from `data_dir` or a known install path; they are
never a silent substitute for a missing dataset. Folders and .npz files have
no test split of their own: `TEST_FRACTION` of each distribution (chosen by a
fixed-seed permutation, so it never moves) is held out as the test split.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import logging
import math
import os
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image
from scipy import io as scipy_io

DEBIAN_FASHION_DIR = "/usr/share/datasets/fashion-mnist"
"""Where `apt-get install dataset-fashion-mnist` puts the four IDX files."""
TFDS_DATA_DIR: str | None = None
"""TFDS data directory probed without `data_dir`; None: TFDS's own default."""
TEST_FRACTION = 0.1
"""Share of each folder/npz distribution held out as its test split."""

_HOLDOUT_SEED = 20180321
_TEST_SALT = 7

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
IDX_FILES = {
  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_IDX_MAGIC = {3: 2051, 1: 2049}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "svhn": "svhn_cropped"}


class DataError(Exception):
  """One-line, user-facing message that names the file/path and says how to fix it."""


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


def _split_off_test(data: Split) -> tuple[Split, Split]:
  # Two kept per distribution leave one for training and one for validation.
  kept, held = holdout_by_group(data.groups, TEST_FRACTION, _TEST_SALT, min_keep=2)
  return data.take(kept), data.take(held)


# --------------------------------------------------------------- readers
def _first_line(error: BaseException) -> str:
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def _idx_path(folder: str, file: str) -> str:
  """`folder/file` (.gz), or its uncompressed twin when only that exists."""
  path = os.path.join(folder, file)
  if not os.path.isfile(path) and os.path.isfile(path[:-3]):
    return path[:-3]
  return path


def _read_bytes(path: str) -> bytes:
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      return f.read()
  except FileNotFoundError:
    raise DataError(f"{path} not found") from None
  except (OSError, EOFError, zlib.error) as e:
    raise DataError(
      f"{path} is corrupt or truncated ({_first_line(e)}); replace it with the official file"
    ) from None


def read_idx(path: str, ndim: int) -> np.ndarray:
  """Reads an IDX file of uint8 (ndim 3: images, 1: labels), checking its header.

  Raises:
    DataError: unreadable gzip, wrong magic number or a length that does not
      match the dimensions of the header.
  """
  data = _read_bytes(path)
  kind = "images" if ndim == 3 else "labels"
  header = 4 * (1 + ndim)
  if len(data) < header:
    raise DataError(
      f"{path} has {len(data)} bytes, too few for an IDX {kind} header; "
      "replace it with the official file"
    )
  magic, *dims = struct.unpack(f">{1 + ndim}I", data[:header])
  if magic != _IDX_MAGIC[ndim]:
    raise DataError(
      f"{path} has IDX magic number {magic}, expected {_IDX_MAGIC[ndim]} "
      f"for {kind}; it is not an IDX {kind} file (swapped or wrong file?)"
    )
  size = math.prod(dims)
  if len(data) - header != size or size == 0:
    raise DataError(
      f"{path} holds {len(data) - header} bytes of {kind} but its header "
      f"announces {'x'.join(map(str, dims))}; the file is truncated or "
      "corrupt, replace it with the official file"
    )
  return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def _read_idx_split(folder: str, split: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  image_path, label_path = (_idx_path(folder, f) for f in IDX_FILES[split])
  images = read_idx(image_path, 3)[..., None]
  labels = read_idx(label_path, 1).astype(np.int64)
  if len(images) != len(labels):
    raise DataError(
      f"{image_path} holds {len(images)} images but {label_path} holds "
      f"{len(labels)} labels; the two files do not belong together"
    )
  if labels.max() >= num_classes:
    raise DataError(
      f"{label_path} has label {labels.max()}, but the dataset has "
      f"{num_classes} classes; replace it with the official file"
    )
  return images, labels


def _read_svhn_mat(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Official SVHN cropped digits: X uint8 [32, 32, 3, N], y [N, 1] with 10 for 0."""
  try:
    mat = scipy_io.loadmat(path, variable_names=["X", "y"])
  except FileNotFoundError:
    raise DataError(f"{path} not found") from None
  except (OSError, ValueError, TypeError, NotImplementedError, zlib.error) as e:
    raise DataError(
      f"{path} is not a readable MATLAB v5 file ({_first_line(e)}); "
      "replace it with the official SVHN file"
    ) from None
  if "X" not in mat or "y" not in mat:
    raise DataError(f"{path} lacks the arrays X and y of the official SVHN layout")
  x, y = mat["X"], np.asarray(mat["y"]).reshape(-1)
  if x.ndim != 4 or x.shape[2] != 3 or x.dtype != np.uint8 or x.shape[3] != len(y):
    raise DataError(
      f"{path}: X must be uint8 [H, W, 3, N] matching y [N, 1], got "
      f"{x.dtype} {list(x.shape)} and {len(y)} labels"
    )
  if len(y) == 0 or y.min() < 0 or y.max() > 10 or np.any(y != np.round(y)):
    raise DataError(f"{path}: labels must be integers in 1..10 (10 for digit 0)")
  labels = y.astype(np.int64) % 10
  return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), labels


def _read_image(path: str) -> np.ndarray:
  """Decodes one PNG/JPEG into uint8 [H, W, C], C = 1 (grey) or 3."""
  try:
    with Image.open(path) as image:
      grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
      array = np.asarray(image.convert("L" if grey else "RGB"), np.uint8)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise DataError(
      f"{path} is not a readable image ({_first_line(e)}); replace or remove it"
    ) from None
  return array[..., None] if array.ndim == 2 else array


def _read_image_folder(path: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
  """One sub-folder per distribution, ordered by name; returns images, folder index, names."""
  if not os.path.isdir(path):
    raise DataError(
      f"{path} is not a directory; folder:PATH needs a directory with one "
      "sub-folder of PNG/JPEG images per distribution"
    )
  names = sorted(
    d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)) and not d.startswith(".")
  )
  if not names:
    raise DataError(
      f"{path} has no sub-folders; put the images of each distribution in a sub-folder of their own"
    )
  images, groups, first = [], [], None
  for index, name in enumerate(names):
    folder = os.path.join(path, name)
    files = sorted(
      f
      for f in os.listdir(folder)
      if f.lower().endswith(_IMAGE_SUFFIXES) and os.path.isfile(os.path.join(folder, f))
    )
    if not files:
      raise DataError(
        f"{folder} holds no PNG or JPEG images; every distribution "
        "folder needs some (or remove the folder)"
      )
    for file in files:
      file_path = os.path.join(folder, file)
      array = _read_image(file_path)
      if first is None:
        first = (array.shape, file_path)
      elif array.shape != first[0]:
        raise DataError(
          f"{file_path} is {_shape_text(array.shape)} but {first[1]} is "
          f"{_shape_text(first[0])}; all images must share one size and "
          "channel count (resize or convert them)"
        )
      images.append(array)
      groups.append(index)
  return np.stack(images), np.asarray(groups, np.int64), tuple(names)


def _shape_text(shape: tuple[int, ...]) -> str:
  return f"{shape[1]}x{shape[0]} {'grey' if shape[2] == 1 else 'RGB'}"


def _npz_ids(path: str, arrays: dict, key: str, length: int) -> np.ndarray:
  ids = arrays[key]
  if ids.ndim != 1 or ids.dtype.kind not in "iu":
    raise DataError(f"{path}: {key} must be a 1-D integer array, got {ids.dtype} {list(ids.shape)}")
  if len(ids) != length:
    raise DataError(
      f"{path}: images has {length} entries but {key} has {len(ids)}; "
      "they must have the same length"
    )
  if ids.min() < 0:
    raise DataError(f"{path}: {key} holds negative ids ({ids.min()}); use ids >= 0")
  return ids.astype(np.int64)


def _npz_images(path: str, images: np.ndarray) -> np.ndarray:
  """Checks `images` and returns them as uint8 [N, H, W, C]."""
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.size == 0:
    raise DataError(
      f"{path}: images must be a non-empty [N, H, W] or [N, H, W, C] array "
      f"with C = 1 or 3, got {list(images.shape)}"
    )
  if images.dtype == np.uint8:
    return images
  if images.dtype.kind == "f":
    if np.isnan(images).any():
      raise DataError(f"{path}: images hold NaN pixels; replace them with values in [0, 1]")
    if images.min() < 0 or images.max() > 1:
      raise DataError(
        f"{path}: float images must lie in [0, 1], found [{images.min():g}, {images.max():g}]"
      )
    return np.rint(images * 255).astype(np.uint8)
  if images.dtype.kind in "iu":
    if images.min() < 0 or images.max() > 255:
      raise DataError(
        f"{path}: integer images must lie in [0, 255], found [{images.min()}, {images.max()}]"
      )
    return images.astype(np.uint8)
  raise DataError(f"{path}: images must be uint8 or float in [0, 1], got {images.dtype}")


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
  """Reads `images`, `distribution` and optional `labels` from an .npz file."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except FileNotFoundError:
    raise DataError(f"{path} not found") from None
  except AttributeError:  # a .npy file: np.load returned an array
    raise DataError(
      f"{path} is a single array, not an .npz archive; save it with "
      "np.savez(path, images=..., distribution=...)"
    ) from None
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise DataError(f"{path} is not a readable .npz file ({_first_line(e)})") from None
  for key in ("images", "distribution"):
    if key not in arrays:
      raise DataError(
        f"{path} has no array {key!r} (it has: {', '.join(arrays) or 'none'}); "
        "save it with np.savez(path, images=..., distribution=...)"
      )
  images = _npz_images(path, arrays["images"])
  dist = _npz_ids(path, arrays, "distribution", len(images))
  labels = _npz_ids(path, arrays, "labels", len(images)) if "labels" in arrays else None
  return images, dist, labels


# ------------------------------------------------------------------ TFDS
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


def _tfds_builder(tfds_name: str, data_dir: str | None):
  import tensorflow_datasets as tfds  # noqa: PLC0415 - TFDS only where asked

  try:
    return tfds.builder(tfds_name, data_dir=data_dir)
  except Exception as e:  # noqa: BLE001 - TFDS raises many types: each becomes a DataError
    if type(e).__name__ == "DatasetNotFoundError":
      raise DataError(
        f"TFDS has no dataset {tfds_name!r} ({_first_line(e)}); name one of "
        "`tfds.list_builders()` (a config as NAME/CONFIG)"
      ) from None
    raise DataError(
      f"TFDS cannot open {tfds_name!r} ({type(e).__name__}: {_first_line(e)}); check that "
      "`python -c 'import tensorflow_datasets'` works in this environment"
    ) from None


def _tfds_features(builder, tfds_name: str, label: str) -> tuple[str, tuple[str, ...]]:
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


def _tfds_split(builder, split: str, image: str, label: str, what: str) -> Split:
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


def _load_tfds(
  name: str,
  data_dir: str | None,
  download: bool,
  tfds_name: str | None = None,
  label: str = TFDS_LABEL,
) -> SourceData | None:
  """The TFDS splits, or None when TFDS has not prepared them and may not download.

  Args:
    name: the source's name (a key of _TFDS_NAMES, or `tfds:...`).
    data_dir: TFDS's data directory; None: TFDS's default.
    download: let TFDS download and prepare what it has not prepared.
    tfds_name: the TFDS name (default: `_TFDS_NAMES[name]`).
    label: the class-label feature whose classes are the distributions.

  Raises:
    DataError: an unknown dataset, one that is not a fixed-size image dataset
      with the class-label feature `label`, or a failed download.
  """
  tfds_name = tfds_name or _TFDS_NAMES[name]
  with _probe_warnings_hidden():
    builder = _tfds_builder(tfds_name, data_dir)
    prepared = builder.is_prepared()  # Reads the data directory only: no network.
  image, names = _tfds_features(builder, tfds_name, label)
  if not prepared:
    if not download:
      return None
    try:
      builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - TFDS raises many types: each becomes a DataError
      raise DataError(
        f"TFDS could not download and prepare {tfds_name!r} into "
        f"{builder.data_dir}: {_first_line(e)}"
      ) from None
  known = set(builder.info.splits)  # Empty only where TFDS records none (its mocks).
  if known and "train" not in known:
    raise DataError(f"{name}: TFDS dataset {tfds_name!r} has no train split ({', '.join(known)})")
  train = _tfds_split(builder, "train", image, label, name)
  if not known or "test" in known:
    test = _tfds_split(builder, "test", image, label, name)
  else:  # No test split of its own: a fixed held-out share, as for folders.
    logging.info("%s: no test split; holding out %g of each class", name, TEST_FRACTION)
    train, test = _split_off_test(train)
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


def _load_tfds_dataset(name: str, data_dir: str | None, download: bool) -> SourceData:
  """`tfds:NAME[:FEATURE]`: any TFDS image dataset, by the classes of a class-label feature."""
  tfds_name, label = parse_tfds(name)
  root = os.path.expanduser(data_dir) if data_dir else TFDS_DATA_DIR
  data = _load_tfds(name, root, download, tfds_name=tfds_name, label=label)
  if data is None:
    raise DataError(
      f"{name} data not found: TFDS has not prepared {tfds_name!r} in "
      f"{root or _tfds_root()}; let TFDS fetch it with --download (or run `tfds build "
      f"{tfds_name}` first), or pass --data_dir=DIR where TFDS has prepared it"
    )
  return data


def _tfds_root() -> str:
  if TFDS_DATA_DIR is not None:
    return TFDS_DATA_DIR
  return os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")


def _missing_message(name: str) -> str:
  """The one message for a named dataset found nowhere: every way to get it."""
  tfds_name = _TFDS_NAMES[name]
  if name == "svhn":
    local = "pass --data_dir=ROOT with train_32x32.mat and test_32x32.mat in ROOT/svhn_cropped/"
  else:
    local = f"pass --data_dir=ROOT with the four IDX .gz files in ROOT/{name}/"
  return (
    f"{name} data not found: TFDS has not prepared {tfds_name!r} in "
    f"{_tfds_root()}; {local}{_debian_hint(name)}, or let TFDS fetch it with "
    f"--download (or run `tfds build {tfds_name}` first)"
  )


def _debian_hint(name: str) -> str:
  if name != "fashion_mnist":
    return ""
  return (
    f", install the Debian package (`apt-get install dataset-fashion-mnist`, files "
    f"in {DEBIAN_FASHION_DIR}/)"
  )


# ------------------------------------------------------------- named sets
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
  data = _load_tfds(name, TFDS_DATA_DIR, download)
  if data is None:
    raise DataError(_missing_message(name))
  return data


def _load_from_root(name: str, data_dir: str, folder: str, download: bool) -> SourceData:
  """The official files in ROOT/<tfds name>/, or TFDS data prepared under ROOT."""
  missing = _missing_local(name, folder)
  if missing is None:
    logging.info("%s: reading %s", name, folder)
    return _read_local(name, folder)
  tfds_data = _load_tfds(name, data_dir, download) if _looks_tfds(folder, download) else None
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
  return tuple(f for pair in IDX_FILES.values() for f in pair)


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
    train = _read_svhn_mat(os.path.join(folder, "train_32x32.mat"))
    test = _read_svhn_mat(os.path.join(folder, "test_32x32.mat"))
    return SourceData(name, Split(*train), Split(*test), MNIST_CLASSES)
  classes = _IDX_CLASSES[name]
  splits = [Split(*_read_idx_split(folder, split, len(classes))) for split in ("train", "test")]
  return SourceData(name, splits[0], splits[1], classes)


# ------------------------------------------------------------ folder, npz
def _load_folder(path: str) -> SourceData:
  images, groups, names = _read_image_folder(path)
  logging.info(
    "folder:%s: %d images (%s) in %d sub-folders",
    path,
    len(images),
    _shape_text(images.shape[1:]),
    len(names),
  )
  train, test = _split_off_test(Split(images, groups))
  return SourceData(f"folder:{path}", train, test, names)


def _load_npz(path: str) -> SourceData:
  images, dist, labels = _read_npz(path)
  logging.info("npz:%s: %d images, %d distributions", path, len(images), len(np.unique(dist)))
  if labels is None:
    labels = dist
  num = int(labels.max()) + 1
  names = tuple(str(i) for i in range(num))
  train, test = _split_off_test(Split(images, labels, dist))
  return SourceData(f"npz:{path}", train, test, names)


def load_source(name: str, data_dir: str | None = None, download: bool = False) -> SourceData:
  """Loads a dataset's train and test splits as uint8 arrays.

  Args:
    name: 'mnist', 'fashion_mnist', 'svhn' (or 'svhn_cropped'), 'folder:PATH',
      'npz:PATH', or 'tfds:NAME' / 'tfds:NAME:FEATURE' (any TFDS image dataset).
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
  if name.startswith("folder:"):
    return _load_folder(os.path.expanduser(name[len("folder:") :]))
  if name.startswith("npz:"):
    return _load_npz(os.path.expanduser(name[len("npz:") :]))
  if name.startswith("tfds:"):
    return _load_tfds_dataset(name, data_dir, download)
  if name == "svhn_cropped":
    name = "svhn"
  if name not in _TFDS_NAMES:
    raise DataError(
      f"unknown data source {name!r}; choose mnist, fashion_mnist, svhn, folder:PATH, "
      "npz:PATH or tfds:NAME"
    )
  return _load_named(name, data_dir, download)
