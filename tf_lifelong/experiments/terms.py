"""Where a run's test -ELBO goes: its reconstruction, KL_c and KL_d terms.

-ELBO(x) = E_q[-log p(x | z_d, z_c)] + KL(q(z_c|x) || N(0, I)) + KL(q(z_d|x) || U(J))
(method.md section 3). The discrete term is log J - H(q(z_d|x)): at most
log J (a one-hot posterior, what consistency asks of the old distributions'
examples), 0 for a uniform posterior. Comparing the terms of two runs says
whether a gap in -ELBO comes from the reconstructions or from the latents.

`bin/experiment ... --terms` writes OUT/terms.json with `experiment_terms`:
for each finished run, the mean terms of its final student on the test sets
of every distribution it has seen (at most the run's `eval_examples` per
distribution, as its reports).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tf_lifelong.data import streams
from tf_lifelong.evaluation import evaluate
from tf_lifelong.experiments import runner
from tf_lifelong.model import batching, inference
from tf_lifelong.state import checkpoints

TERMS = ("reconstruction", "kl_continuous", "kl_discrete", "neg_elbo")
MODES = ("enumerate", "sample")
_BATCH = 500


def mean_terms(student, images: np.ndarray, mode: str = "enumerate", seed: int = 0) -> dict:
  """Mean -ELBO terms of `student` over `images`, in nats per example.

  Args:
    student: a LifelongVAE.
    images: float32 [N, H, W, C] in [0, 1].
    mode: "enumerate": E_q(z_d|x) exactly over the J categories; "sample": one
      hard z_d ~ Cat(softmax(l)) per example, as the reported test -ELBO.
    seed: stateless seed of the z_c (and z_d) noise; batch i uses seed + i.

  Returns:
    {term: mean} for TERMS, plus `log_num_categories` (log J, the bound of
    kl_discrete) and `examples`.
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")

  def stacked(x, i):  # [B, len(TERMS)]
    terms = inference.neg_elbo_terms(student, x, mode, seed=seed + i)
    return tf.stack([terms[name] for name in TERMS], axis=-1)

  n = len(images)
  sums = batching.batch_sum(stacked, images, _BATCH)
  result = {name: float(sums[t]) / n for t, name in enumerate(TERMS)}
  result["log_num_categories"] = float(np.log(student.num_categories))
  result["examples"] = n
  return result


def final_terms(workdir: str, mode: str = "enumerate", seed: int = 0) -> dict:
  """`mean_terms` of a run's latest checkpoint on its seen distributions' test sets.

  Returns:
    The terms, with `workdir`, `checkpoint`, `mode` and `seen` (distribution ids).
  """
  student, config, state = checkpoints.restore_student(workdir)
  stream = streams.build_stream(config)
  evaluator = evaluate.Evaluator(
    evaluate.test_sets(stream, config.eval_split), limit=config.eval_examples, seed=config.seed
  )
  seen = sorted({int(i) for i in state["seen"]})
  images = np.concatenate([evaluator.images[i] for i in seen])
  terms = mean_terms(student, images, mode, seed)
  return {
    "workdir": workdir,
    "checkpoint": state["checkpoint"],
    "mode": mode,
    "seen": seen,
    **terms,
  }


def experiment_terms(output: str, mode: str = "enumerate", seed: int = 0) -> dict:
  """`final_terms` of every finished run of an experiment folder, and their means.

  Args:
    output: a bin/experiment output folder (runs under OUT/runs/VARIANT/seed-N/).
    mode, seed: as `mean_terms`.

  Returns:
    {"mode": mode, "variants": {variant: {"runs": {seed: terms}, "mean": {term:
    mean over seeds}}}}; runs without a result.json (unfinished) are left out.
  """
  variants = {}
  root = os.path.join(output, "runs")
  for variant in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    runs = {}
    for name in sorted(os.listdir(os.path.join(root, variant))):
      workdir = os.path.join(root, variant, name)
      if name.startswith("seed-") and runner.read_result(workdir) is not None:
        runs[int(name[len("seed-") :])] = final_terms(workdir, mode, seed)
    if runs:
      mean = {t: float(np.mean([r[t] for r in runs.values()])) for t in TERMS}
      variants[variant] = {"runs": runs, "mean": mean}
  return {"mode": mode, "variants": variants}
