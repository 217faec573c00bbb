"""The endless-stretch benchmark (benchmarks/stretch.py): its configurations and a two-chunk run."""

from tests import paths
from tf_lifelong.benchmarks import stretch


def _payload(variant, chunks):
  return {
    "variant": variant,
    "chunks": chunks,
    "dataset": "mnist",
    "data_dir": paths.DATA_ROOT,
    "threads": 0,
    "seed": 0,
  }


def test_the_variants_bound_the_interval_or_keep_everything_and_train_every_chunk():
  bounded = stretch.stretch_config(_payload("bounded", 100))
  unbounded = stretch.stretch_config(_payload("unbounded", 100))
  assert bounded.interval_buffer == 10000 < 100 * bounded.chunk_size
  assert unbounded.interval_buffer > 100 * unbounded.chunk_size
  for config in (bounded, unbounded):
    assert config.boundaries == "detect"
    budget = config.max_steps_per_interval - config.eval_every
    assert budget >= 100 * config.chunk_steps  # task_free trains a chunk within the budget


def test_two_chunks_report_what_the_open_interval_keeps_and_the_summary_reads_them():
  out = stretch.run_variant(_payload("bounded", 2))
  rows = out["rows"]
  assert [r["kept"] for r in rows] == [1000, 2000]
  assert [r["decision"] for r in rows][0] == "new"
  assert all(r["disk_mb"] > 0 and r["rss_mb"] > 100 and r["cpu_seconds"] > 0 for r in rows)
  rows = [dict(rows[i % 2], chunk=i, kept=min(1000 * (i + 1), 10000)) for i in range(20)]
  text = stretch.summary(
    {"chunks": 20, "variants": {"bounded": {**out, "summary": stretch._summary(rows)}}}
  )
  assert "chunk 10 -> chunk 20: kept 10000 -> 10000" in text
