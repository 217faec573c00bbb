"""What the step benchmark times: its variants and one burst builder per measurement.

`StepVariants` says which steps are timed (XLA x steps_per_execution, the
precisions); the builders return the bursts (bursts.py) of each measurement,
named as `burst_name` says, which is how step_results.py finds them again:

- `variant_bursts`: the student with replay and the plain VAE, each variant;
- `k1_burst`: the student at k = 1 (to scale the interval benchmark);
- `no_distillation_burst`: the default student step with decoder distillation off (the
  replay overhead of the default objective and without the distillation, side by side);
- `keras_adam_bursts`: both steps with Keras' own Adam update;
- `precision_bursts`, `conv_bursts`: the steps in the other precisions, and
  the conv plain VAE step in every precision;
- `matmul_bursts`: the step's matmuls alone (the matmul bound), per precision, and those
  of the step without distillation;
- `pipeline_bursts`: the input pipeline alone, at both steps' batch sizes.
"""

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from tf_lifelong import config as config_lib
from tf_lifelong.benchmarks import bursts, measuring
from tf_lifelong.benchmarks.flops import Matmul, step_plan
from tf_lifelong.benchmarks.settings import Settings

CONV_IMAGE_SHAPE = (32, 32, 3)
"""The conv step's images (svhn_mnist, fashion_mnist_mnist)."""

Variant = tuple[bool, int]
"""(jit_compile, steps_per_execution) of a timed step."""


def variant_name(jit: bool, spe: int) -> str:
  """The name of a (jit_compile, steps_per_execution) variant, e.g. "xla=off,spe=10"."""
  return f"xla={'on' if jit else 'off'},spe={spe}"


def burst_name(kind: str, variant: str, precision: str) -> str:
  """The name of the burst of step `kind` ("lgm", "plain") of a variant in `precision`."""
  return f"{kind}/{variant}" if precision == "float32" else f"{kind}/{variant}/{precision}"


def other_precisions(settings: Settings) -> tuple[str, ...]:
  """settings.precisions without float32 (always timed, the reference), each once."""
  return tuple(dict.fromkeys(p for p in settings.precisions if p != "float32"))


@dataclasses.dataclass(frozen=True)
class StepVariants:
  """The step variants the step benchmark times.

  Attributes:
    combos: every (jit_compile, steps_per_execution) timed in float32, sorted.
    default: the config's default variant (one of `combos`).
    precision_combos: the variants also timed in each of `precisions`, sorted.
    precisions: the precisions other than float32 (other_precisions).
  """

  combos: tuple[Variant, ...]
  default: Variant
  precision_combos: tuple[Variant, ...]
  precisions: tuple[str, ...]

  @classmethod
  def of(cls, settings: Settings) -> StepVariants:
    """The variants `settings` asks for."""
    defaults = config_lib.Config()
    default = (bool(defaults.jit_compile), int(defaults.steps_per_execution))
    xla_spe = [(True, settings.steps_per_execution)] if settings.xla_with_spe else []
    combos = {(False, 1), (True, 1), (False, settings.steps_per_execution), default, *xla_spe}
    return cls(
      combos=tuple(sorted(combos)),
      default=default,
      precision_combos=tuple(sorted({default, *xla_spe})),
      precisions=other_precisions(settings),
    )

  @property
  def default_name(self) -> str:
    """variant_name of the default variant."""
    return variant_name(*self.default)

  def default_config(self, settings: Settings) -> config_lib.Config:
    """The benchmarked config with the default variant's XLA and steps_per_execution."""
    return settings.base_config(jit_compile=self.default[0], steps_per_execution=self.default[1])


@contextlib.contextmanager
def _keras_adam():
  """Within: steps traced use Keras' own Adam update (fused_adam.ENABLED off)."""
  from tf_lifelong.model import fused_adam  # noqa: PLC0415

  saved, fused_adam.ENABLED = fused_adam.ENABLED, False
  try:
    yield
  finally:
    fused_adam.ENABLED = saved


def _train_burst(name: str, model, split, real_batch: int, settings: Settings) -> measuring.Burst:
  """`settings.steps` steps of `model`, its batches with `real_batch` rows of `split`."""
  data = bursts.real_rows(split, real_batch, settings.seed)
  return bursts.train_burst(name, model, data, settings.steps)


def _step_pair(names: tuple[str, str], config, split, image_shape, settings: Settings):
  """The bursts named `names` of the student and the plain VAE of `config`; (bursts, student)."""
  b = settings.batch_size
  lgm, plain = bursts.students(config, image_shape, settings.num_categories)
  pair = [
    _train_burst(names[0], lgm, split, lgm.real_batch_size(b), settings),
    _train_burst(names[1], plain, split, b, settings),
  ]
  return pair, lgm


def variant_bursts(settings: Settings, variants: StepVariants, split, image_shape, log):
  """The student and plain VAE steps of every variant in float32; (bursts, default student)."""
  timed, default_lgm = [], None
  for jit, spe in variants.combos:
    config = settings.base_config(jit_compile=jit, steps_per_execution=spe)
    name = variant_name(jit, spe)
    log(f"compiling the steps of {name}")
    pair, lgm = _step_pair((f"lgm/{name}", f"plain/{name}"), config, split, image_shape, settings)
    timed += pair
    if (jit, spe) == variants.default:
      default_lgm = lgm
  return timed, default_lgm


def k1_burst(settings: Settings, variants: StepVariants, split, image_shape) -> measuring.Burst:
  """The student at k = 1 (the second interval), default variant: to scale the interval runs."""
  lgm_k1, _ = bursts.students(variants.default_config(settings), image_shape, 2)
  real_batch = lgm_k1.real_batch_size(settings.batch_size)
  return _train_burst("lgm_k1/default", lgm_k1, split, real_batch, settings)


def no_distillation_config(settings: Settings, variants: StepVariants) -> config_lib.Config:
  """The default variant's config with decoder distillation off (the rest as it is)."""
  return dataclasses.replace(variants.default_config(settings), decoder_distillation=0.0)


def no_distillation_burst(
  settings: Settings, variants: StepVariants, split, image_shape
) -> measuring.Burst:
  """The default student step without decoder distillation: "lgm_no_distillation/default"."""
  config = no_distillation_config(settings, variants)
  lgm, _ = bursts.students(config, image_shape, settings.num_categories)
  real_batch = lgm.real_batch_size(settings.batch_size)
  return _train_burst("lgm_no_distillation/default", lgm, split, real_batch, settings)


def keras_adam_bursts(settings: Settings, variants: StepVariants, split, image_shape) -> list:
  """Both steps of the default variant with Keras' own Adam update instead of the fused one."""
  names = ("lgm_keras_adam/default", "plain_keras_adam/default")
  config = variants.default_config(settings)
  lgm, plain = bursts.students(config, image_shape, settings.num_categories)
  b = settings.batch_size
  with _keras_adam():
    return [
      _train_burst(names[0], lgm, split, lgm.real_batch_size(b), settings),
      _train_burst(names[1], plain, split, b, settings),
    ]


def precision_bursts(settings: Settings, variants: StepVariants, split, image_shape, log) -> list:
  """Both steps of each of `variants.precision_combos` in each precision other than float32."""
  timed = []
  for precision in variants.precisions:
    for jit, spe in variants.precision_combos:
      config = settings.base_config(jit_compile=jit, steps_per_execution=spe, precision=precision)
      name = variant_name(jit, spe)
      log(f"compiling the steps of {name} in {precision}")
      names = (burst_name("lgm", name, precision), burst_name("plain", name, precision))
      timed += _step_pair(names, config, split, image_shape, settings)[0]
  return timed


def conv_bursts(settings: Settings, variants: StepVariants, log) -> list:
  """The conv plain VAE step (J = 2, on noise images) in every precision, float32 first."""
  from tf_lifelong.model import student as student_lib  # noqa: PLC0415

  timed = []
  for precision in ("float32", *variants.precisions):
    config = dataclasses.replace(
      variants.default_config(settings),
      arch="conv",
      conv_filters=settings.conv_filters,
      precision=precision,
    )
    log(f"compiling the conv step in {precision}")
    conv = student_lib.new_student(config, CONV_IMAGE_SHAPE, 2)
    images = bursts.random_images(CONV_IMAGE_SHAPE, settings.batch_size, settings.seed)
    timed.append(bursts.train_burst(f"conv_plain/{precision}", conv, images, settings.conv_steps))
  return timed


def matmul_plans(settings: Settings, variants: StepVariants, image_shape, synthetic_rows: int):
  """The matmuls of the steps that run (flops.step_plan): the student's with `synthetic_rows`
  teacher rows and the default objective, the plain VAE's, and the student's without
  decoder distillation."""
  pixels = int(np.prod(image_shape))
  j = settings.num_categories
  config = variants.default_config(settings)
  plan = step_plan(config, pixels, j, synthetic_rows)
  plain_plan = step_plan(config, pixels, j, 0)
  plain = step_plan(no_distillation_config(settings, variants), pixels, j, synthetic_rows)
  return plan, plain_plan, plain


def matmul_bursts(
  settings: Settings, variants: StepVariants, plan: list[Matmul], no_distillation: list[Matmul]
) -> list:
  """The student step's matmuls alone: "matmul" in float32, "matmul/<p>" in each other one;
  those of the step without distillation, "matmul_no_distillation" (float32)."""
  import keras  # noqa: PLC0415

  timed = [
    bursts.matmul_burst(plan, settings.steps, settings.seed),
    bursts.matmul_burst(
      no_distillation, settings.steps, settings.seed, name="matmul_no_distillation"
    ),
  ]
  for precision in variants.precisions:
    dtype = keras.DTypePolicy(precision).compute_dtype
    timed.append(
      bursts.matmul_burst(plan, settings.steps, settings.seed, dtype, f"matmul/{precision}")
    )
  return timed


def pipeline_bursts(settings: Settings, split, lgm_real_batch: int) -> list:
  """The input pipeline alone: batches of the plain VAE's rows and of the student's real rows."""
  batches = max(settings.steps, 20)
  return [
    bursts.pipeline_burst("pipeline/plain", split, settings.batch_size, batches, settings.seed),
    bursts.pipeline_burst("pipeline/lgm", split, lgm_real_batch, batches, settings.seed),
  ]
