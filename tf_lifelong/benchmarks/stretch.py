"""The endless-stretch benchmark: a task-free learner fed one distribution for N chunks.

    bin/benchmark --output=stretch.json --stretch_chunks=100

A stationary stream (every image of the dataset's training and test files, shuffled,
and reshuffled for as many passes as the chunks need) is fed to `Learner.observe` in
chunks of `chunk_size`, with the default configuration but a step budget that lets
every chunk train (`chunk_steps` each). After each chunk it records the chunk's wall
time (decision, training, checkpoint), the decision's seconds, the process's resident
memory (VmRSS), the workdir's size on disk and how many examples the open interval
keeps. Two variants, each in a fresh process (its memory its own, child_process.py):
`bounded` (the default `--interval_buffer`) and `unbounded` (a buffer larger than the
stream: every example kept, the behaviour before the bound). The summary compares
chunks 1-10 with chunks N-9..N.
"""

from __future__ import annotations

import os
import time

import numpy as np

from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks import child_process

VARIANTS = ("bounded", "unbounded")
WINDOW = 10
"""Chunks averaged at the start and at the end of the stretch."""


def stretch_config(payload: dict) -> config_lib.Config:
  """The learner's configuration: defaults, detect, a budget that trains every chunk."""
  chunks = int(payload["chunks"])
  base = config_lib.Config(
    boundaries="detect",
    threads=int(payload["threads"]),
    seed=int(payload["seed"]),
    sampling_samples=0,
  )
  buffer = (
    base.interval_buffer if payload["variant"] == "bounded" else (chunks + 1) * base.chunk_size
  )
  return base.replace_checked(
    interval_buffer=buffer,
    max_steps_per_interval=(chunks + 1) * base.chunk_steps + base.eval_every,
  )


def _stream(dataset: str, data_dir: str, seed: int, count: int) -> np.ndarray:
  from tf_lifelong.data import sources  # noqa: PLC0415

  source = sources.load_source(dataset, data_dir)
  images = np.concatenate([source.train.images, source.test.images])
  rng = np.random.default_rng(seed)
  passes = -(-count // len(images))
  return np.concatenate([images[rng.permutation(len(images))] for _ in range(passes)])[:count]


def _rss_mb() -> float:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _disk_mb(path: str) -> float:
  total = 0
  for folder, _, names in os.walk(path):
    total += sum(os.path.getsize(os.path.join(folder, n)) for n in names)
  return total / 2**20


def run_variant(payload: dict) -> dict:
  """One variant in this process (the child's side): a row per chunk."""
  import tempfile  # noqa: PLC0415

  from tf_lifelong import Learner  # noqa: PLC0415

  config = stretch_config(payload)
  chunks = int(payload["chunks"])
  images = _stream(payload["dataset"], payload["data_dir"], config.seed, chunks * config.chunk_size)
  workdir = tempfile.mkdtemp(prefix="stretch-")
  learner = Learner(config, workdir, out=open(os.devnull, "w"))
  rows = []
  for c in range(chunks):
    started = time.monotonic()
    decision = learner.observe(images[c * config.chunk_size : (c + 1) * config.chunk_size])
    seconds = time.monotonic() - started
    interval = learner._task_free.open
    rows.append(
      {
        "chunk": c,
        "seconds": round(seconds, 3),
        "decision_seconds": round(decision.seconds, 3),
        "decision": decision.decision,
        "rss_mb": round(_rss_mb(), 1),
        "disk_mb": round(_disk_mb(workdir), 2),
        "kept": len(interval.train) + len(interval.held),
      }
    )
  learner.close()
  return {"interval_buffer": config.interval_buffer, "chunk_size": config.chunk_size, "rows": rows}


def _window(rows: list[dict], key: str, last: bool) -> float:
  part = rows[-WINDOW:] if last else rows[:WINDOW]
  return float(np.mean([r[key] for r in part]))


def run(settings, chunks: int, log=print) -> dict:
  """Both variants, one after the other, each in a fresh process."""
  result = {"chunks": chunks, "dataset": settings.dataset, "variants": {}}
  for variant in VARIANTS:
    log(f"stretch: {variant}, {chunks} chunks")
    payload = {
      "variant": variant,
      "chunks": chunks,
      "dataset": settings.dataset,
      "data_dir": settings.data_dir,
      "threads": settings.threads,
      "seed": settings.seed,
    }
    out = child_process.run_json_child(__name__, "run_variant", payload)
    rows = out["rows"]
    out["summary"] = {
      f"{key}_{where}": round(_window(rows, key, where == "last"), 3)
      for key in ("seconds", "decision_seconds", "rss_mb", "disk_mb", "kept")
      for where in ("first", "last")
    }
    result["variants"][variant] = out
  return result


def summary(result: dict) -> str:
  """A line per variant: chunks 1-10 against the last 10."""
  lines = []
  for variant, out in result["variants"].items():
    s = out["summary"]
    lines.append(
      f"{variant} (interval_buffer {out['interval_buffer']}): seconds per chunk "
      f"{s['seconds_first']:.2f} -> {s['seconds_last']:.2f}, decision "
      f"{s['decision_seconds_first']:.2f} -> {s['decision_seconds_last']:.2f}, RSS "
      f"{s['rss_mb_first']:.0f} -> {s['rss_mb_last']:.0f} MB, disk {s['disk_mb_first']:.1f} -> "
      f"{s['disk_mb_last']:.1f} MB, kept {s['kept_first']:.0f} -> {s['kept_last']:.0f} "
      f"(chunks 1-{WINDOW} -> the last {WINDOW} of {result['chunks']})"
    )
  return "\n".join(lines)
