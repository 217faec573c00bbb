"""What a user hands the learner for one interval, as one `Distribution`.

    dist = as_distribution(images, ident=3, name="cats", validation=None, fraction=0.1)

`Learner.learn(data, ...)` accepts (method.md section 9: one interval is one
distribution):

- a numpy array of images: uint8 in 0..255 or float in [0, 1], [N, H, W] (grey)
  or [N, H, W, C] with C = 1 or 3; or a tuple `(images, labels)`;
- a `tf.data.Dataset` of images or of `(images, labels)`, batched or not
  (it is read once, into memory: the current interval's data is the one thing
  the learner keeps);
- a source string: `folder:PATH` (the PNG/JPEG images directly in PATH),
  `npz:PATH` (an array `images`, and optionally `distribution` with a single
  id), `npy:PATH` (one .npy array of images), or `NAME:CLASS` for a class of a
  named dataset (`mnist:3`, `fashion_mnist:7` or `fashion_mnist:Sneaker`), whose
  test split comes along for evaluation. (To feed a long stream to `observe` a
  chunk at a time: data/frames.py's `Chunks`.)

Images are kept as uint8 (float pixels are rounded to 1/255, the resolution of
every source). The validation split is `validation` if given, else a fixed
held-out share `fraction` of the data chosen by a permutation keyed by the
distribution id (the same in every run). Everything wrong gives one `DataError`
that says what and how to fix it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from tf_lifelong.data import formats, frames, sources, streams
from tf_lifelong.data.sources import DataError, Split

_NAMED = ("mnist", "fashion_mnist")
"""Named datasets a `NAME:CLASS` source string can take a class from."""


def to_uint8(images: Any, what: str) -> np.ndarray:
  """Checks an image array and returns it as uint8 [N, H, W, C].

  Args:
    images: [N, H, W] or [N, H, W, C] (C = 1 or 3), uint8 0..255, another
      integer type within 0..255, or float in [0, 1].
    what: how to name the array in error messages.

  Raises:
    DataError: empty, wrong rank or channels, NaN, out of range, or another dtype.
  """
  images = np.asarray(images)
  if images.ndim == 3:
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise DataError(
      f"{what}: images must be [N, H, W] or [N, H, W, C] with C = 1 or 3, "
      f"got shape {list(images.shape)}"
    )
  if images.shape[0] == 0:
    raise DataError(f"{what}: no images (an empty array or dataset)")
  if images.dtype == np.uint8:
    return images
  if images.dtype.kind == "f":
    if not np.isfinite(images).all():
      raise DataError(f"{what}: images hold NaN or infinite pixels; use values in [0, 1]")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
      raise DataError(
        f"{what}: float images must lie in [0, 1], found [{low:g}, {high:g}] "
        "(uint8 images may use 0..255)"
      )
    return np.rint(images * 255).astype(np.uint8)
  if images.dtype.kind in "iu":
    low, high = int(images.min()), int(images.max())
    if low < 0 or high > 255:
      raise DataError(f"{what}: integer images must lie in [0, 255], found [{low}, {high}]")
    return images.astype(np.uint8)
  raise DataError(f"{what}: images must be uint8 or float in [0, 1], got {images.dtype}")


def _labels(labels: Any, n: int, what: str) -> np.ndarray:
  if labels is None:
    return np.zeros(n, np.int64)
  labels = np.asarray(labels).reshape(-1)
  if labels.shape != (n,) or labels.dtype.kind not in "iu":
    raise DataError(f"{what}: labels must be {n} integers, got {labels.dtype} {list(labels.shape)}")
  return labels.astype(np.int64)


def _from_dataset(dataset: Any, what: str) -> tuple[np.ndarray, np.ndarray | None]:
  """Reads a tf.data.Dataset of images or (images, labels), batched or not."""
  images, labels = [], []
  for element in dataset.as_numpy_iterator():
    if isinstance(element, tuple):
      if len(element) != 2:
        raise DataError(f"{what}: a dataset element must be images or (images, labels)")
      x, y = element
    else:
      x, y = element, None
    x = np.asarray(x)
    batched = x.ndim == 4 or (x.ndim == 3 and x.shape[-1] not in (1, 3))
    images.append(x if batched else x[None])
    if y is not None:
      labels.append(np.asarray(y).reshape(-1))
  if not images:
    raise DataError(f"{what}: the dataset is empty")
  shapes = {i.shape[1:] for i in images}
  if len(shapes) > 1:
    raise DataError(f"{what}: the dataset's images have several shapes {sorted(shapes)}")
  return np.concatenate(images), (np.concatenate(labels) if labels else None)


def _folder_images(path: str) -> Split:
  """The images directly in `path` (one distribution)."""
  if not os.path.isdir(path):
    raise DataError(f"{path} is not a directory of PNG/JPEG images")
  files = sorted(
    f
    for f in os.listdir(path)
    if f.lower().endswith((".png", ".jpg", ".jpeg")) and not f.startswith(".")
  )
  if not files:
    subs = [d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d))]
    hint = (
      f"; it holds {len(subs)} sub-folders: pass one (folder:{os.path.join(path, subs[0])}) or "
      f"train on all with bin/train --dataset=folder:{path}"
      if subs
      else ""
    )
    raise DataError(f"{path} holds no PNG or JPEG images{hint}")
  arrays = [formats.read_image(os.path.join(path, f)) for f in files]
  if len({a.shape for a in arrays}) > 1:
    raise DataError(f"{path}: the images do not share one size and channel count")
  return Split(np.stack(arrays), np.zeros(len(arrays), np.int64))


def _npz_images(path: str) -> Split:
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {k: npz[k] for k in npz.files}
  except (OSError, ValueError, AttributeError) as e:
    raise DataError(f"{path} is not a readable .npz file with an array 'images' ({e})") from None
  if "images" not in arrays:
    raise DataError(f"{path} has no array 'images' (it has: {', '.join(arrays) or 'none'})")
  ids = arrays.get("distribution")
  if ids is not None and len(np.unique(ids)) > 1:
    raise DataError(
      f"{path} holds {len(np.unique(ids))} distributions; learn() takes one at a time "
      f"(select one in numpy, or train on all with bin/train --dataset=npz:{path})"
    )
  images = to_uint8(arrays["images"], path)
  return Split(images, _labels(arrays.get("labels"), len(images), path))


def _class_of(name: str, cls: str, data_dir: str | None, download: bool):
  """(train, test, default name) of one class of a named dataset."""
  source = sources.load_source(name, data_dir, download)
  names = list(source.class_names)
  if cls.isdigit() and int(cls) < len(names):
    label = int(cls)
  elif cls in names:
    label = names.index(cls)
  else:
    raise DataError(f"{name} has no class {cls!r}; classes: 0..{len(names) - 1} or {names}")
  train = source.train.take(source.train.labels == label)
  test = source.test.take(source.test.labels == label)
  shown = f"digit {names[label]}" if name == "mnist" else names[label]
  return Split(train.images, train.labels), Split(test.images, test.labels), shown


def _from_source(text: str, data_dir: str | None, download: bool):
  """(train, test or None, default name) of a source string."""
  if text.startswith("folder:"):
    path = os.path.expanduser(text[len("folder:") :])
    return _folder_images(path), None, os.path.basename(os.path.normpath(path))
  if text.startswith("npz:"):
    path = os.path.expanduser(text[len("npz:") :])
    return _npz_images(path), None, os.path.splitext(os.path.basename(path))[0]
  if text.startswith("npy:"):
    source = frames.open_frames(text)
    try:
      images = source.read_all()
    finally:
      source.close()
    return Split(images, np.zeros(len(images), np.int64)), None, frames.display_name(text)
  name, _, cls = text.partition(":")
  if name in _NAMED and cls:
    return _class_of(name, cls, data_dir, download)
  raise DataError(
    f"unknown source {text!r} for one interval; use folder:PATH, npz:PATH, npy:PATH or "
    f"NAME:CLASS with NAME in {', '.join(_NAMED)} (e.g. mnist:3)"
  )


def as_split(
  data: Any, what: str, data_dir: str | None = None, download: bool = False
) -> tuple[Split, Split | None, str | None]:
  """(examples, test split or None, default name or None) of any accepted `data`."""
  if isinstance(data, streams.Distribution):
    return data.train, data.test, data.name
  if isinstance(data, str):
    return _from_source(data, data_dir, download)
  if hasattr(data, "as_numpy_iterator"):
    images, labels = _from_dataset(data, what)
  elif isinstance(data, tuple) and len(data) == 2:
    images, labels = data
  else:
    images, labels = data, None
  images = to_uint8(images, what)
  return Split(images, _labels(labels, len(images), what)), None, None


def as_distribution(
  data: Any,
  *,
  ident: int,
  name: str,
  validation: Any = None,
  fraction: float = 0.1,
  data_dir: str | None = None,
  download: bool = False,
) -> streams.Distribution:
  """The interval's Distribution: train and validation splits, and a test split if known.

  A `streams.Distribution` passes through unchanged (its splits are a stream's).

  Raises:
    DataError: bad data (see the module docstring), or too few examples to
      hold a validation share out.
  """
  if isinstance(data, streams.Distribution):
    return data
  train, test, _ = as_split(data, "data", data_dir, download)
  if validation is not None:
    held, _, _ = as_split(validation, "validation", data_dir, download)
  else:
    if len(train) < 2:
      raise DataError(
        f"data: {len(train)} image(s) leave none for the validation split; "
        "give at least 2, or pass validation="
      )
    kept, held_index = sources.holdout(len(train), fraction, (streams._VALIDATION_SALT, ident))
    train, held = train.take(kept), train.take(held_index)
  if held.images.shape[1:] != train.images.shape[1:]:
    raise DataError(
      f"validation images are {list(held.images.shape[1:])}, the data's "
      f"{list(train.images.shape[1:])}"
    )
  if test is None:
    test = Split(train.images[:0], train.labels[:0])
  return streams.Distribution(ident, name, train, held, test)
