"""Where a training step's time goes: tf.profiler's op times of the step, by kind.

`profile_step` runs steps under tf.profiler and sums each TensorFlow op's time
by the part of the step it belongs to (`op_kind`: matmul, optimizer, gradient
norm, teacher, backward, forward) and by op type. bin/benchmark
--profile_steps=N reports it (docs/performance.md).
"""

from __future__ import annotations

import os
import time

from tf_lifelong.benchmarks import bursts


def op_kind(scope: str, op_type: str) -> str:
  """The part of the step an op belongs to, from its name scope and type."""
  lower = scope.lower()
  if "matmul" in op_type.lower():
    return "matmul"
  if "applyadam" in op_type.lower() or "adam" in lower.split("/")[:3] or "fused_adam" in lower:
    return "optimizer"
  if "global_norm" in lower:
    return "grad_norm"
  if "/teacher/" in lower or lower.startswith("teacher/"):
    return "teacher (non-matmul)"
  if lower.startswith("gradient_tape") or "/gradient_tape/" in lower:
    return "backward (non-matmul)"
  return "forward and other (non-matmul)"


def profile_step(model, dataset, steps: int, logdir: str) -> dict:
  """Runs `steps` steps under tf.profiler; op time per step, by kind and by op type.

  Reads the trace's host plane (xplane.pb): every TensorFlow op executed, with
  its name scope and type. The times are summed over threads, so with two
  threads they can exceed the wall time; tracing adds overhead to small ops.
  """
  import glob  # noqa: PLC0415

  import tensorflow as tf  # noqa: PLC0415
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: PLC0415

  burst = bursts.train_burst("profile", model, dataset, steps)
  tf.profiler.experimental.start(logdir)
  start = time.perf_counter()
  burst.run()
  wall = time.perf_counter() - start
  tf.profiler.experimental.stop()
  paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
  space = xplane_pb2.XSpace()
  with open(sorted(paths)[-1], "rb") as f:
    space.ParseFromString(f.read())
  kinds: dict[str, float] = {}
  types: dict[str, float] = {}
  for plane in space.planes:
    if plane.name != "/host:CPU":
      continue
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ":" not in name or "::" in name:
          continue  # Executor bookkeeping, not an op.
        scope, op_type = name.rsplit(":", 1)
        ms = event.duration_ps / 1e9 / burst.units
        kind = op_kind(scope.replace("StatefulPartitionedCall/", ""), op_type)
        kinds[kind] = kinds.get(kind, 0.0) + ms
        types[op_type] = types.get(op_type, 0.0) + ms
  total = sum(kinds.values())
  return {
    "steps": burst.units,
    "wall_ms_per_step_traced": 1000 * wall / burst.units,
    "op_ms_per_step": total,
    "by_kind_ms_per_step": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
    "by_kind_fraction": {k: v / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
    "top_op_types_ms_per_step": dict(sorted(types.items(), key=lambda kv: -kv[1])[:15]),
  }
