"""Checkpoints that can be verified: the size and SHA-256 of every file a checkpoint wrote.

    record["files"] = integrity.file_records(folder, "interval-002")   # at save, after the files
    problem = integrity.damage(folder, record)                         # None: sound

A checkpoint's record (`NAME.json`, checkpoints.py) lists under `files` each
file of the checkpoint (`NAME.index`, every `NAME.data-*` shard, `NAME.best.npz`)
with its size and checksum, taken after TensorFlow wrote them and before the
record that makes the checkpoint count. `damage` reads them back: a missing file,
a truncated or grown one, or one whose bytes changed is named. A record from
before this check (no `files`) is checked for its index file only.
"""

from __future__ import annotations

import hashlib
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
  name = record["checkpoint"]
  listed = record.get(FILES)
  if listed is None:  # A record from before the checksums: its index must be there.
    listed = {f"{name}.index": None}
  if not isinstance(listed, dict) or not any(n.endswith(".index") for n in listed):
    return "its record lists no index file"
  for file_name, expected in sorted(listed.items()):
    path = files.join(folder, file_name)
    if not files.exists(path):
      return f"{file_name} is missing"
    if expected is None:
      continue
    try:
      found = digest(path)
    except (OSError, files.not_found()) as e:
      return f"{file_name} cannot be read ({getattr(e, 'strerror', None) or e})"
    if found["size"] != expected.get("size"):
      return f"{file_name} has {found['size']} bytes, its record says {expected.get('size')}"
    if found["sha256"] != expected.get("sha256"):
      return f"{file_name} does not match its checksum"
  return None
