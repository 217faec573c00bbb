"""The serving export: writing a SavedModel that stands alone, atomically.

`export` wraps a trained encoder and decoder in a `ServingModule`
(serving/signatures.py, which states the model contract and the signatures:
sample, encode, reconstruct, elbo, metadata and `serving_default`) and writes
it as a TensorFlow SavedModel. It loads with `tf.saved_model.load` and with
TensorFlow's session-based loader (`saved_model_cli run`, TF Serving). The
export needs neither tf_lifelong nor TensorFlow Probability at load time: every
op in the traced graphs is a plain TensorFlow op, and the metadata
(serving/metadata.py) is a JSON string, so `tf.saved_model.load(path)` in a
process that imports only `tensorflow` serves it, and `saved_model_cli show
--all --dir PATH` lists it.

This module is the package's entry point: it also offers `load`,
`read_metadata`, `ServingModule` and the format's constants.

Atomic write: the SavedModel is written to a temporary sibling directory
`path + ".tmp-XXXXXXXX"`, checked, then renamed to `path`. An existing export
at `path` is first renamed into a sibling `path + ".old-XXXXXXXX"` directory
and removed after the new one is in place. A failure before the rename leaves
the previous export untouched and removes the temporary directory. POSIX cannot
rename a directory over a non-empty one, so between the two renames (two
syscalls) `path` briefly does not exist; a reader never sees a partial export.

Distribution strategies: encoder and decoder whose variables were created
under a `tf.distribute` strategy scope (e.g. MirroredStrategy) export from
inside or outside that scope: the serving functions run in cross-replica
context, where a mirrored variable reads its primary copy, and
`tf.saved_model.save` with the default `SaveOptions` (variable policy NONE)
writes each distributed variable as one ordinary variable without device
placement. The export therefore loads on any device layout and without the
strategy (tests/test_export.py checks both placements of the call).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from tf_lifelong.serving.metadata import FORMAT, FORMAT_VERSION, METADATA_ASSET, read_metadata
from tf_lifelong.serving.signatures import (
  DEFAULT_SIGNATURE,
  DEFAULT_SIGNATURE_OF,
  ELBO_SEED,
  SIGNATURES,
  ServingModule,
)
from tf_lifelong.state import files

__all__ = [
  "DEFAULT_SIGNATURE",
  "DEFAULT_SIGNATURE_OF",
  "ELBO_SEED",
  "FORMAT",
  "FORMAT_VERSION",
  "METADATA_ASSET",
  "SIGNATURES",
  "ServingModule",
  "export",
  "load",
  "read_metadata",
]


def export(
  encoder: Any,
  decoder: Any,
  *,
  num_categories: int,
  continuous_dim: int,
  image_shape: tuple[int, int, int] | list[int],
  metadata: Mapping[str, Any] | None,
  path: str,
  written: Callable[[], None] | None = None,
) -> str:
  """Writes the serving SavedModel of `encoder` and `decoder` to `path`, atomically.

  Args:
    encoder: `encoder(x, training=False) -> (logits [B,J], loc [B,F], scale [B,F])`.
    decoder: `decoder(z [B,J+F], training=False) -> logits [B,H,W,C]`.
    num_categories: J.
    continuous_dim: F.
    image_shape: (H, W, C).
    metadata: JSON-serialisable mapping stored with the export (distributions
      seen, configuration, ...); None for none.
    path: the export directory. Its parent is created if needed; an existing
      export there is replaced only once the new one is complete.
    written: called once the SavedModel lies complete in its temporary folder,
      before the rename (an observer's hook: milestones.py).

  Returns:
    The absolute path of the export.

  Raises:
    ValueError: bad sizes or metadata; an encoder or decoder whose outputs do
      not have the contract's shapes (nothing is written, any previous export
      is left in place).
  """
  module = ServingModule(
    encoder,
    decoder,
    num_categories=num_categories,
    continuous_dim=continuous_dim,
    image_shape=image_shape,
    metadata=metadata,
  )
  module.smoke_test()  # Fails early, before anything touches the disk.

  path = files.absolute(os.fspath(path))
  files.makedirs(os.path.dirname(path))
  tmp = files.temporary_sibling(path, "tmp")
  try:
    _write(module, tmp)
  except BaseException:
    files.rmtree(tmp)
    raise
  if written is not None:
    written()
  _replace(tmp, path)
  return path


def _write(module: ServingModule, folder: str) -> None:
  """Saves `module` as a SavedModel in `folder`, with its metadata asset, and checks the files.

  Raises:
    RuntimeError: a file that every export has is missing from `folder`.
  """
  with tempfile.TemporaryDirectory() as asset_dir:
    asset_file = os.path.join(asset_dir, METADATA_ASSET)
    with open(asset_file, "w") as f:
      f.write(module.metadata_json)
    module.metadata_asset = tf.saved_model.Asset(asset_file)
    tf.saved_model.save(module, folder, signatures=module.signatures())
  for required in ("saved_model.pb", "variables", os.path.join("assets", METADATA_ASSET)):
    if not files.exists(os.path.join(folder, required)):
      raise RuntimeError(f"tf_lifelong export: {required} missing from the written SavedModel")


def _replace(tmp: str, path: str) -> None:
  """Renames the complete export `tmp` to `path`, moving any previous export aside first.

  On a failed rename the previous export goes back to `path` and `tmp` is removed.
  """
  base = os.path.basename(path)
  old_dir = None
  if files.exists(path):
    old_dir = files.temporary_sibling(path, "old")
    files.move_tree(path, os.path.join(old_dir, base))
  try:
    files.move_tree(tmp, path)
  except BaseException:
    if old_dir is not None:
      files.move_tree(os.path.join(old_dir, base), path)
      files.rmtree(old_dir)
    files.rmtree(tmp)
    raise
  if old_dir is not None:
    files.rmtree(old_dir)


def load(path: str) -> Any:
  """Loads an export with plain TensorFlow (`tf.saved_model.load`).

  The result has `.signatures["sample" | "encode" | "reconstruct" | "elbo" |
  "metadata"]` (call them with keyword arguments; they return dicts) and the
  restored `tf.function`s of the same names.
  """
  return tf.saved_model.load(os.fspath(path))
