"""What the batch-norm statistics of the replay mix cost: a diagnostic of a finished run.

The student trains on mixed batches only (model/replay_mix.py), so the moving statistics
that its BatchNormalization layers use at test time are an exponential average
(momentum m = 0.99; reset at each hand-over, method.md section 5, so after n steps the
reset's weight is m^n, 0.99^4000 ~ 3e-18) over the last few hundred mixed batches.
`compare` evaluates a run's final student on the test sets of the distributions it saw
(the test split even for a run that evaluated on validation) with four sets of
statistics, its -ELBO split into terms (experiments/terms.py, E_q(z_d|x) enumerated):

- trained: the moving statistics as the run left them (what the model ships with);
- mix: the exact statistics of one large batch of the training mix: the last
  interval's real training rows and the teacher's synthetic rows in the run's shares
  (pi = `LifelongVAE.replay_fraction`), through the training step's own forward pass
  (`per_example_terms`, decoder distillation rows included);
- real_mix: the mix with its synthetic rows replaced by real validation images of the
  old distributions, evenly, and no distillation rows (not available to a lifelong
  learner: what the synthetic rows' difference from real ones does to the statistics);
- oracle: the statistics of the validation images of every distribution seen, in equal
  shares, which a lifelong learner does not keep either.

"Exact statistics of a batch" means one training-mode pass with every layer's momentum
at 0: Keras then sets moving mean and variance to that batch's mean and (biased)
variance, which are also what the training-mode pass normalises with.

    python -m tf_lifelong.experiments.batch_norm WORKDIR [ROWS]

prints the JSON of `compare(WORKDIR, ROWS)`.
"""

from __future__ import annotations

import contextlib
import json
import sys

import keras
import numpy as np
import tensorflow as tf

from tf_lifelong.data import streams
from tf_lifelong.evaluation import evaluate
from tf_lifelong.experiments import terms
from tf_lifelong.model import student_objective
from tf_lifelong.state import checkpoints

STATISTICS = ("trained", "mix", "real_mix", "oracle")


def _norm_layers(networks):
  """The BatchNormalization layers of `networks` (direct sub-layers, as handover.py resets)."""
  return [
    layer
    for network in networks
    for layer in network.layers
    if isinstance(layer, keras.layers.BatchNormalization)
  ]


@contextlib.contextmanager
def exact_statistics(*networks):
  """Within the block, a training-mode call sets each BN layer's moving stats to its batch's.

  Momentum 0 on every BatchNormalization layer of `networks`, restored on exit.
  """
  layers = _norm_layers(networks)
  saved = [layer.momentum for layer in layers]
  for layer in layers:
    layer.momentum = 0.0
  try:
    yield layers
  finally:
    for layer, momentum in zip(layers, saved):
      layer.momentum = momentum


def set_statistics(student, real, num_synthetic: int = 0, seed: int = 0) -> None:
  """Moving stats of the student's networks <- those of one training pass on a batch.

  Args:
    student: a LifelongVAE.
    real: real images [n, H, W, C], the batch's first rows.
    num_synthetic: the teacher's synthetic rows appended to them, as
      `replay_mix.replay_batch` lays them out (needs a teacher); with decoder
      distillation the decoder also runs on their latents, as in training. 0: the
      decoder sees only the real rows' posterior samples.
    seed: stateless seed of the pass's noise and of the synthetic rows.
  """
  x, n = tf.convert_to_tensor(real, tf.float32), len(real)
  replay = None
  if num_synthetic:
    replay = student.teacher_replay(num_synthetic, tf.constant([seed, 2]))
    x = tf.concat([x, replay["x"]], 0)
  omega = tf.concat([tf.ones([n]), tf.zeros([num_synthetic])], 0)
  noise = student_objective.draw_noise(
    student.num_categories, student.continuous_dim, n + num_synthetic, tf.constant([seed, 1])
  )
  if replay is not None and student.objective.decoder_distillation <= 0:
    replay = None
  with exact_statistics(student.encoder, student.decoder):
    student.per_example_terms(
      x, omega, noise, training=True, num_real=n if num_synthetic else None, replay=replay
    )


def _images(splits, ids, rows: int) -> np.ndarray:
  per = max(1, rows // len(ids))
  return np.concatenate([evaluate.Evaluator({i: splits[i]}, limit=per).images[i] for i in ids])


def compare(workdir: str, rows: int = 5000, seed: int = 0) -> dict:
  """Test -ELBO terms of a run's final student with each of STATISTICS as its BN statistics.

  Args:
    workdir: a finished run's workdir.
    rows: images in the one batch that sets each of the other statistics.
    seed: seed of those passes and of the evaluation's z_c noise.

  Returns:
    {"workdir", "checkpoint", "seen", "replay_fraction", "rows", and for each of
    STATISTICS the `terms.mean_terms` dict (real_mix is mix's when there is no old
    distribution or no replay)}.
  """
  student, config, state = checkpoints.restore_student(workdir)
  stream = streams.build_stream(config)
  seen = sorted({int(i) for i in state["seen"]})
  tests = evaluate.Evaluator(
    evaluate.test_sets(stream, "test"), limit=config.eval_examples, seed=config.seed
  )
  test_images = np.concatenate([tests.images[i] for i in seen])
  result = {"workdir": workdir, "checkpoint": state["checkpoint"], "seen": seen, "rows": rows}
  result["trained"] = terms.mean_terms(student, test_images, seed=seed)
  pi = student.replay_fraction if student.teacher is not None else 0.0
  result["replay_fraction"] = pi
  current = stream.intervals[-1].distribution
  real = _images({current.id: current.train}, [current.id], max(1, round(rows * (1 - pi))))
  synthetic = round(len(real) * pi / (1 - pi))
  set_statistics(student, real, synthetic, seed)
  result["mix"] = terms.mean_terms(student, test_images, seed=seed)
  old = [i for i in seen if i != current.id]
  validation = {i: stream.distributions[i].validation for i in seen}
  if old and synthetic:
    set_statistics(student, np.concatenate([real, _images(validation, old, synthetic)]), 0, seed)
    result["real_mix"] = terms.mean_terms(student, test_images, seed=seed)
  else:
    result["real_mix"] = result["mix"]
  oracle = _images(validation, seen, rows)
  set_statistics(student, oracle, 0, seed)
  result["oracle"] = terms.mean_terms(student, test_images, seed=seed)
  return result


def main(argv) -> None:
  if len(argv) not in (2, 3):
    raise SystemExit("usage: python -m tf_lifelong.experiments.batch_norm WORKDIR [ROWS]")
  rows = int(argv[2]) if len(argv) == 3 else 5000
  print(json.dumps(compare(argv[1], rows), indent=2))


if __name__ == "__main__":
  main(sys.argv)
