"""The per-interval sampling scores (evaluation/sampling_scores.py), the classifier cache
(evaluation/classifier_cache.py) and their place in a run's record: by hand on small
arrays and stub models, then the columns of a tiny run on tests/synthetic.py's stream."""

import csv
import json
import math
import os
import types

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import synthetic
from tf_lifelong import Learner
from tf_lifelong import config as config_lib
from tf_lifelong.data.sources import Split
from tf_lifelong.data.streams import Distribution, Interval, Stream
from tf_lifelong.evaluation import classifier_cache
from tf_lifelong.evaluation import sampling_metrics as sm
from tf_lifelong.evaluation import sampling_scores as ss
from tf_lifelong.experiments import layout, report
from tf_lifelong.monitor import summaries
from tf_lifelong.state import artifacts
from tf_lifelong.train import lifelong, recording


# --------------------------------------------------------------- by hand
def test_classifier_columns_by_hand():
  # Component 0: three 3s and a 7 (own 3); component 1: two 7s, two 3s (own 7, a tie:
  # the majority is 3, the smaller id); component 2: all 5s, its truth unknown.
  score = sm.sampling_score(np.array([[3, 3, 3, 7], [7, 7, 3, 3], [5, 5, 5, 5]]), (3, 5, 7))
  row = ss.classifier_columns(score, [3, 7, None])
  assert row["sampling_own_shares"] == [0.75, 0.5, None]
  assert row["sampling_own_share"] == pytest.approx(0.625)  # (0.75 + 0.5) / 2
  assert row["sampling_majority"] == [3, 3, 5]
  assert row["sampling_majority_own"] == 1  # component 0 only
  assert row["sampling_classes_covered"] == 2  # {3, 5}
  assert row["sampling_truth"] == [3, 7, None]
  assert ss.classifier_columns(score, [3, 3, None])["sampling_majority_own"] == 2
  # A truth the classifier cannot predict is unknown; no known truth: NaN and None.
  assert ss.own_shares(score, [9, 5, 3]) == [None, 0.0, 0.0]
  row = ss.classifier_columns(score, [None, None, 11])
  assert math.isnan(row["sampling_own_share"]) and row["sampling_majority_own"] is None
  with pytest.raises(ValueError, match="2 truths for 3 components"):
    ss.classifier_columns(score, [3, 7])


def test_self_consistency_and_real_on_component_by_hand():
  mean, per = ss.self_consistency(np.array([[0, 0, 1, 0], [1, 1, 1, 0], [2, 0, 0, 0]]))
  assert per == [0.75, 0.75, 0.25]
  assert mean == pytest.approx(1.75 / 3)
  assert ss.real_on_component(np.array([1, 1, 0, 2]), 1) == 0.5
  assert ss.real_on_component(np.array([1, 1, 0, 2]), 3) == 0.0
  assert math.isnan(ss.real_on_component(np.array([1, 1]), None))
  assert math.isnan(ss.real_on_component(np.zeros([0], int), 0))
  with pytest.raises(ValueError, match=r"\[J, N\]"):
    ss.self_consistency(np.array([0, 1]))


# ------------------------------------------------------------ stub models
VALUES = (0.1, 0.5, 0.9)
"""Stub images are constant: their pixel value says what they are."""


class Stub:
  """Component j draws images of pixel value VALUES[j]; the encoder's logits put all
  the mass on `sends[VALUES index]` (hand-set)."""

  num_categories = 3

  def __init__(self, sends=(0, 1, 2), ignore_z_d=None):
    self.sends = sends
    self.ignore_z_d = ignore_z_d
    """None: component j draws kind j; "mixture": every component draws the same mixture
    of the three kinds; "collapsed": every component draws kind 1."""

  def sample(self, n, component=None, seed=None):
    if self.ignore_z_d == "mixture":
      values = np.random.default_rng(seed - component).choice(VALUES, n)
    elif self.ignore_z_d == "collapsed":
      values = np.full(n, VALUES[1])
    else:
      values = np.full(n, VALUES[component])
    return tf.constant(np.broadcast_to(values[:, None, None, None], (n, 2, 2, 1)), tf.float32)

  def encoder(self, x, training=False):
    kind = np.argmin(np.abs(np.asarray(x)[:, 0, 0, 0, None] - np.array(VALUES)), axis=-1)
    logits = 10.0 * tf.one_hot(np.asarray(self.sends)[kind], self.num_categories)
    return logits, tf.zeros([len(kind), 2]), tf.ones([len(kind), 2])


class StubClassifier:
  """Pixel 0.1 -> class 4, 0.5 -> class 6, 0.9 -> class 8."""

  class_ids = (4, 6, 8)

  def predict(self, images):
    kind = np.argmin(np.abs(images[:, 0, 0, 0, None] - np.array(VALUES)), axis=-1)
    return np.array(self.class_ids)[kind]


def _real(values):
  return np.broadcast_to(np.array(values, np.float32)[:, None, None, None], (len(values), 2, 2, 1))


def test_measure_with_hand_set_encoder_outputs():
  # The encoder sends component 1's images (0.5) to 0: self-consistency (1 + 0 + 1) / 3.
  stub = Stub(sends=(0, 0, 2))
  row = ss.measure(
    stub,
    10,
    truths=[4, 8, 8],  # component 1 draws class 6, not its own 8
    classifier=StubClassifier(),
    real=_real([0.9, 0.9, 0.9, 0.1]),
    component=2,
  )
  assert row["self_consistency_per_component"] == [1.0, 0.0, 1.0]
  assert row["self_consistency"] == pytest.approx(2 / 3)
  assert row["sampling_own_shares"] == [1.0, 0.0, 1.0]
  assert row["sampling_own_share"] == pytest.approx(2 / 3)
  assert row["sampling_majority"] == [4, 6, 8] and row["sampling_majority_own"] == 2
  assert row["sampling_classes_covered"] == 3
  assert row["real_on_component"] == 0.75  # three of the four real images go to 2
  assert set(ss.COLUMNS) | set(ss.LISTS) <= set(row)


def test_without_classifier_the_label_free_proxies_remain():
  row = ss.measure(Stub(), 5, truths=[4, 6, 8], classifier=None, real=None, component=0)
  assert math.isnan(row["sampling_own_share"]) and row["sampling_own_shares"] is None
  assert row["self_consistency"] == 1.0
  assert math.isnan(row["real_on_component"])  # no real images


def test_a_model_that_ignores_z_d_scores_low_on_both():
  good = ss.measure(Stub(), 300, truths=[4, 6, 8], classifier=StubClassifier())
  assert good["sampling_own_share"] == 1.0 and good["self_consistency"] == 1.0
  for kind in ("mixture", "collapsed"):
    blind = ss.measure(Stub(ignore_z_d=kind), 300, truths=[4, 6, 8], classifier=StubClassifier())
    # Every row draws the same images: at most 1 / J in expectation on both scores.
    assert blind["sampling_own_share"] < 1 / 3 + 0.06, kind
    assert blind["self_consistency"] < 1 / 3 + 0.06, kind
    assert blind["sampling_majority_own"] <= 1, kind


# ------------------------------------------------------------ the classifier cache
def _split(value, n, label):
  images = np.full((n, 4, 4, 1), value, np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 50
  return Split(images, np.full(n, label, np.int64))


def _stream(second=240):
  dists = {
    i: Distribution(i, f"d{i}", _split(v, 60, i), _split(v, 5, i), _split(v, 20, i))
    for i, v in ((3, 10), (7, second))
  }
  intervals = (Interval(0, dists[3], True), Interval(1, dists[7], True))
  return Stream("fake", (4, 4, 1), dists, intervals)


FAST = dict(epochs=40, hidden_units=8)


def test_classifier_is_trained_once_then_loaded(tmp_path, monkeypatch):
  monkeypatch.setenv("TF_LIFELONG_CACHE", str(tmp_path / "cache"))
  stream = _stream()
  first = classifier_cache.stream_classifier(stream, str(tmp_path / "w1"), **FAST)
  assert first.meta["source"] == "trained" and first.meta["train_seconds"] >= 0
  assert first.test_accuracy == 1.0 and first.class_ids == (3, 7)
  saved = json.load(open(tmp_path / "w1" / classifier_cache.WORKDIR_FOLDER / "classifier.json"))
  assert saved["key"] == first.meta["key"]
  assert os.listdir(tmp_path / "cache" / "classifiers") == [first.meta["key"]]
  again = classifier_cache.stream_classifier(stream, str(tmp_path / "w1"), **FAST)
  assert again.meta["source"] == "workdir"
  other = classifier_cache.stream_classifier(stream, str(tmp_path / "w2"), **FAST)
  assert other.meta["source"] == "cache"
  assert other.meta["train_seconds"] == first.meta["train_seconds"]  # not trained again
  images, labels = sm.labelled(stream, "test", (3, 7))
  np.testing.assert_array_equal(other.predict(images), labels)
  # Other training images or settings: another key, trained anew (the workdir's copy replaced).
  changed = classifier_cache.stream_classifier(_stream(200), str(tmp_path / "w1"), **FAST)
  assert changed.meta["source"] == "trained" and changed.meta["key"] != first.meta["key"]
  assert classifier_cache.stream_key(stream, {"epochs": 1}) != classifier_cache.stream_key(
    stream, {"epochs": 2}
  )


def test_an_empty_cache_variable_turns_the_user_cache_off(tmp_path, monkeypatch):
  monkeypatch.setenv("TF_LIFELONG_CACHE", "")
  assert classifier_cache.cache_root() is None
  monkeypatch.delenv("TF_LIFELONG_CACHE")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert classifier_cache.cache_root() == os.path.join(str(tmp_path), "tf_lifelong")


# ------------------------------------------------------------ the record
def _learner(rows, seen, categories):
  """What Recording's truths and labels read of a learner."""
  ctx = types.SimpleNamespace(
    rows=rows,
    seen=seen,
    names={i: f"component {k}" for k, i in enumerate(seen)},
    stream=None,
    student=types.SimpleNamespace(num_categories=categories),
  )
  learner = recording.Recording()  # the part of a Learner that keeps its record
  learner.ctx = ctx
  return learner


def test_a_task_free_components_truth_is_its_new_intervals():
  rows = [
    {"is_new": True, "first_chunk": 0, "truth": 5},
    {"is_new": False, "first_chunk": 3, "truth": 5},
  ]
  row = {"is_new": True, "first_chunk": 5, "truth": 2}
  learner = _learner(rows, [0, 1], 2)
  assert learner._component_truths(row) == [5, 2]
  learner.ctx.rows = [{"is_new": True, "first_chunk": 0, "truth": None}]
  learner.ctx.student.num_categories = 1
  assert learner._component_truths(learner.ctx.rows[0]) == [None]
  assert learner._component_labels(learner.ctx.rows[0]) == ["component 0"]
  # Given a task: component j is the j-th new distribution.
  learner = _learner([{"is_new": True}], [4, 9], 2)
  assert learner._component_truths({"is_new": True}) == [4, 9]


def test_row_labels_go_on_a_left_margin():
  grid = summaries.image_grid(np.zeros((3, 2, 8, 8, 1)))  # black tiles, white padding
  plain = Image.fromarray(grid[..., 0])
  labelled = np.asarray(summaries.label_rows(plain, ["5 Sandal", "", "7 Sneaker"], pad=1))
  margin = labelled.shape[1] - plain.width
  assert margin > 20 and labelled.shape[0] == plain.height
  np.testing.assert_array_equal(labelled[:, margin:], np.asarray(plain))
  rows = [labelled[1 + 9 * r : 9 * (r + 1), :margin] for r in range(3)]
  assert rows[0].min() < 128 and rows[2].min() < 128  # text beside rows 0 and 2
  assert rows[1].min() == 255  # and none beside the unlabelled row 1


# ------------------------------------------------------------ a tiny run
TINY = dict(
  dataset=synthetic.dataset(),
  batch_size=32,
  hidden_units=64,
  continuous_dim=4,
  eval_every=20,
  max_steps_per_interval=40,
  patience=2,
  eval_examples=200,
  validation_synthetic_examples=200,
  sampling_samples=50,
  seed=3,
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  cache = tmp_path_factory.mktemp("cache")
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("TF_LIFELONG_CACHE", str(cache))
    workdir = str(tmp_path_factory.mktemp("run"))
    config = config_lib.Config(order=(3, 7), **TINY)
    rows = lifelong.run(config, workdir, out=open(os.devnull, "w"))
  return workdir, rows, cache


def test_the_columns_are_in_every_row_of_metrics_csv(tiny_run):
  workdir, rows, cache = tiny_run
  table = list(csv.DictReader(open(os.path.join(workdir, "metrics.csv"))))
  assert len(table) == 2
  for line, row in zip(table, rows):
    for column in ss.COLUMNS:
      assert line[column] != "", column
      assert float(line[column]) == pytest.approx(row[column], abs=1e-5)
    assert 0.0 <= float(line["sampling_own_share"]) <= 1.0
    assert 0.0 <= float(line["self_consistency"]) <= 1.0
  assert [r["sampling_truth"] for r in rows] == [[3], [3, 7]]
  assert len(rows[1]["sampling_own_shares"]) == 2 and len(rows[1]["sampling_majority"]) == 2
  phases = [r["phase_seconds"] for r in rows]
  assert all(0 < p["sampling"] <= p["evaluate"] + 0.01 for p in phases)  # rounded
  assert "sampling_seconds" not in rows[0]  # moved into phase_seconds
  lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
  assert lines[1]["self_consistency_per_component"] == rows[1]["self_consistency_per_component"]
  saved = os.path.join(workdir, classifier_cache.WORKDIR_FOLDER)
  assert sm.Classifier.exists(saved)
  assert len(os.listdir(os.path.join(cache, "classifiers"))) == 1


def test_the_sample_grid_png_has_a_label_margin(tiny_run):
  workdir, rows, _ = tiny_run
  png = np.asarray(Image.open(os.path.join(workdir, "samples", "interval-001.png")))
  tiles = (2 * 29 + 1) * 2, (10 * 29 + 1) * 2  # J rows, 10 columns of 28 + 1 pixels, doubled
  assert png.shape[0] == tiles[0] and png.shape[1] > tiles[1] + 20
  assert png[:, : png.shape[1] - tiles[1]].min() < 128  # the labels' text


def test_ignoring_z_d_drops_both_scores_of_the_trained_model(tiny_run):
  workdir, rows, cache = tiny_run
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("TF_LIFELONG_CACHE", str(cache))
    learner = Learner.load(workdir, out=open(os.devnull, "w"))
  student = learner.ctx.student
  classifier = sm.Classifier.load(os.path.join(workdir, classifier_cache.WORKDIR_FOLDER))
  kernel = student.decoder.latent_input.kernel
  blind = kernel.numpy()
  blind[: student.num_categories] = 0.0  # the decoder no longer sees z_d
  kernel.assign(blind)
  row = ss.measure(student, 200, truths=[3, 7], classifier=classifier)
  assert row["sampling_own_share"] <= 0.5 + 0.05  # 1 / J
  assert row["self_consistency"] <= 0.5 + 0.05
  assert row["sampling_classes_covered"] == 1


# ------------------------------------------------------------ bin/experiment's report
def _fake_run(output, variant, seed, own, self_):
  """A finished run whose rows hold the sampling scores `own` and `self_` per interval."""
  workdir = layout.run_dir(output, variant, seed)
  rows = [
    {
      "interval": i,
      "test_neg_elbo_full": 100.0,
      "grad_norms": [1.0],
      "real_examples": 10,
      "synthetic_examples": 0,
      "sampling_own_share": o,
      "self_consistency": c,
    }
    for i, (o, c) in enumerate(zip(own, self_))
  ]
  artifacts.write_metrics(workdir, rows, (*artifacts.METRIC_COLUMNS, *ss.COLUMNS))
  grid = summaries.image_grid(np.full((len(own), 3, 4, 4, 1), 0.5))
  summaries.write_png(os.path.join(workdir, "samples", f"interval-{len(own) - 1:03d}.png"), grid)
  result = {"variant": variant, "seed": seed, "config": {}, "wall_seconds": 1.0, "command": "c"}
  artifacts.write_json(os.path.join(workdir, layout.RESULT), result)


def test_the_report_shows_the_own_share_per_interval_and_every_variants_grid(tmp_path):
  output = str(tmp_path)
  variants = ["with_consistency", "without_consistency"]
  experiment = {"preset": "mnist_sequential", "seeds": [0, 1], "variants": variants}
  artifacts.write_json(os.path.join(output, layout.EXPERIMENT), experiment)
  _fake_run(output, "with_consistency", 0, [1.0, 0.8], [1.0, 0.9])
  _fake_run(output, "with_consistency", 1, [1.0, 0.6], [1.0, 0.7])
  _fake_run(output, "without_consistency", 0, [1.0, 0.5], [1.0, None])
  s = report.build_report(output)
  assert s["final_sampling_own_share"]["with_consistency"]["mean"] == pytest.approx(0.7)
  assert s["final_self_consistency"]["without_consistency"]["n"] == 0
  per = s["sampling_per_interval"]["with_consistency"]["sampling_own_share"]
  assert [p["mean"] for p in per] == pytest.approx([1.0, 0.7])
  assert os.path.getsize(os.path.join(output, s["figures"]["sampling_own_share"])) > 0
  text = open(os.path.join(output, "report.md")).read()
  assert "## Consistent sampling after every interval" in text
  assert "| 1 | 0.700 (0.800) | 0.500 (-) |" in text
  grids = text[text.index("## Sample grids") :]
  for v in variants:
    assert f"![samples {v}](figures/samples_{v}.png)" in grids
    assert os.path.exists(os.path.join(output, "figures", f"samples_{v}.png"))
  assert "0.700 +- 0.100" in text  # the final own share in the table
