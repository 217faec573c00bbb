"""One process of the scaling benchmark: its devices laid out, its runs timed.

The scaling benchmark (scaling.py) runs each device setting of its plan in a
fresh Python process (`in_subprocess`, through child_process.py), because
logical devices must be laid out before TensorFlow initialises. There
`measure` lays out the devices (the first N GPUs, or the CPU split into N
logical devices), builds the student (k = J - 1) under the run's strategy,
times each run's steps in bursts that take turns for `rounds` rounds
(bursts.py, measuring.py) and returns the per-round rates as JSON.
"""

from __future__ import annotations

import dataclasses

from tf_lifelong.benchmarks import bursts, child_process, measuring
from tf_lifelong.benchmarks.settings import Settings

STEPS_PER_EXECUTION = 1
"""steps_per_execution of every run. Keras 3.15 / TF 2.21 fail with more (the config's
default is 10) under MirroredStrategy with 2 replicas, even for a plain Sequential
model: "You must feed a value for placeholder tensor 'while/body/...'" from Keras'
multi-step loop over a distributed iterator. So every run, one replica or several,
pays the Python round trip of Keras' train function per step."""


def in_subprocess(spec: dict, settings: Settings) -> dict:
  """`measure(spec)` in a fresh Python process."""
  return child_process.run_json_child(
    "tf_lifelong.benchmarks.scaling_process",
    "measure",
    {**spec, "settings": dataclasses.asdict(settings)},
    description=f"the scaling benchmark process ({spec['kind']} x {spec['replicas']})",
  )


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

  The child side of `in_subprocess` (child_process.serve): `spec` is a spec of
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
