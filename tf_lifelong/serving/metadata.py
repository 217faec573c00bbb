"""The metadata document of a serving export: the caller's facts merged with the export's own.

The document is one JSON object. The export's own facts (the format and its
version, the tf_lifelong and TensorFlow versions, J, F, the image shape, the
signature names, the default signature and the `elbo` seed) are reserved keys:
a caller's metadata may repeat one but never contradict it. The document is
served by the `metadata` signature and written beside the SavedModel as
`assets/tf_lifelong.json`, which `read_metadata` reads without TensorFlow.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import tensorflow as tf

from tf_lifelong import __version__
from tf_lifelong.state import files

FORMAT = "tf_lifelong.serving"
FORMAT_VERSION = 1
METADATA_ASSET = "tf_lifelong.json"
"""File name of the metadata JSON under the SavedModel's assets/ directory."""


def _json_default(obj: Any) -> Any:
  """Converts numpy scalars and arrays (anything with `tolist`) for JSON."""
  if hasattr(obj, "tolist"):
    return obj.tolist()
  raise TypeError(f"metadata value {obj!r} of type {type(obj).__name__} is not JSON serialisable")


def build_metadata(metadata: Mapping[str, Any] | None, facts: Mapping[str, Any]) -> str:
  """Merges the caller's metadata with the export's own facts into a JSON string.

  Args:
    metadata: the caller's JSON-serialisable mapping (string keys); None for none.
    facts: the serving module's own facts (`num_categories`, `continuous_dim`,
      `image_shape`, `signatures`, `default_signature`, `elbo_seed`), JSON
      values; the format and the versions are added here. All are reserved keys.

  Returns:
    The document, JSON with sorted keys.

  Raises:
    TypeError: a key that is not a string.
    ValueError: metadata that contradicts a reserved key or is not JSON serialisable.
  """
  own = {
    "format": FORMAT,
    "format_version": FORMAT_VERSION,
    "tf_lifelong_version": __version__,
    "tensorflow_version": tf.__version__,
    **facts,
  }
  merged = dict(metadata or {})
  for key in merged:
    if not isinstance(key, str):
      raise TypeError(f"metadata keys must be strings, got {key!r}")
  for key in own:
    if key in merged:
      # A caller may repeat a fact, never contradict it.
      if json.loads(json.dumps(merged[key], default=_json_default)) != own[key]:
        raise ValueError(
          f"metadata[{key!r}] = {merged[key]!r} contradicts the export's own value {own[key]!r}"
        )
  merged.update(own)
  try:
    return json.dumps(merged, sort_keys=True, allow_nan=False, default=_json_default)
  except (TypeError, ValueError) as e:
    raise ValueError(f"metadata must be JSON serialisable (no NaN/inf): {e}") from e


def read_metadata(path: str) -> dict[str, Any]:
  """Reads an export's metadata from `assets/tf_lifelong.json` (no TensorFlow needed).

  Raises:
    FileNotFoundError: `path` is not a tf_lifelong export.
  """
  asset = os.path.join(os.fspath(path), "assets", METADATA_ASSET)
  if not files.exists(asset):
    raise FileNotFoundError(f"{path} is not a tf_lifelong export: {asset} is missing")
  return json.loads(files.read_text(asset))
