"""The step benchmark's numbers, from its timed bursts (step_bursts.py), found by name.

Rates are medians over rounds; ratios (student vs plain VAE, student vs matmul
bound, a precision vs float32) are medians of the per-round ratios, so a load
change on a shared machine hits both sides of a ratio alike (measuring.py).
Each set of numbers is given on the wall clock and again under "cpu_time".
"""

from __future__ import annotations

from tf_lifelong.benchmarks import measuring
from tf_lifelong.benchmarks.flops import Matmul, flop_summary
from tf_lifelong.benchmarks.settings import Settings
from tf_lifelong.benchmarks.step_bursts import StepVariants, burst_name, variant_name


def results(
  timed: list,
  variants: StepVariants,
  settings: Settings,
  plans: tuple[list[Matmul], list[Matmul], list[Matmul]],
  synthetic_rows: int,
) -> dict:
  """The step benchmark's part of the result, from its bursts after measuring.round_robin.

  Args:
    timed: every burst of the step benchmark, timed.
    variants: the variants they time.
    settings: the benchmark settings.
    plans: the matmuls of the student's step, of the plain VAE's and of the student's
      without decoder distillation (step_bursts.matmul_plans).
    synthetic_rows: the teacher's rows in the student's batch.
  """
  b = settings.batch_size
  by_name = {burst.name: burst for burst in timed}
  flops = flop_summary(plans[0], b)
  result = step_results(by_name, "wall", variants, settings, flops)
  weight = variants.default_config(settings).decoder_distillation
  result["replay_overhead"] = replay_overhead(by_name, "wall", variants, b, weight)
  result.update(
    {
      "cpu_time": {
        **step_results(by_name, "cpu", variants, settings, flops),
        "replay_overhead": replay_overhead(by_name, "cpu", variants, b, weight),
      },
      "flops_per_example": flops["per_example"],
      "flops": {
        "lgm": flops,
        "plain_vae": flop_summary(plans[1], b),
        "lgm_without_distillation": flop_summary(plans[2], b),
        "synthetic_rows": synthetic_rows,
        "real_rows": b - synthetic_rows,
      },
      "default_variant": variants.default_name,
      "precision": {
        "precisions": ["float32", *variants.precisions],
        "cpu": measuring.cpu_info(),
        **precision_results(by_name, "wall", variants, settings, flops),
        "cpu_time": precision_results(by_name, "cpu", variants, settings, flops),
      },
      "rounds": {
        burst.name: {clock: [round(r, 2) for r in burst.rates(clock)] for clock in ("wall", "cpu")}
        for burst in timed
      },
    }
  )
  return result


def _rate_fns(by_name: dict, clock: str):
  """(per_sec(name): median rate over rounds, ratio(num, den): median over rounds of
  rate(num) / rate(den)) of the bursts in `by_name` on `clock`."""

  def per_sec(name):
    return measuring.median(by_name[name].rates(clock))

  def ratio(num, den):
    return measuring.median(
      [a / c for a, c in zip(by_name[num].rates(clock), by_name[den].rates(clock))]
    )

  return per_sec, ratio


def _variant_results(by_name: dict, clock: str, variants: StepVariants, b: int) -> dict:
  """Per float32 variant: both steps' rates, their step time ratio, the student vs matmul bound."""
  per_sec, ratio = _rate_fns(by_name, clock)
  out = {}
  for jit, spe in variants.combos:
    name = variant_name(jit, spe)
    out[name] = {
      "jit_compile": jit,
      "steps_per_execution": spe,
      "lgm_steps_per_sec": per_sec(f"lgm/{name}"),
      "lgm_examples_per_sec": per_sec(f"lgm/{name}") * b,
      "plain_vae_steps_per_sec": per_sec(f"plain/{name}"),
      "plain_vae_examples_per_sec": per_sec(f"plain/{name}") * b,
      "lgm_over_plain_step_time": ratio(f"plain/{name}", f"lgm/{name}"),
      "lgm_fraction_of_matmul_bound": ratio(f"lgm/{name}", "matmul"),
    }
  return out


def replay_overhead(by_name: dict, clock: str, variants: StepVariants, b: int, weight) -> dict:
  """The student's step time over the plain VAE's (the default variant), with the default
  objective (decoder distillation at `weight`) and without the distillation, side by side;
  their quotient is the distillation's own cost. Medians of per-round ratios."""
  per_sec, ratio = _rate_fns(by_name, clock)
  name = variants.default_name
  off = "lgm_no_distillation/default"
  return {
    "decoder_distillation": weight,
    "default_objective": ratio(f"plain/{name}", f"lgm/{name}"),
    "without_distillation": ratio(f"plain/{name}", off),
    "distillation_step_time": ratio(off, f"lgm/{name}"),
    "lgm_without_distillation_examples_per_sec": per_sec(off) * b,
    "lgm_without_distillation_fraction_of_matmul_bound": ratio(off, "matmul_no_distillation"),
  }


def _keras_adam_results(by_name: dict, clock: str, name: str, b: int) -> dict:
  """Both steps with Keras' own Adam vs the fused update (variant `name`), and vs the bound."""
  per_sec, ratio = _rate_fns(by_name, clock)
  return {
    "lgm_examples_per_sec": per_sec("lgm_keras_adam/default") * b,
    "plain_vae_examples_per_sec": per_sec("plain_keras_adam/default") * b,
    "lgm_fused_over_keras_adam_rate": ratio(f"lgm/{name}", "lgm_keras_adam/default"),
    "plain_fused_over_keras_adam_rate": ratio(f"plain/{name}", "plain_keras_adam/default"),
    "lgm_keras_adam_fraction_of_matmul_bound": ratio("lgm_keras_adam/default", "matmul"),
  }


def step_results(
  by_name: dict, clock: str, variants: StepVariants, settings: Settings, flops: dict
) -> dict:
  """Rates (medians over rounds) and ratios (medians of per-round ratios) on one clock."""
  b = settings.batch_size
  per_sec, ratio = _rate_fns(by_name, clock)
  by_variant = _variant_results(by_name, clock, variants, b)
  name = variants.default_name
  default = by_variant[name]
  best = max(by_variant.values(), key=lambda v: v["lgm_steps_per_sec"])
  k1 = settings.student_k1
  return {
    "lgm_examples_per_sec": default["lgm_examples_per_sec"],
    "lgm_steps_per_sec": default["lgm_steps_per_sec"],
    "plain_vae_examples_per_sec": default["plain_vae_examples_per_sec"],
    "plain_vae_steps_per_sec": default["plain_vae_steps_per_sec"],
    "lgm_over_plain_step_time": default["lgm_over_plain_step_time"],
    "matmul_bound_examples_per_sec": per_sec("matmul") * b,
    "matmul_gflops_per_sec": per_sec("matmul") * flops["per_step"] / 1e9,
    "lgm_fraction_of_matmul_bound": default["lgm_fraction_of_matmul_bound"],
    "best_variant": {
      "name": variant_name(best["jit_compile"], best["steps_per_execution"]),
      **best,
    },
    "lgm_k1_steps_per_sec": per_sec("lgm_k1/default") if k1 else None,
    "lgm_k9_over_k1_step_time": ratio("lgm_k1/default", f"lgm/{name}") if k1 else None,
    "keras_adam": (
      _keras_adam_results(by_name, clock, name, b) if settings.compare_keras_adam else None
    ),
    "pipeline_examples_per_sec": per_sec("pipeline/plain") * b,
    "pipeline_lgm_batches_per_sec": per_sec("pipeline/lgm"),
    "pipeline_over_plain_vae": ratio("pipeline/plain", f"plain/{name}"),
    "pipeline_over_lgm_batches": ratio("pipeline/lgm", f"lgm/{name}"),
    "step_variants": by_variant,
  }


def _precision_variants(by_name: dict, clock: str, variants: StepVariants, precision, b) -> dict:
  """Per variant of `variants.precision_combos`: both steps' rates in `precision`, vs float32."""
  per_sec, ratio = _rate_fns(by_name, clock)
  out = {}
  for jit, spe in variants.precision_combos:
    name = variant_name(jit, spe)
    lgm, plain = (burst_name(kind, name, precision) for kind in ("lgm", "plain"))
    out[name] = {
      "lgm_examples_per_sec": per_sec(lgm) * b,
      "plain_vae_examples_per_sec": per_sec(plain) * b,
      "lgm_rate_over_float32": ratio(lgm, f"lgm/{name}"),
      "plain_vae_rate_over_float32": ratio(plain, f"plain/{name}"),
    }
  return out


def precision_results(
  by_name: dict, clock: str, variants: StepVariants, settings: Settings, flops: dict
) -> dict:
  """Per precision (float32 first): the steps, the matmul bound and the conv step on one clock.

  Rates are medians over rounds; `*_over_float32` are medians of per-round rate ratios
  against the same burst in float32 (above 1: faster than float32).
  """
  b = settings.batch_size
  per_sec, ratio = _rate_fns(by_name, clock)
  out = {}
  default_name = variants.default_name
  for precision in ("float32", *variants.precisions):
    by_variant = _precision_variants(by_name, clock, variants, precision, b)
    matmul = "matmul" if precision == "float32" else f"matmul/{precision}"
    entry = {
      **by_variant[default_name],
      "variants": by_variant,
      "matmul_bound_examples_per_sec": per_sec(matmul) * b,
      "matmul_gflops_per_sec": per_sec(matmul) * flops["per_step"] / 1e9,
      "matmul_rate_over_float32": ratio(matmul, "matmul"),
      "lgm_fraction_of_matmul_bound": ratio(burst_name("lgm", default_name, precision), matmul),
    }
    if settings.precision_conv:
      entry["conv_plain_vae_examples_per_sec"] = per_sec(f"conv_plain/{precision}") * b
      entry["conv_plain_vae_rate_over_float32"] = ratio(
        f"conv_plain/{precision}", "conv_plain/float32"
      )
    out[precision] = entry
  return out
