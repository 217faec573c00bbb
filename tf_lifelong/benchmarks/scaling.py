"""How the student step scales over replicas: examples per second on 1, 2, ... devices.

    bin/benchmark --devices=1,2 --output=scaling.json          # this machine's CPU
    bin/benchmark --devices=1,2,4,8 --output=scaling.json      # a host with 8 GPUs

The step is the one `steps.py` times (`LifelongVAE.train_step` with
teacher replay; MLP, J = 10 after nine hand-overs, F = 20; XLA as the config's
default, off), built and timed as it does (bursts.py, measuring.py), at
steps_per_execution 1 (`STEPS_PER_EXECUTION` says why).
Each device setting runs in a fresh Python process (child_process.py), because
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

import dataclasses
import math
import os
import platform
import time
from collections.abc import Callable, Sequence

from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks import bursts, child_process, measuring
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


STEPS_PER_EXECUTION = 1
"""steps_per_execution of every run. Keras 3.15 / TF 2.21 fail with more (the config's
default is 10) under MirroredStrategy with 2 replicas, even for a plain Sequential
model: "You must feed a value for placeholder tensor 'while/body/...'" from Keras'
multi-step loop over a distributed iterator. So every run, one replica or several,
pays the Python round trip of Keras' train function per step."""


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


# -------------------------------------------------------- the child side
def _setup(spec: dict, settings: Settings):
  """Lays out the devices, configures the runtime; (mirrored strategy or None, config)."""
  from tf_lifelong import runtime  # noqa: PLC0415

  n = spec["replicas"]
  mirrored = any(r["strategy"] == "mirrored" for r in spec["runs"])
  config = settings.base_config(
    strategy="mirrored" if mirrored else "default",
    num_cpu_devices=n if spec["kind"] == "CPU" and mirrored and n > 1 else 0,
  )
  if spec["kind"] == "GPU":
    import tensorflow as tf  # noqa: PLC0415

    tf.config.set_visible_devices(tf.config.list_physical_devices("GPU")[:n], "GPU")
  runtime.configure(config)
  return (runtime.make_strategy(config) if mirrored else None), config


def _student_burst(run: dict, strategy, split, image_shape, settings: Settings):
  """The compiled student (k = J - 1) of one run, as a burst of `settings.steps` steps."""
  import tensorflow as tf  # noqa: PLC0415

  from tf_lifelong.train import training  # noqa: PLC0415

  config = settings.base_config(
    batch_size=run["global_batch"], steps_per_execution=STEPS_PER_EXECUTION
  )
  scope = strategy if run["strategy"] == "mirrored" else tf.distribute.get_strategy()
  with scope.scope():  # The optimizer's variables too (built by train_burst, as fit does).
    lgm, _ = bursts.students(config, image_shape, settings.num_categories)
    training.use_xla_where_it_works(lgm)  # Off with several CPU replicas, as training does.
    data = bursts.real_rows(split, lgm.real_batch_size(run["global_batch"]), settings.seed)
    if run["strategy"] == "mirrored":
      data = strategy.experimental_distribute_dataset(data)
    burst = bursts.train_burst(run["name"], lgm, data, settings.steps)
  info = {
    "replicas": lgm.distribute_strategy.num_replicas_in_sync,
    "device_names": _device_names(lgm.distribute_strategy),
    "real_rows": lgm.real_batch_size(run["global_batch"]),
    "synthetic_rows": lgm.synthetic_batch_size(run["global_batch"]),
    "jit_compile": bool(lgm.jit_compile),
    "steps_per_execution": int(lgm.steps_per_execution),
  }
  return burst, info


def _device_names(strategy) -> list[str]:
  """The devices a strategy's replicas run on (the default one: TensorFlow's first device)."""
  import tensorflow as tf  # noqa: PLC0415

  if strategy.num_replicas_in_sync > 1 or isinstance(strategy, tf.distribute.MirroredStrategy):
    return list(strategy.extended.worker_devices)
  return [(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU"))[0].name]


def measure(spec: dict) -> dict:
  """Times the runs of one process spec (in this fresh process); steps/s per round.

  The child side of `_in_subprocess` (child_process.serve): `spec` is a spec of
  `plan` with the benchmark settings (a dict) under "settings".
  """
  from tf_lifelong.data import streams  # noqa: PLC0415

  settings = _settings_from_dict(spec["settings"])
  strategy, config = _setup(spec, settings)
  stream = streams.build_stream(config)
  split = stream.intervals[0].distribution.train
  timed, infos = [], {}
  for run in spec["runs"]:
    burst, infos[run["name"]] = _student_burst(run, strategy, split, stream.image_shape, settings)
    timed.append(burst)
  for burst in timed:
    burst.run()  # An untimed round: a mirrored step's first bursts run far slower.
  load_before = measuring.load_average()
  measuring.round_robin(timed, settings.rounds)
  out = {
    "load_average": {"before": load_before, "after": measuring.load_average()},
    "peak_rss_mb": measuring.peak_rss_mb(),
    "runs": {},
  }
  for burst in timed:
    out["runs"][burst.name] = {
      **infos[burst.name],
      "steps_per_burst": burst.units,
      "wall_steps_per_sec": burst.rates("wall"),
      "cpu_steps_per_sec": burst.rates("cpu"),
    }
  return out


def _settings_from_dict(values: dict) -> Settings:
  """The Settings that `dataclasses.asdict` gave `values` (JSON made its tuples lists)."""
  return Settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _in_subprocess(spec: dict, settings: Settings) -> dict:
  """`measure(spec)` in a fresh Python process."""
  return child_process.run_json_child(
    "tf_lifelong.benchmarks.scaling",
    "measure",
    {**spec, "settings": dataclasses.asdict(settings)},
    description=f"the scaling benchmark process ({spec['kind']} x {spec['replicas']})",
  )


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
  import tensorflow as tf  # noqa: PLC0415

  kind, count = available_devices()
  check_devices(devices, kind, count, settings.batch_size)
  start, load_before = time.perf_counter(), measuring.load_average()
  runs, order, default_rate = {}, [], None
  for spec in plan(devices, kind, settings.batch_size, weak):
    log(
      f"{kind} x {spec['replicas']}: {', '.join(r['name'] for r in spec['runs'])} (a fresh process)"
    )
    measured = _in_subprocess(spec, settings)
    for r in spec["runs"]:
      if r["name"] == "paired_default":
        continue
      runs[r["name"]] = _run_result(r["name"], r, spec, measured, default_rate)
      order.append(r["name"])
      if r["name"] == "default":
        default_rate = runs["default"]["examples_per_sec"]
        runs["default"]["speedup_vs_default"] = 1.0
  return {
    "device_kind": kind,
    "devices_available": count,
    "requested_devices": list(devices),
    "weak_scaling": weak,
    "runs": runs,
    "order": order,
    "load_average": {"before": load_before, "after": measuring.load_average()},
    "settings": {
      k: getattr(settings, k)
      for k in (
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
    },
    "machine": {
      "cpus": os.cpu_count(),
      "processor": platform.processor(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    },
    "seconds": time.perf_counter() - start,
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
