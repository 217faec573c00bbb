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
chunk 10 with chunk N (memory, disk) and chunks 2-10 with the last nine (seconds, wall and
CPU: the process's CPU time, which another process on the machine disturbs less).
"""

from __future__ import annotations

import os
import time

import numpy as np

from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks import child_process

VARIANTS = ("bounded", "unbounded")
EARLY = 10
"""The chunk that the end of the stretch is compared with (the default bound is full there)."""


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
    started, cpu = time.monotonic(), time.process_time()
    decision = learner.observe(images[c * config.chunk_size : (c + 1) * config.chunk_size])
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    interval = learner._task_free.open
    rows.append(
      {
        "chunk": c,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "decision_seconds": round(decision.seconds, 3),
        "decision": decision.decision,
        "rss_mb": round(_rss_mb(), 1),
        "disk_mb": round(_disk_mb(workdir), 2),
        "kept": len(interval.train) + len(interval.held),
      }
    )
  learner.close()
  return {"interval_buffer": config.interval_buffer, "chunk_size": config.chunk_size, "rows": rows}


def _summary(rows: list[dict]) -> dict:
  """Memory, disk and kept examples after chunk EARLY and after the last; the seconds per
  chunk averaged over chunks 2..EARLY (the first traces) and over the last EARLY - 1."""
  early, late = rows[1:EARLY], rows[-(EARLY - 1) :]
  out = {}
  for key in ("rss_mb", "disk_mb", "kept"):
    out[f"{key}_early"], out[f"{key}_late"] = rows[EARLY - 1][key], rows[-1][key]
  for key in ("seconds", "cpu_seconds", "decision_seconds"):
    out[f"{key}_early"] = round(float(np.mean([r[key] for r in early])), 3)
    out[f"{key}_late"] = round(float(np.mean([r[key] for r in late])), 3)
  return out


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
    out["summary"] = _summary(rows)
    result["variants"][variant] = out
  return result


def summary(result: dict) -> str:
  """A line per variant: after chunk EARLY against after the last."""
  lines, n = [], result["chunks"]
  for variant, out in result["variants"].items():
    s = out["summary"]
    lines.append(
      f"{variant} (interval_buffer {out['interval_buffer']}), chunk {EARLY} -> chunk {n}: "
      f"kept {s['kept_early']} -> {s['kept_late']}, RSS {s['rss_mb_early']:.0f} -> "
      f"{s['rss_mb_late']:.0f} MB, disk {s['disk_mb_early']:.1f} -> {s['disk_mb_late']:.1f} MB; "
      f"per chunk {s['seconds_early']:.2f} -> {s['seconds_late']:.2f} s wall, "
      f"{s['cpu_seconds_early']:.2f} -> {s['cpu_seconds_late']:.2f} s CPU, decision "
      f"{s['decision_seconds_early']:.2f} -> {s['decision_seconds_late']:.2f} s"
    )
  return "\n".join(lines)
