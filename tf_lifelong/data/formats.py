"""Readers of dataset files into uint8 arrays, each input checked, each defect a DataError.

One reader per file format: IDX (MNIST, Fashion-MNIST; .gz or not), the SVHN
cropped-digit MATLAB files, folders of PNG/JPEG images (one sub-folder per
distribution) and .npz archives (`images`, `distribution`, optional `labels`).
Time-ordered sources (an .npz without `distribution`, an .npy, a folder of
frames) are read a chunk at a time by `frames` and `npy_rows`.
They return arrays, not `SourceData`: which files make a dataset, and how its
test split is chosen, is `sources`' business. Every malformed file raises a
one-line `DataError` that names it and says how to fix it.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image
from scipy import io as scipy_io

from tf_lifelong.data.splits import DataError, first_line

IDX_FILES = {
  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
"""The four official IDX files of MNIST and Fashion-MNIST, by split (images, labels)."""
_IDX_MAGIC = {3: 2051, 1: 2049}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""The image files a folder source reads (lower-cased suffixes)."""


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
      f"{path} is corrupt or truncated ({first_line(e)}); replace it with the official file"
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


def read_idx_split(folder: str, split: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
  """The images uint8 [N, H, W, 1] and labels int64 [N] of one split's two IDX files.

  Raises:
    DataError: a bad file, files of different lengths, or a label >= num_classes.
  """
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


def read_svhn_mat(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Official SVHN cropped digits: X uint8 [32, 32, 3, N], y [N, 1] with 10 for 0."""
  try:
    mat = scipy_io.loadmat(path, variable_names=["X", "y"])
  except FileNotFoundError:
    raise DataError(f"{path} not found") from None
  except (OSError, ValueError, TypeError, NotImplementedError, zlib.error) as e:
    raise DataError(
      f"{path} is not a readable MATLAB v5 file ({first_line(e)}); "
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


def read_image(path: str) -> np.ndarray:
  """Decodes one PNG/JPEG into uint8 [H, W, C], C = 1 (grey) or 3."""
  try:
    with Image.open(path) as image:
      grey = image.mode in ("1", "L", "LA", "I", "I;16", "F")
      array = np.asarray(image.convert("L" if grey else "RGB"), np.uint8)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise DataError(
      f"{path} is not a readable image ({first_line(e)}); replace or remove it"
    ) from None
  return array[..., None] if array.ndim == 2 else array


def read_image_folder(path: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
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
      if f.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(folder, f))
    )
    if not files:
      raise DataError(
        f"{folder} holds no PNG or JPEG images; every distribution "
        "folder needs some (or remove the folder)"
      )
    for file in files:
      file_path = os.path.join(folder, file)
      array = read_image(file_path)
      if first is None:
        first = (array.shape, file_path)
      elif array.shape != first[0]:
        raise DataError(
          f"{file_path} is {shape_text(array.shape)} but {first[1]} is "
          f"{shape_text(first[0])}; all images must share one size and "
          "channel count (resize or convert them)"
        )
      images.append(array)
      groups.append(index)
  return np.stack(images), np.asarray(groups, np.int64), tuple(names)


def shape_text(shape: tuple[int, ...]) -> str:
  """[H, W, C] as the messages write it: 'WxH grey' or 'WxH RGB'."""
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


def read_npz(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
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
    raise DataError(f"{path} is not a readable .npz file ({first_line(e)})") from None
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
