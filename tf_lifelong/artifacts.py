"""Files a run leaves behind, written atomically: a reader never sees half a file.

Each file is written under a temporary name in the same folder and renamed over
the final name (`os.replace` is atomic on POSIX file systems).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

METRIC_COLUMNS = (
  "interval",
  "distribution",
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


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path next to `path`; renames it over `path` on success."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=folder)
  os.close(fd)
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def write_text(path: str, text: str) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())


def write_json(path: str, value: Any) -> None:
  write_text(path, json.dumps(value, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
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
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
