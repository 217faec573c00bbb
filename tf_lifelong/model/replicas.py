"""The training step across the replicas in sync: global sums, replica ids, the step's logs.

What makes 1 and N replicas compute the same step (lifelong_vae.py's module
docstring): every count and sum a step divides by is an all-reduce over the
replicas, and under MultiWorkerMirroredStrategy the logs take the shape Keras
reduces. Outside a replica context (eager calls, one device) each is the
identity.
"""

from __future__ import annotations

import tensorflow as tf


def all_reduce_sum(value):
  """Sum over the replicas in sync (identity on one replica or outside a replica context)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return value
  return ctx.all_reduce(tf.distribute.ReduceOp.SUM, value)


def replica() -> tuple[int, int]:
  """(replica id as a Python int, number of replicas in sync)."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return 0, 1
  return int(tf.get_static_value(ctx.replica_id_in_sync_group)), ctx.num_replicas_in_sync


def global_rows(x) -> tf.Tensor:
  """The rows of `x` summed over the replicas (float32 scalar): B_global."""
  return all_reduce_sum(tf.cast(tf.shape(x)[0], tf.float32))


def share(total: int) -> int:
  """This replica's part of `total` rows split over the replicas (the first ones get one more)."""
  index, replicas = replica()
  return total // replicas + (1 if index < total % replicas else 0)


def step_logs(metrics) -> dict[str, tf.Tensor]:
  """The step's logs: each metric's result (the same on every replica).

  Under MultiWorkerMirroredStrategy Keras reduces each log with
  `strategy.reduce(MEAN, value, axis=0)`, which needs an axis: there each result
  is given as a [1] vector, whose mean over the replicas is the result again.
  """
  strategy = tf.distribute.get_strategy()
  multi_worker = (
    isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    and strategy.extended._in_multi_worker_mode()
  )  # A private method, which Keras itself calls for this question.
  return {m.name: tf.reshape(m.result(), [1]) if multi_worker else m.result() for m in metrics}
