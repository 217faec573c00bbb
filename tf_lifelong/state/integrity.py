"""Checkpoints that can be verified: the size and SHA-256 of every file a checkpoint wrote.

    record["files"] = integrity.file_records(folder, "interval-002")   # at save, after the files
    problem = integrity.damage(folder, record)                         # None: sound

A checkpoint's record (`NAME.json`, checkpoints.py) lists under `files` each
file of the checkpoint (`NAME.index`, every `NAME.data-*` shard, `NAME.best.npz`)
with its size and checksum, taken after TensorFlow wrote them and before the
record that makes the checkpoint count. `damage` reads them back: a missing file,
a truncated or grown one, or one whose bytes changed is named. A record from
before these checks (no `files`) gets a structural check instead: every tensor
of its checkpoint is read back (TensorFlow checks each one's CRC-32C on the
way) and its best weights are loaded, and any failure is damage.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

from tf_lifelong.state import files

FILES = "files"
"""The record's key of the checkpoint's files: {file name: {"size": n, "sha256": hex}}."""
_CHUNK = 1 << 22


def checkpoint_files(folder: str, name: str) -> list[str]:
  """The names of checkpoint `name`'s files in `folder`: its index, data shards and best
  weights (not its JSON record)."""
  return sorted(
    n
    for n in files.listdir(folder)
    if n in (f"{name}.index", f"{name}.best.npz") or n.startswith(f"{name}.data-")
  )


def file_records(folder: str, name: str) -> dict[str, dict[str, Any]]:
  """{file name: {"size", "sha256"}} of checkpoint `name`'s files (`checkpoint_files`)."""
  return {n: digest(files.join(folder, n)) for n in checkpoint_files(folder, name)}


def digest(path: str) -> dict[str, Any]:
  """{"size": bytes, "sha256": hex digest} of a file (read in chunks; URLs through gfile)."""
  sha, size = hashlib.sha256(), 0
  with _open(path) as f:
    while chunk := f.read(_CHUNK):
      sha.update(chunk)
      size += len(chunk)
  return {"size": size, "sha256": sha.hexdigest()}


def _open(path: str):
  if files.is_url(path):
    import tensorflow as tf  # noqa: PLC0415 - only for URLs

    return tf.io.gfile.GFile(path, "rb")
  return open(path, "rb")


def damage(folder: str, record: dict[str, Any]) -> str | None:
  """What is wrong with the files of the checkpoint `record` describes; None if sound."""
  listed = record.get(FILES)
  if listed is None:  # A record from before the checksums: every tensor must read back.
    return unreadable(folder, record)
  if not isinstance(listed, dict) or not any(n.endswith(".index") for n in listed):
    return "its record lists no index file"
  for file_name, expected in sorted(listed.items()):
    path = files.join(folder, file_name)
    if not files.exists(path):
      return f"{file_name} is missing"
    if not isinstance(expected, dict):
      return f"its record holds no size and checksum of {file_name}"
    try:
      found = digest(path)
    except (OSError, files.not_found()) as e:
      return f"{file_name} cannot be read ({getattr(e, 'strerror', None) or e})"
    if found["size"] != expected.get("size"):
      return f"{file_name} has {found['size']} bytes, its record says {expected.get('size')}"
    if found["sha256"] != expected.get("sha256"):
      return f"{file_name} does not match its checksum"
  return None


def unreadable(folder: str, record: dict[str, Any]) -> str | None:
  """What keeps the checkpoint `record` describes from being read back whole, by reading it:
  its index, every tensor (checked against its CRC-32C by TensorFlow) and the best weights
  the record names; None if all of it reads. The check of a record without `files`."""
  name = record["checkpoint"]
  if not files.exists(files.join(folder, f"{name}.index")):
    return f"{name}.index is missing"
  import numpy as np  # noqa: PLC0415 - only for records from before the checksums
  import tensorflow as tf  # noqa: PLC0415

  try:
    reader = tf.train.load_checkpoint(files.join(folder, name))
    for key in sorted(reader.get_variable_to_shape_map()):
      reader.get_tensor(key)
  except Exception as e:  # noqa: BLE001 - any failure to read it back (IndexError "Read less
    # bytes than requested", DataLossError, NotFoundError, ...) is damage.
    return f"its tensors cannot be read back ({_one_line(e)})"
  best = record.get("best_weights")
  if best:
    try:
      with np.load(io.BytesIO(files.read_bytes(files.join(folder, best)))) as arrays:
        for key in arrays.files:
          arrays[key]
    except Exception as e:  # noqa: BLE001 - as above
      return f"{best} cannot be read ({_one_line(e)})"
  return None


def _one_line(error: BaseException, limit: int = 200) -> str:
  """An error's message on one line, cut at `limit` characters."""
  text = " ".join(str(error).split()) or type(error).__name__
  return text if len(text) <= limit else text[:limit] + "..."
