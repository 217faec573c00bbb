"""Measuring on a shared machine: bursts of work timed in turns, medians, load, memory, CPU.

A `Burst` is a named piece of work timed as a whole, on the wall clock and on
this process's CPU clock. The bursts of a benchmark take turns for a number of
rounds (`round_robin`) and the reported rates are medians over rounds, so that
a change of load on the machine hits every burst alike. No TensorFlow here:
the bursts that run TensorFlow are built in bursts.py.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import time
from collections.abc import Callable, Sequence


def median(values: Sequence[float]) -> float:
  """The median of `values`; NaN if there are none."""
  return statistics.median(values) if values else math.nan


class Burst:
  """A named thing timed in bursts: `run()` does `units` units of work and syncs.

  Each burst records its wall time and this process's CPU time (all threads:
  TensorFlow's op threads, tf.data's, Python). On a machine shared with other
  jobs, CPU time is what the work cost and moves much less with their load;
  wall time is what a user waits.
  """

  def __init__(self, name: str, units: int, run: Callable[[], None]):
    self.name, self.units, self.run = name, units, run
    self.seconds: dict[str, list[float]] = {"wall": [], "cpu": []}

  def time(self) -> None:
    """Runs the burst once, recording its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    self.run()
    self.seconds["cpu"].append(time.process_time() - cpu)
    self.seconds["wall"].append(time.perf_counter() - wall)

  def rates(self, clock: str = "wall") -> list[float]:
    """Units per second (of `clock`: wall or cpu) of each round."""
    return [self.units / s if s > 0 else math.nan for s in self.seconds[clock]]


def round_robin(bursts: Sequence[Burst], rounds: int) -> None:
  """Times every burst once per round, in turn, for `rounds` rounds."""
  for _ in range(rounds):
    for burst in bursts:
      burst.time()


def load_average() -> list[float] | None:
  """The machine's 1, 5 and 15 minute load averages; None where there are none."""
  try:
    return [round(v, 2) for v in os.getloadavg()]
  except OSError:
    return None


def peak_rss_mb() -> float:
  """This process's peak resident set size in MB.

  VmHWM of /proc/self/status where there is one (Linux): the high-water mark
  of this process image's own memory. `getrusage(RUSAGE_SELF).ru_maxrss`
  is not: Linux carries it over fork and exec, so a child started by a big
  parent reports at least the parent's size at the fork; it is the fallback
  elsewhere.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


CPU_FLAGS = ("avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")
"""The /proc/cpuinfo flags that say what 16-bit arithmetic a CPU has: AVX-512 bfloat16
dot products (avx512_bf16), AVX-512 float16 (avx512_fp16), AMX tiles (amx_tile,
amx_bf16: Intel Sapphire Rapids and later)."""


def cpu_info(path: str = "/proc/cpuinfo") -> dict | None:
  """The CPU's model name and which of CPU_FLAGS it has; None where `path` is unreadable.

  Returns:
    {"model_name": str or None, "flags": {flag: bool for each of CPU_FLAGS}}.
  """
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return None
  fields: dict[str, str] = {}
  for line in text.splitlines():
    key, sep, value = line.partition(":")
    if sep and key.strip() not in fields:  # The first processor's lines.
      fields[key.strip()] = value.strip()
  flags = set(fields.get("flags", "").split())
  return {"model_name": fields.get("model name"), "flags": {f: f in flags for f in CPU_FLAGS}}
