"""The -ELBO decomposition of runs (experiments/terms.py, bin/experiment --terms) on a tiny real run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import paths
from tf_lifelong import config as config_lib
from tf_lifelong.experiments import runner, terms
from tf_lifelong.state import artifacts
from tf_lifelong.train import lifelong

TINY = dict(
  dataset="mnist",
  data_dir=paths.DATA_ROOT,
  order=(3, 7),
  batch_size=32,
  hidden_units=32,
  continuous_dim=3,
  eval_every=10,
  max_steps_per_interval=30,
  patience=3,
  eval_examples=40,
  validation_synthetic_examples=40,
  seed=5,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """A finished run laid out as bin/experiment's OUT/runs/with_consistency/seed-0."""
  output = str(tmp_path_factory.mktemp("out"))
  workdir = runner.run_dir(output, "with_consistency", 0)
  config = config_lib.Config(**TINY)
  rows = lifelong.run(config, workdir, out=open(os.devnull, "w"))
  artifacts.write_json(os.path.join(workdir, runner.RESULT), {"config": config.to_dict()})
  return workdir, rows


def numpy_neg_elbo(student, images: np.ndarray, seed: int = 0) -> float:
  """The mean -ELBO of `images` with E_q(z_d|x) exact, in float64 numpy from the student's
  networks (inference mode): sum_j q_j [-log Bernoulli(x; decoder([e_j, z_c]))] +
  KL(N(mu, sigma^2) || N(0, I)) + KL(q || U(J)), with the z_c noise `terms.mean_terms` draws
  for one batch (stateless seed [seed, 0], split in two, the second)."""
  logits, loc, scale = (
    t.numpy().astype(np.float64) for t in student.encoder(images, training=False)
  )
  seed_c = tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int64), 2)[1]
  normal = tf.random.stateless_normal(loc.shape, seed_c).numpy().astype(np.float64)
  z_c = loc + scale * normal
  n, j = logits.shape
  q = np.exp(logits - logits.max(1, keepdims=True))
  q /= q.sum(1, keepdims=True)
  x = images.reshape(n, -1).astype(np.float64)
  rec = np.zeros(n)
  for category in range(j):
    z = np.concatenate([np.tile(np.eye(j)[category], (n, 1)), z_c], 1).astype(np.float32)
    a = student.decoder(z, training=False).numpy().reshape(n, -1).astype(np.float64)
    rec += q[:, category] * (x * np.logaddexp(0, -a) + (1 - x) * np.logaddexp(0, a)).sum(1)
  kl_c = 0.5 * (loc**2 + scale**2 - 1 - 2 * np.log(scale)).sum(1)
  kl_d = (q * np.log(q * j)).sum(1)
  return float(np.mean(rec + kl_c + kl_d))


@pytest.mark.real_data
def test_terms_match_an_independent_neg_elbo_and_the_discrete_kl_is_log_j_minus_the_entropy(
  tiny_run,
):
  workdir, rows = tiny_run
  got = terms.final_terms(workdir)
  assert got["seen"] == [3, 7] and got["examples"] == 80 and got["checkpoint"] == "interval-001"
  # KL(q(z_d|x) || U(J)) = log J - H(q), by hand from the encoder's logits.
  from tf_lifelong.data import streams
  from tf_lifelong.evaluation import evaluate
  from tf_lifelong.state import checkpoints

  student, config, _ = checkpoints.restore_student(workdir)
  evaluator = evaluate.Evaluator(evaluate.test_sets(streams.build_stream(config)), limit=40, seed=5)
  images = np.concatenate([evaluator.images[3], evaluator.images[7]])
  assert got["neg_elbo"] == pytest.approx(numpy_neg_elbo(student, images), rel=1e-4)
  logits = student.encoder(tf.convert_to_tensor(images), training=False)[0].numpy()
  q = np.exp(logits - logits.max(1, keepdims=True))
  q /= q.sum(1, keepdims=True)
  expected = np.mean(np.log(2) + np.sum(q * np.log(q), axis=1))
  assert got["kl_discrete"] == pytest.approx(expected, abs=1e-4)
  assert 0 <= got["kl_discrete"] <= got["log_num_categories"] == pytest.approx(np.log(2))
  # One hard z_d per example, as the run's own evaluation: close to its test -ELBO.
  sampled = terms.final_terms(workdir, mode="sample")
  assert sampled["kl_discrete"] == pytest.approx(got["kl_discrete"], rel=1e-6)
  assert sampled["neg_elbo"] == pytest.approx(rows[-1]["test_neg_elbo_seen"], rel=0.05)


@pytest.mark.real_data
def test_experiment_terms_writes_terms_json_and_refuses_an_empty_folder(tiny_run, tmp_path):
  workdir, _ = tiny_run
  output = os.path.dirname(os.path.dirname(os.path.dirname(workdir)))
  command = [sys.executable, os.path.join(paths.REPO, "bin", "experiment")]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  args = ["--preset=mnist_sequential", f"--data_dir={paths.DATA_ROOT}", "--terms"]
  done = subprocess.run(
    [*command, *args, f"--output={output}"], capture_output=True, text=True, env=env, timeout=300
  )
  assert done.returncode == 0, done.stderr[-2000:]
  assert "with_consistency (1 run(s)): -ELBO" in done.stdout
  with open(os.path.join(output, "terms.json")) as f:
    written = json.load(f)
  found = written["variants"]["with_consistency"]
  assert written["mode"] == "enumerate" and list(found["runs"]) == ["0"]
  assert found["mean"]["neg_elbo"] == pytest.approx(terms.final_terms(workdir)["neg_elbo"])
  empty = subprocess.run(
    [*command, *args, f"--output={tmp_path}"], capture_output=True, text=True, env=env, timeout=300
  )
  assert empty.returncode == 2, empty.stderr[-2000:]
  assert "holds no finished run" in empty.stderr and "Traceback" not in empty.stderr
  assert len(empty.stderr.strip().splitlines()) == 1


def test_unknown_mode_is_refused():
  with pytest.raises(ValueError, match="mode must be one of"):
    terms.mean_terms(None, np.zeros([1, 2, 2, 1], np.float32), mode="exact")


@pytest.mark.real_data
def test_exact_statistics_make_inference_mode_match_the_training_pass(tiny_run):
  """After one momentum-0 pass on x, BN in inference mode normalises x as training mode does."""
  from tf_lifelong.experiments import batch_norm
  from tf_lifelong.state import checkpoints

  student, _, _ = checkpoints.restore_student(tiny_run[0])
  x = tf.random.stateless_uniform([23, 28, 28, 1], [3, 4])
  z = tf.random.stateless_normal([19, student.num_categories + student.continuous_dim], [5, 6])
  for network, batch in ((student.encoder, x), (student.decoder, z)):
    before = [layer.momentum for layer in batch_norm._norm_layers([network])]
    assert before and all(m > 0 for m in before)

    def out(training, network=network, batch=batch):
      flat = tf.nest.flatten(network(batch, training=training))
      return np.concatenate([np.reshape(t, [len(batch), -1]) for t in flat], 1)

    assert not np.allclose(out(False), out(True), atol=1e-3)
    with batch_norm.exact_statistics(network):
      network(batch, training=True)
    np.testing.assert_allclose(out(False), out(True), atol=2e-3)
    assert [layer.momentum for layer in batch_norm._norm_layers([network])] == before


@pytest.mark.real_data
def test_batch_norm_compare_reports_three_statistics_of_one_student(tiny_run, monkeypatch):
  from tf_lifelong.experiments import batch_norm

  independent = []  # numpy_neg_elbo of each evaluation, with the statistics it ran under

  def mean_terms(student, images, mode="enumerate", seed=0):
    independent.append(numpy_neg_elbo(student, images, seed))
    return real_mean_terms(student, images, mode, seed)

  real_mean_terms = terms.mean_terms
  monkeypatch.setattr(batch_norm.terms, "mean_terms", mean_terms)
  got = batch_norm.compare(tiny_run[0], rows=60)
  assert len(independent) == len(batch_norm.STATISTICS)
  assert got["seen"] == [3, 7] and got["replay_fraction"] == pytest.approx(
    0.5 / 1.5
  )  # r k / (r k + 1), r = 0.5, k = 1
  trained = terms.final_terms(tiny_run[0])
  assert got["trained"]["neg_elbo"] == pytest.approx(trained["neg_elbo"], rel=1e-6)
  for name, expected in zip(batch_norm.STATISTICS, independent):
    t = got[name]
    assert t["examples"] == 80 and t["neg_elbo"] == pytest.approx(expected, rel=1e-4), name
  # Other statistics, another model: the four evaluations differ.
  assert len({round(got[name]["neg_elbo"], 4) for name in batch_norm.STATISTICS}) == 4
