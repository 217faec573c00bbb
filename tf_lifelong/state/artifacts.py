"""Files a run leaves behind, written atomically: a reader never sees half a file.

Each file is written under a temporary name in the same folder and renamed over
the final name (`os.replace` is atomic on POSIX file systems; files.py does the
same on any file system TensorFlow knows, e.g. `gs://`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any

from tf_lifelong.state import files

METRIC_COLUMNS = (
  "interval",
  "distribution",
  "name",
  "is_new",
  "num_categories",
  "steps",
  "real_examples",
  "synthetic_examples",
  "wall_seconds",
  "test_neg_elbo_seen",
  "test_neg_elbo_full",
  "consistency",
  "grad_norm",
)
"""The columns of workdir/metrics.csv, one row per interval."""
DETECT_COLUMNS = ("first_chunk", "last_chunk", "chunks", "decision", "truth")
"""Further columns of a task-free run's rows (task_free.py): its chunks, how the
interval began (new / return) and the true distribution of most of its chunks."""


atomic_path = files.atomic_path
"""Yields a temporary path next to `path`; renames it over `path` on success (files.py)."""


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically, on any file system (files.py)."""
  files.write_text(path, text)


def write_json(path: str, value: Any) -> None:
  write_text(path, json.dumps(value, indent=2, sort_keys=True, default=jsonable) + "\n")


def write_json_lines(path: str, values: Sequence[Any]) -> None:
  """Writes `values` as JSON lines (one compact document per line), atomically."""
  write_text(path, "".join(json.dumps(v, default=jsonable) + "\n" for v in values))


def jsonable(value: Any) -> Any:
  """json.dumps' `default`: numpy arrays and scalars as lists and numbers."""
  if hasattr(value, "tolist"):
    return value.tolist()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _clean(value: Any) -> Any:
  """Plain Python numbers; NaN and inf become None (null in JSON, empty in CSV)."""
  if hasattr(value, "item"):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def write_metrics(
  workdir: str, rows: Sequence[dict[str, Any]], columns: Sequence[str] = METRIC_COLUMNS
) -> None:
  """Writes metrics.csv and metrics.jsonl (the same rows) in `workdir`."""
  if any("first_chunk" in row for row in rows):
    columns = (*columns, *(c for c in DETECT_COLUMNS if c not in columns))
  buf = io.StringIO()
  writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
  writer.writeheader()
  for row in rows:
    writer.writerow({k: _format(_clean(row.get(k))) for k in columns})
  write_text(os.path.join(workdir, "metrics.csv"), buf.getvalue())
  lines = [json.dumps({k: _clean(v) for k, v in row.items()}, sort_keys=False) for row in rows]
  write_text(os.path.join(workdir, "metrics.jsonl"), "".join(line + "\n" for line in lines))


def _format(value: Any) -> Any:
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.6g}"
  return value


def read_metrics(workdir: str) -> list[dict[str, Any]]:
  """Reads the rows of metrics.jsonl (empty list if there is none)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not files.exists(path):
    return []
  return [json.loads(line) for line in files.read_text(path).splitlines() if line.strip()]
