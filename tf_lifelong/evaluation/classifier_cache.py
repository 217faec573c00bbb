"""The consistent-sampling classifier of a stream, trained once and cached on disk.

    classifier = classifier_cache.stream_classifier(stream, workdir)

The classifier (`sampling_metrics.train_classifier`: an MLP over the stream's
distribution ids, fitted on their *training* splits only) is the same for every
run of the same stream, so it is trained once and kept in two places:

- the workdir, `W/sampling_classifier/` (a resumed or continued run loads it;
  local workdirs only);
- the user cache, `$TF_LIFELONG_CACHE/classifiers/<key>/` (default
  `$XDG_CACHE_HOME/tf_lifelong`, else `~/.cache/tf_lifelong`; `TF_LIFELONG_CACHE=`
  set empty turns it off), shared by every run and `bin/experiment` on the machine.

The key is a hash of what the classifier depends on: the stream's distributions
(ids, names, image shape and the training images' bytes) and the training
settings (`SETTINGS` with the caller's changes). A cached copy of another key is
never used. The folder's `classifier.json` records the key, the class ids, the
test accuracy and `train_seconds`, the wall time of the training.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time

import numpy as np

from tf_lifelong.evaluation import sampling_metrics
from tf_lifelong.state import files

WORKDIR_FOLDER = "sampling_classifier"
VERSION = 1
"""Bump when train_classifier changes, so that older cached classifiers are not reused."""
SETTINGS = {"epochs": 3, "hidden_units": 256, "max_per_class": 2000, "seed": 0}
"""The training settings of the per-interval classifier (and of bin/experiment's)."""


def cache_root() -> str | None:
  """The user cache folder (None: turned off with an empty TF_LIFELONG_CACHE)."""
  root = os.environ.get("TF_LIFELONG_CACHE")
  if root is not None:
    return root or None
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "tf_lifelong")


def stream_key(stream, settings: dict) -> str:
  """A hex digest of the stream's distributions (training images included) and `settings`."""
  digest = hashlib.sha256()
  digest.update(json.dumps({"version": VERSION, **settings}, sort_keys=True).encode())
  for i in sorted(stream.distributions):
    dist = stream.distributions[i]
    images = np.ascontiguousarray(dist.train.images)
    digest.update(json.dumps([int(i), dist.name, list(images.shape), str(images.dtype)]).encode())
    digest.update(images.tobytes())
  return digest.hexdigest()[:32]


def _load(folder: str | None, key: str) -> sampling_metrics.Classifier | None:
  """The classifier saved in `folder` if it is of `key` (None otherwise or unreadable)."""
  if folder is None or not sampling_metrics.Classifier.exists(folder):
    return None
  try:
    classifier = sampling_metrics.Classifier.load(folder)
  except (OSError, ValueError, KeyError):
    return None
  return classifier if classifier.meta.get("key") == key else None


def _save(classifier: sampling_metrics.Classifier, folder: str | None) -> None:
  """Saves into `folder` atomically (a temporary sibling renamed); best effort."""
  if folder is None:
    return
  try:
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    partial = tempfile.mkdtemp(dir=parent, prefix=".classifier-")
    classifier.save(partial)
    if os.path.isdir(folder):
      shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)
  except OSError:
    shutil.rmtree(locals().get("partial", ""), ignore_errors=True)


def stream_classifier(
  stream, workdir: str | None = None, *, folder: str | None = None, write: bool = True, **changes
) -> sampling_metrics.Classifier:
  """The stream's classifier: from the workdir, else the user cache, else trained (and saved).

  Args:
    stream: a data.streams.Stream; the classes are all of its distributions.
    workdir: the run's folder (its copy in `WORKDIR_FOLDER`); None or a URL: none.
    folder: the local copy's folder instead of the workdir's (bin/experiment's).
    write: whether to save what was not there (False on non-chief workers).
    **changes: training settings other than `SETTINGS` (part of the key).

  Returns:
    The Classifier; its `meta` holds `key`, `train_seconds` and `source`
    (`workdir`, `cache` or `trained`: where this call found it).
  """
  settings = {**SETTINGS, **changes}
  key = stream_key(stream, settings)
  local = None if workdir is None or files.is_url(workdir) else workdir
  mine = folder or (os.path.join(local, WORKDIR_FOLDER) if local else None)
  root = cache_root()
  shared = os.path.join(root, "classifiers", key) if root else None
  classifier = _load(mine, key)
  if classifier is not None:
    classifier.meta["source"] = "workdir"
    return classifier
  classifier = _load(shared, key)
  if classifier is not None:
    classifier.meta["source"] = "cache"
  else:
    start = time.monotonic()
    classifier = sampling_metrics.train_classifier(stream, sorted(stream.distributions), **settings)
    classifier.meta.update(key=key, train_seconds=round(time.monotonic() - start, 2))
    classifier.meta["source"] = "trained"
    if write:
      _save(classifier, shared)
  if write:
    _save(classifier, mine)
  return classifier
