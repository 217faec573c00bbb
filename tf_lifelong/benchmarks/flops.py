"""The FLOP count of one training step of the MLP student: its matmuls and their shapes.

`matmul_step_plan` lists every matmul of a student step (with or without a
teacher), `flop_summary` sums their FLOPs. The step benchmark times these
matmuls alone with `tf.matmul` (bursts.matmul_burst) for the
matmul-bound rate; docs/performance.md explains the count.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Matmul:
  """One matmul [m, k] x [k, n] of the step: 2 m k n FLOPs."""

  name: str
  m: int
  k: int
  n: int
  transpose_a: bool = False
  transpose_b: bool = False

  @property
  def flops(self) -> int:
    return 2 * self.m * self.k * self.n


def _dense(
  name: str, rows: int, fan_in: int, fan_out: int, *, train: bool, input_grad: bool = True
) -> list[Matmul]:
  """The matmuls of one dense layer on `rows` rows: forward, and if trained the
  input gradient dY W^T (unless the input needs none) and the kernel gradient X^T dY."""
  out = [Matmul(f"{name}/forward", rows, fan_in, fan_out)]
  if train:
    if input_grad:
      out.append(Matmul(f"{name}/grad_input", rows, fan_out, fan_in, transpose_b=True))
    out.append(Matmul(f"{name}/grad_kernel", fan_in, rows, fan_out, transpose_a=True))
  return out


def matmul_step_plan(
  pixels: int,
  width: int,
  categories: int,
  continuous: int,
  batch: int,
  synthetic: int,
  teacher_categories: int | None,
  teacher_encoder_rows: int | None = None,
  distilled_rows: int = 0,
) -> list[Matmul]:
  """Every matmul of one student step of the MLP (method.md section 2), with its shape.

  Student (trained, all `batch` rows): encoder D -> W -> W -> (J + 2F) and
  decoder (J + F) -> W -> W -> D, forward and backward. The encoder's first
  layer needs no input gradient (x is data); the decoder's first layer does
  (the reparameterised z depends on the encoder). With decoder distillation the
  student's decoder runs, forward and backward, on `distilled_rows` more rows: the
  synthetic rows' own latents (student_objective._decode; `step_plan` sets it).
  Teacher (frozen, forward only): the decoder on the `synthetic` rows it
  generates, and the encoder on `teacher_encoder_rows` rows (the step gives it
  the synthetic rows only; default `synthetic`). Biases, batch norm and
  activations are not matmuls and are not counted.

  Returns:
    The list of `Matmul`s; sum(flops) is the step's matmul FLOPs.
  """
  d, w, j, f = pixels, width, categories, continuous
  plan = []
  plan += _dense("encoder/hidden_1", batch, d, w, train=True, input_grad=False)
  plan += _dense("encoder/hidden_2", batch, w, w, train=True)
  plan += _dense("encoder/latent_projection", batch, w, j + 2 * f, train=True)
  decoded = batch + distilled_rows
  plan += _dense("decoder/latent_input", decoded, j + f, w, train=True)
  plan += _dense("decoder/hidden_2", decoded, w, w, train=True)
  plan += _dense("decoder/output_layer", decoded, w, d, train=True)
  if teacher_categories is not None and synthetic > 0:
    jt = teacher_categories
    rows = synthetic if teacher_encoder_rows is None else teacher_encoder_rows
    plan += _dense("teacher/decoder/latent_input", synthetic, jt + f, w, train=False)
    plan += _dense("teacher/decoder/hidden_2", synthetic, w, w, train=False)
    plan += _dense("teacher/decoder/output_layer", synthetic, w, d, train=False)
    plan += _dense("teacher/encoder/hidden_1", rows, d, w, train=False)
    plan += _dense("teacher/encoder/hidden_2", rows, w, w, train=False)
    plan += _dense("teacher/encoder/latent_projection", rows, w, jt + 2 * f, train=False)
  return plan


def step_plan(config, pixels: int, categories: int, synthetic: int) -> list[Matmul]:
  """The matmuls of the MLP student step that `config` trains, J = `categories` after
  J - 1 hand-overs (a teacher of J - 1 when `synthetic` > 0), batch config.batch_size.

  Of the objective's options only decoder distillation adds matmuls (the decoder on the
  synthetic rows' latents); consistency uses the teacher's encoder on the synthetic rows,
  counted either way, and the mutual information and the component anchor reuse the
  encoder's logits.
  """
  distilled = synthetic if config.decoder_distillation > 0 else 0
  teacher = categories - 1 if synthetic > 0 else None
  return matmul_step_plan(
    pixels,
    config.hidden_units,
    categories,
    config.continuous_dim,
    config.batch_size,
    synthetic,
    teacher,
    distilled_rows=distilled,
  )


def flop_summary(plan: list[Matmul], batch: int) -> dict:
  """FLOPs of a step plan: total, per example, and per group (student / teacher)."""
  total = sum(m.flops for m in plan)
  groups: dict[str, int] = {}
  for m in plan:
    group = "teacher" if m.name.startswith("teacher/") else "student"
    groups[group] = groups.get(group, 0) + m.flops
  return {
    "per_step": total,
    "per_example": total / batch,
    "per_example_by_part": {k: v / batch for k, v in sorted(groups.items())},
    "matmuls": len(plan),
  }
