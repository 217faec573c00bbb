"""How the student step scales over replicas: examples per second on 1, 2, ... devices.

    bin/benchmark --devices=1,2 --output=scaling.json          # this machine's CPU
    bin/benchmark --devices=1,2,4,8 --output=scaling.json      # a host with 8 GPUs

The step is the one `steps.py` times (`LifelongVAE.train_step` with
teacher replay; MLP, J = 10 after nine hand-overs, F = 20; XLA as the config's
default, off), built and timed as it does (bursts.py, measuring.py), at
steps_per_execution 1 (`scaling_process.STEPS_PER_EXECUTION` says why).
Each device setting runs in a fresh Python process (scaling_process.py), because
logical devices must be laid out before TensorFlow initialises:

- `default`: no strategy, one device (the first GPU, else the CPU), global
  batch B (128). Every speed-up is relative to this run.
- `mirrored_N`, for each N asked: MirroredStrategy over N devices: the first N
  GPUs where the machine has GPUs, else the CPU split into N logical devices
  (`runtime.split_cpu`). Strong scaling: the global batch stays B, each
  replica takes B / N rows (real and synthetic).
- `mirrored_N_weak` (N > 1, `weak=True`): the same strategy with B rows per
  replica, a global batch of N B.

Each process times its runs in bursts that take turns for `rounds` rounds
(rates are medians over rounds, as in steps.py). A mirrored process also
times the default-strategy step, interleaved with its own runs:
`paired_speedup_vs_default` is the median of the per-round ratios against it,
which a change of load on a shared machine hits on both sides alike.
`speedup_vs_default` compares with the separate `default` process instead.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Sequence

from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks import measuring, scaling_process
from tf_lifelong.benchmarks.settings import Settings

RUN_KEYS = (
  "strategy",
  "device_kind",
  "devices",
  "replicas",
  "global_batch",
  "per_replica_batch",
  "scaling",
  "examples_per_sec",
  "steps_per_sec",
  "examples_per_cpu_sec",
  "speedup_vs_default",
  "paired_speedup_vs_default",
  "efficiency",
)
"""Keys of every run of a scaling result (the tests check them)."""

REQUIRED_KEYS = (
  "device_kind",
  "devices_available",
  "requested_devices",
  "runs",
  "order",
  "load_average",
  "settings",
  "machine",
  "seconds",
)
"""Top-level keys of a scaling result."""


class DevicesError(config_lib.ConfigError):
  """--devices asks for something this machine cannot run (a one-line user error)."""


def parse_devices(values: str | Sequence[str]) -> tuple[int, ...]:
  """The sorted, distinct device counts of `--devices` ("1,2" or ["1", "2"]).

  Raises:
    DevicesError: an entry is not a positive integer.
  """
  items = values.split(",") if isinstance(values, str) else list(values)
  counts = set()
  for item in items:
    text = item.strip()
    if not text.isdigit() or int(text) < 1:
      raise DevicesError(
        f"--devices takes device counts of at least 1 (as in --devices=1,2), not {item!r}"
      )
    counts.add(int(text))
  return tuple(sorted(counts))


def available_devices() -> tuple[str, int]:
  """("GPU", number of GPUs) where TensorFlow sees a GPU, else ("CPU", usable cores)."""
  import tensorflow as tf  # noqa: PLC0415

  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    return "GPU", len(gpus)
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return "CPU", cores or 1


def check_devices(devices: Sequence[int], kind: str, count: int, batch_size: int) -> None:
  """Raises DevicesError unless every count fits the machine and divides the batch."""
  if not devices:
    raise DevicesError("--devices names no device count")
  most = max(devices)
  if most > count:
    what = f"{count} GPU(s)" if kind == "GPU" else f"no GPU and {count} CPU core(s)"
    raise DevicesError(f"--devices asks for {most} {kind} devices, but this machine has {what}")
  for n in devices:
    if batch_size % n:
      raise DevicesError(
        f"--devices: the global batch {batch_size} does not split evenly over {n} replicas"
      )


# ------------------------------------------------------------- the plan
def plan(devices: Sequence[int], kind: str, batch_size: int, weak: bool) -> list[dict]:
  """One process spec per device setting: the default run, then mirrored over each N.

  A spec names the devices to lay out (`kind`, `replicas`) and the runs to
  time there, each {name, strategy, global_batch, scaling}.
  """
  default = {
    "name": "default",
    "strategy": "default",
    "global_batch": batch_size,
    "scaling": "baseline",
  }
  specs = [{"kind": kind, "replicas": 1, "runs": [default]}]
  for n in devices:
    runs = [
      {
        "name": f"mirrored_{n}",
        "strategy": "mirrored",
        "global_batch": batch_size,
        "scaling": "strong",
      }
    ]
    if weak and n > 1:
      runs.append(
        {
          "name": f"mirrored_{n}_weak",
          "strategy": "mirrored",
          "global_batch": batch_size * n,
          "scaling": "weak",
        }
      )
    runs.append({**default, "name": "paired_default"})
    specs.append({"kind": kind, "replicas": n, "runs": runs})
  return specs


# ------------------------------------------------------- the parent side
def _run_result(name: str, run: dict, spec: dict, measured: dict, default_rate: float) -> dict:
  """One run's entry of the result, from its process's per-round rates."""
  own = measured["runs"][name]
  batch = run["global_batch"]
  wall = own["wall_steps_per_sec"]
  rate = measuring.median(wall) * batch
  paired = measured["runs"].get("paired_default")
  if paired is None:
    paired_ratio, paired_rate = 1.0, rate
  else:
    base = spec["runs"][-1]["global_batch"]
    paired_ratio = measuring.median(
      [a * batch / (b * base) for a, b in zip(wall, paired["wall_steps_per_sec"])]
    )
    paired_rate = measuring.median(paired["wall_steps_per_sec"]) * base
  devices = spec["replicas"]
  return {
    "strategy": run["strategy"],
    "device_kind": spec["kind"],
    "devices": devices,
    "replicas": own["replicas"],
    "device_names": own["device_names"],
    "global_batch": batch,
    "per_replica_batch": batch // own["replicas"],
    "scaling": run["scaling"],
    "real_rows": own["real_rows"],
    "synthetic_rows": own["synthetic_rows"],
    "jit_compile": own["jit_compile"],
    "steps_per_execution": own["steps_per_execution"],
    "examples_per_sec": rate,
    "steps_per_sec": measuring.median(wall),
    "examples_per_cpu_sec": measuring.median(own["cpu_steps_per_sec"]) * batch,
    "speedup_vs_default": rate / default_rate if default_rate else math.nan,
    "paired_default_examples_per_sec": paired_rate,
    "paired_speedup_vs_default": paired_ratio,
    "efficiency": paired_ratio / devices,
    "rounds_steps_per_sec": [round(r, 2) for r in wall],
    "load_average": measured["load_average"],
    "peak_rss_mb": measured["peak_rss_mb"],
  }


SETTINGS_KEYS = (
  "steps",
  "rounds",
  "batch_size",
  "hidden_units",
  "continuous_dim",
  "num_categories",
  "dataset",
  "data_dir",
  "threads",
  "seed",
)
"""The Settings fields a scaling result records (the ones that apply to it)."""


def run(
  settings: Settings,
  devices: Sequence[int],
  weak: bool = True,
  log: Callable[[str], None] = print,
) -> dict:
  """The scaling benchmark: every device setting in its own process; the JSON-able result.

  Args:
    settings: sizes, steps per burst, rounds, data (the interval fields are
      not used). `batch_size` is the global batch.
    devices: the replica counts of the mirrored runs, e.g. (1, 2).
    weak: also time N > 1 replicas with `batch_size` rows each.
    log: progress lines.

  Raises:
    DevicesError: `devices` does not fit this machine or the batch.
  """
  kind, count = available_devices()
  check_devices(devices, kind, count, settings.batch_size)
  start, load_before = time.perf_counter(), measuring.load_average()
  runs, order = _measure_runs(plan(devices, kind, settings.batch_size, weak), settings, log)
  return {
    "device_kind": kind,
    "devices_available": count,
    "requested_devices": list(devices),
    "weak_scaling": weak,
    "runs": runs,
    "order": order,
    "load_average": {"before": load_before, "after": measuring.load_average()},
    "settings": {k: getattr(settings, k) for k in SETTINGS_KEYS},
    "machine": _machine(),
    "seconds": time.perf_counter() - start,
  }


def _measure_runs(specs: list[dict], settings: Settings, log: Callable[[str], None]):
  """Each spec's runs timed in a fresh process: ({run name: its entry}, the names in order).

  The first spec is the default run, whose rate every later `speedup_vs_default` divides by.
  """
  runs, order, default_rate = {}, [], None
  for spec in specs:
    names = ", ".join(r["name"] for r in spec["runs"])
    log(f"{spec['kind']} x {spec['replicas']}: {names} (a fresh process)")
    measured = scaling_process.in_subprocess(spec, settings)
    for r in spec["runs"]:
      if r["name"] == "paired_default":
        continue
      runs[r["name"]] = _run_result(r["name"], r, spec, measured, default_rate)
      order.append(r["name"])
      if r["name"] == "default":
        default_rate = runs["default"]["examples_per_sec"]
        runs["default"]["speedup_vs_default"] = 1.0
  return runs, order


def _machine() -> dict:
  """The machine a scaling result was measured on."""
  import tensorflow as tf  # noqa: PLC0415

  return {
    "cpus": os.cpu_count(),
    "processor": platform.processor(),
    "python": platform.python_version(),
    "tensorflow": tf.__version__,
    "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
  }


def summary(result: dict) -> str:
  """One line per run: rate, speed-up against the default run, paired speed-up."""
  lines = [
    f"scaling over {result['device_kind']} devices (load average "
    f"{result['load_average']['before']} -> {result['load_average']['after']}):"
  ]
  for name in result["order"]:
    r = result["runs"][name]
    lines.append(
      f"  {name}: {r['replicas']} replica(s), global batch {r['global_batch']}: "
      f"{r['examples_per_sec']:.0f} rows/s ({r['steps_per_sec']:.1f} steps/s), "
      f"{r['speedup_vs_default']:.2f}x default (paired "
      f"{r['paired_speedup_vs_default']:.2f}x)"
    )
  return "\n".join(lines)
