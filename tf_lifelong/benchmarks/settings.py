"""What the benchmarks run: `Settings`, the sizes, steps and variants of a benchmark run.

The step benchmark (steps.py), the interval benchmark
(interval.py) and the scaling benchmark (scaling.py) all
take one `Settings`; bin/benchmark builds it from its flags. No TensorFlow
here, so the command line can read the defaults before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses

from tf_lifelong import config as config_lib


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the benchmark runs. The defaults are the issue's setting (MLP, batch 128, J = 10, F = 20)."""

  steps: int = 50
  """Steps per timed burst (rounded up to a multiple of steps_per_execution)."""
  rounds: int = 15
  """Bursts per variant, interleaved; rates are medians over rounds."""
  batch_size: int = 128
  hidden_units: int = 512
  continuous_dim: int = 20
  num_categories: int = 10
  """J of the student; its teacher has J - 1 categories and k = J - 1."""
  steps_per_execution: int = 10
  """The value of the steps_per_execution > 1 variants."""
  dataset: str = "fashion_mnist"
  data_dir: str | None = None
  interval_steps: int = 4000
  """max_steps_per_interval of the interval benchmark (the default config's)."""
  eval_every: int = 250
  eval_examples: int | None = None
  validation_synthetic_examples: int = 1000
  interval_variants: tuple[str, ...] = ("default", "spe1", "xla")
  """default: the config's defaults; spe1: steps_per_execution = 1 (no batching of steps);
  xla: jit_compile on; spe: steps_per_execution = `steps_per_execution`."""
  interval_subprocess: bool = True
  """Run each interval variant in a fresh process (its own peak memory)."""
  interval_count: int = 2
  """Intervals per interval-benchmark run: 2 (the second has a teacher) or 1."""
  xla_with_spe: bool = True
  """Also time the step with XLA and steps_per_execution > 1 together."""
  student_k1: bool = True
  """Also time the student at k = 1, to scale the interval benchmark to later intervals."""
  compare_keras_adam: bool = True
  """Also time the default step with Keras' own Adam update instead of the fused kernel."""
  profile_steps: int = 0
  """If positive, profile that many student steps with tf.profiler (op time by kind)."""
  precisions: tuple[str, ...] = ("float32", "mixed_bfloat16")
  """config.precision values timed side by side (float32 is always the reference): the
  student and plain VAE steps (the default variant, and XLA with steps_per_execution
  when `xla_with_spe`), the matmul bound in the compute dtype, the conv step."""
  precision_conv: bool = True
  """Also time the conv plain VAE step (32x32x3, J = 2) in each of `precisions`."""
  conv_filters: int = 32
  """conv_filters of that conv step (the config default)."""
  conv_steps: int = 10
  """Steps per burst of the conv step (about 10x the MLP step's time)."""
  threads: int = 0
  seed: int = 0

  def __post_init__(self):
    unknown = [p for p in self.precisions if p not in config_lib.PRECISIONS]
    if unknown:
      raise config_lib.ConfigError(
        f"--precisions: unknown precision {unknown[0]!r}; choose from "
        f"{', '.join(config_lib.PRECISIONS)}"
      )

  @classmethod
  def quick(cls, **overrides) -> Settings:
    """A tiny setting that runs in seconds (for tests), everything still measured."""
    values = dict(
      steps=4,
      rounds=2,
      batch_size=32,
      hidden_units=32,
      steps_per_execution=2,
      interval_steps=8,
      eval_every=4,
      eval_examples=50,
      validation_synthetic_examples=50,
      interval_subprocess=False,
      interval_count=1,
      xla_with_spe=False,
      student_k1=False,
      compare_keras_adam=False,
      conv_filters=4,
      conv_steps=2,
    )
    values.update(overrides)
    return cls(**values)

  def base_config(self, **overrides) -> config_lib.Config:
    """The config of the benchmarked MLP student, with `overrides`."""
    values = dict(
      dataset=self.dataset,
      data_dir=self.data_dir,
      batch_size=self.batch_size,
      hidden_units=self.hidden_units,
      continuous_dim=self.continuous_dim,
      threads=self.threads,
      seed=self.seed,
      arch="mlp",
    )
    values.update(overrides)
    return config_lib.Config(**values)
