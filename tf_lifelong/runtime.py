"""Devices, distribution strategies, seeds and determinism.

Everything here acts on the TensorFlow runtime as a whole and must happen before
the first op runs (logical devices cannot be changed once TensorFlow has
initialised them). `configure` does it once per process.
"""

from __future__ import annotations

import json
import logging
import os
import random

import numpy as np
import tensorflow as tf

from tf_lifelong import config as config_lib

log = logging.getLogger(__name__)


class RuntimeSetupError(RuntimeError):
  """The runtime cannot be set up as configured (devices, strategy)."""


def configure(config: config_lib.Config) -> None:
  """Seeds every generator, sets determinism and splits the CPU if asked.

  Args:
    config: the run's configuration (`seed`, `deterministic`, `num_cpu_devices`).

  Raises:
    RuntimeSetupError: the CPU split cannot be applied (TensorFlow already runs
      with another device layout).
  """
  if config.num_cpu_devices > 1:
    split_cpu(config.num_cpu_devices)
  if config.threads:
    set_threads(config.threads)
  seed_everything(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  if config.strategy != "multi_worker":
    # Initialises the devices now, with this layout. MultiWorkerMirroredStrategy
    # configures the collective ops itself, which must precede the initialisation.
    tf.config.list_logical_devices()


def set_threads(n: int) -> None:
  """Caps TensorFlow's op threads (e.g. 1 to run two experiments on two cores)."""
  try:
    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(n)
  except RuntimeError as e:
    if tf.config.threading.get_intra_op_parallelism_threads() != n:
      raise RuntimeSetupError(f"cannot set {n} threads after TensorFlow started: {e}") from None


def seed_everything(seed: int) -> None:
  random.seed(seed)
  np.random.seed(seed)
  tf.random.set_seed(seed)
  import keras  # noqa: PLC0415 - keras' global seed lives with keras.

  keras.utils.set_random_seed(seed)


def reseed(seed: int, key: int) -> None:
  """Seeds every generator from (seed, key): what follows does not depend on what ran
  before in this process, so a resumed run redoes it as the uninterrupted run did."""
  seed_everything(int(np.random.SeedSequence([seed, key]).generate_state(1)[0]))


def split_cpu(n: int) -> None:
  """Splits the physical CPU into `n` logical devices (a testing aid)."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  current = tf.config.get_logical_device_configuration(cpu)
  if current is not None and len(current) == n:
    return
  try:
    tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
    )
  except RuntimeError as e:
    raise RuntimeSetupError(
      f"cannot split the CPU into {n} devices after TensorFlow started: {e}"
    ) from None


def make_strategy(config: config_lib.Config) -> tf.distribute.Strategy:
  """The tf.distribute strategy named by `config.strategy`.

  - default: TensorFlow's default (no-op) strategy;
  - one_device: the first GPU, else the CPU;
  - mirrored: all local GPUs, else the logical CPUs made by --num_cpu_devices;
  - multi_worker: MultiWorkerMirroredStrategy, configured from TF_CONFIG.
  """
  name = config.strategy
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
      return tf.distribute.MirroredStrategy()
    cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=cpus)
  if name == "multi_worker":
    if "TF_CONFIG" not in os.environ:
      raise RuntimeSetupError(
        "--strategy=multi_worker needs the TF_CONFIG environment variable (see docs/scaling.md)"
      )
    try:
      json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as e:
      raise RuntimeSetupError(f"TF_CONFIG is not valid JSON: {e}") from None
    collective_timeout()  # Checked here; train/watchdog.py enforces it (StepWatchdog).
    # No CommunicationOptions(timeout_seconds=...): it starts a thread sleeping for the
    # whole timeout for every collective op, and the processes run out of threads.
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise RuntimeSetupError(f"unknown strategy {name!r}")


COLLECTIVE_TIMEOUT_ENV = "TF_LIFELONG_COLLECTIVE_TIMEOUT"
DEFAULT_COLLECTIVE_TIMEOUT = 600.0
"""Seconds a multi-worker training step may wait for its peers (e.g. while the
chief writes an interval's artifacts) before the run fails instead of hanging."""


def collective_timeout() -> float:
  """The collective timeout of multi-worker runs: $TF_LIFELONG_COLLECTIVE_TIMEOUT or 600 s."""
  value = os.environ.get(COLLECTIVE_TIMEOUT_ENV)
  try:
    seconds = float(value) if value else DEFAULT_COLLECTIVE_TIMEOUT
  except ValueError:
    raise RuntimeSetupError(
      f"{COLLECTIVE_TIMEOUT_ENV}={value!r} is not a number of seconds"
    ) from None
  if seconds <= 0:
    raise RuntimeSetupError(f"{COLLECTIVE_TIMEOUT_ENV} must be positive, not {value}")
  return seconds


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's artifacts (always, but multi-worker)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type == "chief" or (
    task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()
  )


def check_batch_divides(config: config_lib.Config, strategy: tf.distribute.Strategy) -> None:
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:
    raise config_lib.ConfigError(
      f"batch_size {config.batch_size} is not divisible by the {replicas} replicas "
      f"of the {config.strategy} strategy"
    )
