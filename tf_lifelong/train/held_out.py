"""What an unlabelled task-free stream is evaluated on: each component's held-out images,
kept in W/heldout/distribution-<id>.npy (task_free.py).

A stream without truth has no test split. The held-out share of each chunk
(`validation_fraction`, never trained on; early stopping reads it) is what its
interval is measured on: when the interval that adds a component ends, up to
`ROWS` of its held-out images, evenly spaced over its chunks, become that
component's evaluation set for every later row (test_neg_elbo_seen / full,
neg_elbo_per_distribution, consistency). They are written to disk so that a
resumed run, `bin/train --continue` and `Learner.load` evaluate on the same
images.
"""

from __future__ import annotations

import io
import os

import numpy as np

from tf_lifelong.data import sources
from tf_lifelong.state import files

FOLDER = "heldout"
ROWS = 1000
"""Held-out images kept per component (evenly spaced over its first interval's chunks)."""
_PREFIX = "distribution-"


def _path(workdir: str, ident: int) -> str:
  return os.path.join(workdir, FOLDER, f"{_PREFIX}{ident}.npy")


def choose(images: np.ndarray) -> np.ndarray:
  """At most ROWS of `images`, evenly spaced (all when there are fewer)."""
  if len(images) <= ROWS:
    return images
  return images[np.linspace(0, len(images) - 1, ROWS).round().astype(np.int64)]


def write(workdir: str, ident: int, images: np.ndarray) -> None:
  """Keeps `images` as distribution `ident`'s evaluation set."""
  buffer = io.BytesIO()
  np.save(buffer, images, allow_pickle=False)
  files.makedirs(os.path.join(workdir, FOLDER))
  files.write_bytes(_path(workdir, ident), buffer.getvalue())


def adopt(learner, ident: int, held: np.ndarray) -> None:
  """Makes `choose(held)` distribution `ident`'s evaluation set: on disk (the chief) and
  in the learner's evaluation after each interval (`learner.add_tests`)."""
  images = choose(held)
  if learner.ctx.chief:
    write(learner.workdir, ident, images)
  learner.add_tests({ident: sources.Split(images, np.zeros(len(images), np.int64))})


def read_all(workdir: str) -> dict[int, sources.Split]:
  """Every kept evaluation set, by distribution id ({} when there are none).

  Raises:
    DataError: a file is unreadable.
  """
  folder = os.path.join(workdir, FOLDER)
  try:
    names = files.listdir(folder)
  except (OSError, files.not_found()):
    return {}
  out = {}
  for name in sorted(names):
    if not (name.startswith(_PREFIX) and name.endswith(".npy")):
      continue
    path = os.path.join(folder, name)
    try:
      images = np.load(io.BytesIO(files.read_bytes(path)), allow_pickle=False)
    except (OSError, ValueError, files.not_found()) as e:
      raise sources.DataError(
        f"the held-out images {path} are unreadable ({e}); pass --overwrite to start afresh"
      ) from None
    out[int(name[len(_PREFIX) : -len(".npy")])] = sources.Split(
      images, np.zeros(len(images), np.int64)
    )
  return out
