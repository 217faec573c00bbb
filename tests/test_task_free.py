"""Task-free streams (`boundaries=detect`): the statistic, the decision, the learner, the CLI.

The statistic against a hand computation on a tiny model; the decision rule
and the detection report on hand-made numbers; on real MNIST digits, a
stream 3, 7, 3 decided new, new, return to component 0 (J = 1, 2, 2) and a
stream of one digit that grows nothing; bin/train --boundaries=detect killed
inside an interval and resumed gives the uninterrupted run's decisions and
rows; the one-line errors of bad input.
"""

import json
import os

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf
from PIL import Image

from tests import paths, train_helpers
from tf_lifelong import Learner
from tf_lifelong import config as config_lib
from tf_lifelong.data import inputs, sources
from tf_lifelong.experiments import detection_report
from tf_lifelong.model import student as student_lib
from tf_lifelong.monitor import timeline
from tf_lifelong.train import detection

DETECT = config_lib.Config(
  boundaries="detect",
  chunk_size=500,
  chunk_steps=100,
  batch_size=64,
  hidden_units=256,
  continuous_dim=8,
  eval_every=50,
  max_steps_per_interval=600,
  patience=2,
  validation_synthetic_examples=200,
  learning_rate=1e-3,
  seed=1,
)
"""Chunks of 500 digits, 100 steps after each; a model big enough to tell 3s from 7s."""


@pytest.fixture(scope="module")
def digits():
  mnist = sources.load_source("mnist", paths.DATA_ROOT)
  train = mnist.train
  return {d: train.images[train.labels == d] for d in (1, 3, 7)}


def _chunks(images, count, start=0, size=500):
  return [images[start + i * size : start + (i + 1) * size] for i in range(count)]


# ------------------------------------------------------------------ statistic
def _np_bce(x, a):
  return np.sum(np.maximum(a, 0) - a * x + np.log1p(np.exp(-np.abs(a))), axis=(1, 2, 3))


def test_component_scores_match_a_hand_computation():
  config = config_lib.Config(arch="mlp", hidden_units=7, continuous_dim=3, seed=2)
  model = student_lib.new_student(config, (6, 5, 1), num_categories=3)
  x = np.random.default_rng(0).uniform(size=(4, 6, 5, 1)).astype(np.float32)
  got = detection.component_scores(model, x, seed=11)
  assert got.shape == (4, 4)
  _, loc, scale = (t.numpy() for t in model.encoder(tf.constant(x), training=False))
  eps = tf.random.stateless_normal([4, 3], tf.constant([11, 0], tf.int64)).numpy()
  z_c = loc + scale * eps
  kl = 0.5 * np.sum(loc**2 + scale**2 - 1 - 2 * np.log(scale), axis=1)
  for j in range(3):
    z = np.concatenate([np.tile(np.eye(3)[j], (4, 1)), z_c], 1).astype(np.float32)
    logits = model.decoder(tf.constant(z), training=False).numpy()
    np.testing.assert_allclose(got[:, j], _np_bce(x, logits) + kl, rtol=1e-4)
  np.testing.assert_allclose(got[:, 3], kl, rtol=1e-4)


def _welch_terms(chunk, held, k):
  """scipy's |Welch t| of each term: {k: the level s_k, j: s_j - s_k, J: KL_c}."""

  def t(a, b):
    return abs(scipy.stats.ttest_ind(a, b, equal_var=False).statistic)

  j_count = chunk.shape[1] - 1
  terms = {k: t(chunk[:, k], held[:, k]), j_count: t(chunk[:, -1], held[:, -1])}
  for j in range(j_count):
    if j != k:
      terms[j] = t(chunk[:, j] - chunk[:, k], held[:, j] - held[:, k])
  return terms


@pytest.mark.parametrize(
  "k,shift,driver",
  [
    (0, [3.0, 3.0, 0.0], 0),  # the level s_0 moves; s_1 - s_0 and KL_c do not
    (0, [0.0, 3.0, 0.0], 1),  # only s_1 - s_0 moves
    (0, [0.0, 0.0, 3.0], 2),  # only KL_c (column J = 2) moves
    (1, [0.0, 3.0, 0.0], 1),  # k = 1: the level s_1 moves, s_0 - s_1 by as much but noisier
  ],
)
def test_shift_statistic_is_welchs_t(k, shift, driver):
  rng = np.random.default_rng(1)
  chunk = rng.normal(size=(40, 3))
  held = rng.normal(0.0, 1.0, size=(25, 3))
  held = held - np.asarray(shift)  # the chunk sits `shift` above the held-out share
  terms = _welch_terms(chunk, held, k)
  assert max(terms, key=terms.get) == driver  # each case makes its own term the largest
  z, found = detection.shift_statistic(chunk, held, k=k)
  assert z == pytest.approx(terms[driver], rel=1e-9)
  assert found == driver


def _scores(rng, means, n, sd=1.0):
  """Fake component_scores [n, J + 1]: s_j ~ N(means[j], sd), KL_c ~ N(20, 1)."""
  s = rng.normal(means, sd, size=(n, len(means)))
  return np.concatenate([s, rng.normal(20.0, 1.0, size=(n, 1))], 1)


def test_decide_same_return_new():
  rng = np.random.default_rng(2)
  held = _scores(rng, [120.0, 100.0], 200, sd=10)  # current interval: component 1 best
  ref_scores = _scores(rng, [100.0, 150.0], 300, sd=10)  # component 0's own distribution
  p = detection.profile(ref_scores, 0, [0, 1])
  ref = detection.Reference(0, [0, 1], p.mean(0).tolist(), p.std(0, ddof=1).tolist(), [0, 0, 0])
  now = np.zeros(3)

  def returns(chunk):
    return lambda k: {0: detection.return_distances(chunk, ref, now)}

  kw = dict(shift_threshold=4.0, return_threshold=2.0, return_mass=0.5)
  to_0, to_1 = np.array([0.8, 0.2]), np.array([0.1, 0.9])
  same = _scores(rng, [120.0, 100.0], 500, sd=10)
  assert detection.decide(same, held, returns(same), to_1, **kw)["decision"] == "same"
  back = _scores(rng, [100.0, 150.0], 500, sd=10)
  out = detection.decide(back, held, returns(back), to_0, **kw)
  assert (out["decision"], out["component"], out["current"]) == ("return", 0, 1)
  assert out["return_mass"] == 0.8 and out["return_statistic"] < 0.5
  # The encoder does not send it to 0: new, however close the profile.
  assert detection.decide(back, held, returns(back), to_1, **kw)["decision"] == "new"
  other = _scores(rng, [140.0, 100.0], 500, sd=10)  # same level under k, another profile
  out = detection.decide(other, held, returns(other), to_0, **kw)
  assert out["decision"] == "new" and out["statistic"] > 4.0 and out["return_statistic"] > 2.0
  # Forgotten: the level moved by 1.5 sds, within the bound.
  drifted = _scores(rng, [115.0, 165.0], 500, sd=10)
  out = detection.decide(drifted, held, returns(drifted), to_0, **kw)
  assert (out["decision"], out["component"]) == ("return", 0)
  far = _scores(rng, [140.0, 190.0], 500, sd=10)  # 4 sds: not j's, whatever the posterior
  assert detection.decide(far, held, returns(far), to_0, **kw)["decision"] == "new"
  # No interval open: return or new only, no shift statistic.
  out = detection.decide(back, None, returns(back), to_0, **kw)
  assert (out["decision"], out["statistic"]) == ("return", None)


def test_a_same_chunk_computes_no_return_statistics():
  rng = np.random.default_rng(3)
  held = _scores(rng, [120.0, 100.0], 200, sd=10)
  asked = []

  def masses():
    asked.append("masses")
    return np.array([0.5, 0.5])

  def returns(k):
    asked.append("returns")
    return {}

  kw = dict(shift_threshold=4.0, return_threshold=2.0, return_mass=0.0)
  same = _scores(rng, [120.0, 100.0], 500, sd=10)
  assert detection.decide(same, held, returns, masses, **kw)["decision"] == "same"
  assert asked == []  # the judge's scores and posterior are left for chunks that changed
  other = _scores(rng, [150.0, 100.0], 500, sd=10)
  assert detection.decide(other, held, returns, masses, **kw)["decision"] == "new"
  assert asked == ["returns", "masses"]


def test_reference_prediction_follows_the_drift_but_not_kl():
  ref = detection.Reference(0, [0, 1], [100.0, 20.0, 30.0], [10.0, 2.0, 5.0], [90.0, 15.0, 25.0])
  np.testing.assert_allclose(ref.predicted(np.array([95.0, 10.0, 20.0])), [105.0, 20.0, 25.0])


# ------------------------------------------------------------------ report
def _d(chunk, decision, truth, component=None):
  return {"chunk": chunk, "decision": decision, "truth": truth, "component": component}


def test_assess_counts_found_missed_false_and_right():
  decisions = [
    _d(0, "new", 3, 0),
    _d(1, "same", 3),
    _d(2, "same", 7),  # transition at 2 found one chunk late
    _d(3, "new", 7, 1),
    _d(4, "new", 7, 2),  # a false shift
    _d(5, "return", 3, 0),  # a right return
    _d(6, "same", 3),
    _d(7, "same", 1),  # missed: no shift at 7 or 8
    _d(8, "same", 1),
    _d(9, "return", 7, 0),  # found, but returns to 3's component: wrong
  ]
  out = detection_report.assess(decisions)
  assert out["transitions"] == 4
  assert (out["found"], out["missed"], out["false"]) == (3, 1, 1)
  assert out["false_chunks"] == [4]
  assert out["max_delay"] == 1 and out["mean_delay"] == pytest.approx(1 / 3)
  assert (out["decisions_right"], out["wrong_chunks"]) == (2, [9])


# ------------------------------------------------------------------ learner
def test_digits_3_7_3_are_new_new_and_a_return(digits, tmp_path):
  learner = Learner(DETECT, str(tmp_path / "w"), out=open(os.devnull, "w"))
  stream = [(c, 3) for c in _chunks(digits[3], 3)] + [(c, 7) for c in _chunks(digits[7], 3)]
  stream += [(c, 3) for c in _chunks(digits[3], 3, start=1500)]
  decisions, sizes = [], []
  for images, truth in stream:
    decisions.append(learner.observe(images, truth=truth))
    sizes.append(learner.num_categories)
  changes = [(d.chunk, d.decision, d.component) for d in decisions if d.decision != "same"]
  assert changes == [(0, "new", 0), (3, "new", 1), (6, "return", 0)]
  assert sizes == [1, 1, 1, 2, 2, 2, 2, 2, 2]
  learner.finish()
  rows = learner.history
  assert [(r["first_chunk"], r["last_chunk"], r["decision"]) for r in rows] == [
    (0, 2, "new"),
    (3, 5, "new"),
    (6, 8, "return"),
  ]
  assert [r["num_categories"] for r in rows] == [1, 2, 2]
  lines = (tmp_path / "w" / "boundaries.jsonl").read_text().splitlines()
  logged = [json.loads(line) for line in lines]
  # A line per segment (segmenting.py); observe returned each chunk's last segment's.
  last = {d["chunk"]: d for d in logged}
  assert [last[c]["decision"] for c in range(9)] == [d.decision for d in decisions]
  assert all(d["decision"] == "same" for d in logged if d["start"] > 0)  # no cut decides
  assert last[6]["truth"] == 3 and last[6]["threshold"] == DETECT.shift_threshold
  # The 3s' reference was made as interval 0 ended, which also made the judge (the teacher
  # of the 7s' interval): age 0, the base bound; the ratio near 1 for a return.
  assert last[6]["ratio_threshold"] == pytest.approx(DETECT.return_ratio)
  assert 0.8 < last[6]["return_ratio"] <= DETECT.return_ratio
  assert not os.listdir(tmp_path / "w" / "detect")  # the chunks go once the interval ends
  # The timeline, redrawn as each interval ended: the last one shows all nine decisions.
  picture = np.asarray(Image.open(tmp_path / "w" / "detection_timeline.png").convert("RGB"))
  for shown, equal in ((logged, True), (logged[:6], False)):
    drawn = np.asarray(timeline.draw(shown, return_mass=DETECT.return_mass).convert("RGB"))
    assert (drawn.shape == picture.shape and (drawn == picture).all()) == equal
  report = detection_report.assess(logged)
  assert (report["found"], report["missed"], report["false"], report["decisions_right"]) == (
    2,
    0,
    0,
    2,
  )


def test_one_digit_grows_nothing(digits, tmp_path):
  learner = Learner(DETECT, str(tmp_path / "w"), out=open(os.devnull, "w"))
  for images in _chunks(digits[1], 6):
    learner.observe(images)
  learner.finish()
  assert learner.num_categories == 1
  assert learner.decisions[0]["decision"] == "new" and len(learner.decisions) >= 6
  assert {d["decision"] for d in learner.decisions[1:]} == {"same"}
  assert {d["chunk"] for d in learner.decisions} == set(range(6))
  assert len(learner.history) == 1 and learner.history[0]["chunks"] == 6
  # Opened again later: no interval is open, so a chunk is a return or new.
  again = Learner.load(str(tmp_path / "w"), out=open(os.devnull, "w"))
  assert again.chunks_observed == 6
  back = again.observe(digits[1][3000:3500])
  assert (back.decision, back.component, back.statistic) == ("return", 0, None)
  assert again.num_categories == 1


def test_observe_refuses_bad_chunks(digits, tmp_path):
  learner = Learner(DETECT, str(tmp_path / "w"), out=open(os.devnull, "w"))
  learner.observe(digits[3][:500])
  with pytest.raises(inputs.DataError, match=r"images are \[14, 28, 1\] but this model takes"):
    learner.observe(digits[3][:500, :14])
  with pytest.raises(inputs.DataError, match="fewer than batch_size"):
    learner.observe(digits[3][:10])
  assert learner.chunks_observed == 1


def test_impossible_combinations_are_config_errors():
  with pytest.raises(config_lib.ConfigError, match="chunk_size .* must be at least batch_size"):
    config_lib.Config(boundaries="detect", chunk_size=100, batch_size=128)
  with pytest.raises(config_lib.ConfigError, match="batch_vae"):
    config_lib.Config(boundaries="detect", baseline="batch_vae")
  with pytest.raises(config_lib.ConfigError, match="boundaries must be one of"):
    config_lib.Config(boundaries="guess")


# ------------------------------------------------------------------ bin/train
def _npz(tmp_path, digits) -> str:
  """An .npz stream source: distribution 0 = 1000 3s, 1 = 1000 7s (test: 100 each)."""
  images = np.concatenate([digits[3][:1100], digits[7][:1100]])
  ids = np.repeat([0, 1], 1100)
  path = str(tmp_path / "digits.npz")
  np.savez(path, images=images[..., 0], distribution=ids)
  return path


def _cli_args(npz: str, workdir: str) -> list[str]:
  return [
    f"--dataset=npz:{npz}",
    "--order=0,1,0",
    "--boundaries=detect",
    "--chunk_size=300",
    "--chunk_steps=50",
    "--batch_size=64",
    "--hidden_units=128",
    "--continuous_dim=8",
    "--eval_every=50",
    "--max_steps_per_interval=300",
    "--patience=2",
    "--eval_examples=100",
    "--validation_synthetic_examples=100",
    "--learning_rate=1e-3",
    "--threads=1",
    "--seed=4",
    "--checkpoint_every=100",
    f"--workdir={workdir}",
  ]


def _outcome(workdir: str):
  with open(os.path.join(workdir, "boundaries.jsonl")) as f:
    decisions = [json.loads(line) for line in f]
  keys = ("chunk", "decision", "component", "best_return")
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  row_keys = ("interval", "first_chunk", "last_chunk", "num_categories", "steps")
  values = [d["statistic"] or 0.0 for d in decisions] + [r["test_neg_elbo_seen"] for r in rows]
  return (
    [tuple(d[k] for k in keys) for d in decisions],
    [tuple(r[k] for k in row_keys) for r in rows],
    values,
  )


def test_cli_detect_killed_and_resumed_decides_the_same(digits, tmp_path):
  npz = _npz(tmp_path, digits)
  reference = str(tmp_path / "reference")
  done = train_helpers.train(*_cli_args(npz, reference))
  assert done.returncode == 0, done.stderr[-2000:]
  assert "boundaries detected" in done.stdout and "chunk 3:" in done.stdout
  with open(os.path.join(reference, "metrics.csv")) as f:
    header = f.readline().strip().split(",")
  assert {"first_chunk", "last_chunk", "truth", "decision"} <= set(header)
  expected = _outcome(reference)
  assert [d[1] for d in expected[0] if d[1] != "same"][:2] == ["new", "new"]
  # Inside interval 1 after chunk 4 (the latest chunk checkpoint is older: every 100
  # steps, 2 chunks), then in its closing training (after a step checkpoint, with the
  # decision that ended it pending).
  for kill in ("chunk:1:4", "train:1:100"):
    workdir = str(tmp_path / kill.replace(":", "_"))
    killed = train_helpers.train(*_cli_args(npz, workdir), kill_at=kill)
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = train_helpers.train(*_cli_args(npz, workdir))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from checkpoint" in resumed.stdout
    got = _outcome(workdir)
    assert got[0] == expected[0] and got[1] == expected[1]
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-4)  # float round-off only


@pytest.mark.parametrize(
  "flags, message",
  [
    (
      ["--baseline=batch_vae"],
      "boundaries=detect cannot be honoured with baseline=batch_vae: the batch VAE learns all "
      "distributions at once, there are no transitions to detect",
    ),
    (
      ["--chunk_size=100"],
      "chunk_size (100) must be at least batch_size (128): a chunk trains on batches of its "
      "own examples",
    ),
  ],
)
def test_cli_refuses_what_detect_cannot_honour(tmp_path, flags, message):
  out = train_helpers.run_tool(
    "train",
    "--dataset=mnist",
    f"--data_dir={paths.DATA_ROOT}",
    "--boundaries=detect",
    *flags,
    f"--workdir={tmp_path}/w",
  )
  assert (out.returncode, out.lines, out.tensorflow) == (2, [f"train: error: {message}"], False)


def test_report_section_pairs_detect_with_given(tmp_path):
  from tf_lifelong.experiments import report

  work = tmp_path / "detect"
  work.mkdir()
  decisions = [_d(0, "new", 3, 0), _d(1, "same", 3), _d(2, "new", 7, 1), _d(3, "return", 3, 0)]
  for d in decisions:
    d["seconds"] = 0.25
  (work / "boundaries.jsonl").write_text("".join(json.dumps(d) + "\n" for d in decisions))
  detect = report.Run(
    "detect", 0, str(work), [{"test_neg_elbo_seen": 120.5}] * 3, {"wall_seconds": 60.0}, None
  )
  given = report.Run(
    "with_consistency",
    0,
    str(tmp_path),
    [{"test_neg_elbo_seen": 119.0}],
    {"wall_seconds": 50.0},
    None,
  )
  (entry,) = detection_report.summarize({"detect": [detect], "with_consistency": [given]})
  assert (entry["found"], entry["false"], entry["decisions_right"], entry["intervals"]) == (
    2,
    0,
    2,
    3,
  )
  assert (entry["detect_test_neg_elbo"], entry["given_test_neg_elbo"]) == (120.5, 119.0)
  assert entry["decision_seconds"] == 1.0
  (copied,) = detection_report.copy_decisions(str(tmp_path / "out"), {"detect": [detect]})
  assert copied.endswith("boundaries/seed-0.jsonl") and len(open(copied).readlines()) == 4
  text = "\n".join(detection_report.markdown([entry]))
  assert (
    "| 0 | 4 | 2 | 2 | 0 | 0 | 0.00 / 0 | 2/2 (100%) | 3 | 120.50 | 119.00 | 60 / 50 | 1.0 |"
    in text
  )


def test_lifelong_run_marks_the_last_detected_interval_for_hooks(digits, tmp_path):
  from tf_lifelong.train import lifelong

  class Seen:
    def __init__(self):
      self.calls = []

    def after_interval(self, ctx, row):
      self.calls.append((row["interval"], ctx.last, list(ctx.seen_truth or [])))

  config = DETECT.replace_checked(
    dataset=f"npz:{_npz(tmp_path, digits)}", order=(1, 0), max_steps_per_interval=200
  )
  hook = Seen()
  rows = lifelong.run(config, str(tmp_path / "w"), hooks=[hook], out=open(os.devnull, "w"))
  assert [(r["first_chunk"], r["truth"]) for r in rows] == [(0, 1), (1, 0)]  # one chunk each
  assert hook.calls == [(0, False, [1]), (1, True, [1, 0])]
