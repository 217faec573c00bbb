"""Atomic files and the metrics table."""

import csv
import json
import math
import os

import pytest

from tf_lifelong.state import artifacts


def test_metrics_csv_and_jsonl_hold_the_same_rows(tmp_path):
  rows = [{c: i for c in artifacts.METRIC_COLUMNS} for i in range(3)]
  rows[1]["consistency"] = math.nan
  rows[2]["extra"] = [1, 2]
  artifacts.write_metrics(str(tmp_path), rows)
  with open(tmp_path / "metrics.csv") as f:
    table = list(csv.DictReader(f))
  assert list(table[0]) == list(artifacts.METRIC_COLUMNS)
  assert [r["interval"] for r in table] == ["0", "1", "2"]
  assert table[1]["consistency"] == ""
  back = artifacts.read_metrics(str(tmp_path))
  assert back[1]["consistency"] is None and back[2]["extra"] == [1, 2]


def test_atomic_path_leaves_old_file_on_failure(tmp_path):
  path = tmp_path / "a.json"
  artifacts.write_json(str(path), {"v": 1})
  with pytest.raises(RuntimeError):
    with artifacts.atomic_path(str(path)) as tmp:
      with open(tmp, "w") as f:
        f.write("half")
      raise RuntimeError("killed")
  assert json.loads(path.read_text()) == {"v": 1}
  assert os.listdir(tmp_path) == ["a.json"]
