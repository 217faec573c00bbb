"""The lifelong run end to end (a tiny model, few steps): the loop on tests/synthetic.py's
stream, what it remembers on real MNIST digits."""

import csv
import io
import math
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import paths, synthetic
from tf_lifelong import config as config_lib
from tf_lifelong.train import lifelong

TINY = dict(
  dataset=synthetic.dataset(),
  batch_size=32,
  hidden_units=64,
  continuous_dim=4,
  eval_every=20,
  max_steps_per_interval=60,
  patience=2,
  eval_examples=200,
  validation_synthetic_examples=200,
  seed=3,
)


class TeacherWatch:
  """A hook that checks the teacher does not move while a student trains."""

  def __init__(self):
    self.before = None
    self.changed = []
    self.categories = []
    self.teacher_trainable = []
    self.clock = []
    """(hook, time.monotonic()) at each call: an outside clock of the intervals."""

  def before_interval(self, ctx):
    self.clock.append(("before", time.monotonic()))
    teacher = ctx.student.teacher
    self.categories.append(ctx.student.num_categories)
    self.before = None if teacher is None else [w.copy() for w in teacher.get_weights()]
    self.teacher_trainable.append(None if teacher is None else len(teacher.trainable_weights))

  def after_interval(self, ctx, row):
    self.clock.append(("after", time.monotonic()))
    if self.before is not None:
      after = ctx.student.teacher.get_weights()
      self.changed.append(any(not np.array_equal(a, b) for a, b in zip(self.before, after)))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
  from tf_lifelong.evaluation import evaluate
  from tf_lifelong.train import milestones

  workdir = str(tmp_path_factory.mktemp("run"))
  watch = TeacherWatch()
  config = config_lib.Config(order=(3, 7, 3), **TINY)
  assess = evaluate.Evaluator.assess

  def timed_assess(self, *args, **kwargs):  # the test-set evaluation, on the outside clock
    watch.clock.append(("assess", time.monotonic()))
    try:
      return assess(self, *args, **kwargs)
    finally:
      watch.clock.append(("assessed", time.monotonic()))

  def trained_until(point, interval, step):  # training's evaluation boundaries
    if point == "train":
      watch.clock.append(("train", time.monotonic()))

  stop = milestones.listen(trained_until)
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(evaluate.Evaluator, "assess", timed_assess)
    try:
      rows = lifelong.run(config, workdir, hooks=[watch], out=open(os.devnull, "w"))
    finally:
      stop()
  return workdir, rows, watch


def test_categories_grow_for_new_distributions_only(dry_run):
  _, rows, watch = dry_run
  assert watch.categories == [1, 2, 2]
  assert [r["num_categories"] for r in rows] == [1, 2, 2]
  assert [r["is_new"] for r in rows] == [True, True, False]
  assert [r["distribution"] for r in rows] == [3, 7, 3]


def test_teacher_stays_frozen(dry_run):
  _, _, watch = dry_run
  assert watch.teacher_trainable == [None, 0, 0]
  assert watch.changed == [False, False]


def test_metrics_csv_has_a_finite_row_per_interval(dry_run):
  workdir, _, _ = dry_run
  with open(os.path.join(workdir, "metrics.csv")) as f:
    table = list(csv.DictReader(f))
  assert len(table) == 3
  for i, row in enumerate(table):
    for column in (
      "steps",
      "real_examples",
      "wall_seconds",
      "test_neg_elbo_seen",
      "test_neg_elbo_full",
      "grad_norm",
    ):
      assert math.isfinite(float(row[column])), (i, column)
    assert 0 < float(row["test_neg_elbo_seen"]) < 800
  assert table[0]["consistency"] == ""  # no teacher in the first interval
  assert 0.0 <= float(table[2]["consistency"]) <= 1.0
  assert int(table[0]["synthetic_examples"]) == 0 < int(table[1]["synthetic_examples"])


def _interval_clocks(clock: list) -> list[dict]:
  """Per interval, the outside clock's times: before (the hook, after the hand-over), the
  last training boundary ("train" milestone), the test-set evaluation's start and end
  (Evaluator.assess) and after (the hook, once the row is made)."""
  intervals, current = [], None
  for name, t in clock:
    if name == "before":
      current = {"before": t}
      intervals.append(current)
    elif name == "assess":
      current.setdefault("assess", t)  # its first call
    else:
      current[name] = t  # the last "train", "assessed" and "after"
  return intervals


def test_rows_split_the_interval_time_into_phases(dry_run):
  # Each phase against its own outside clock: training runs from the hand-over (the
  # before hook) past its last evaluation boundary, and ends before the test-set
  # evaluation starts; the evaluation phase holds that evaluation and ends before the
  # after hook. Times are rounded to 0.01 s.
  _, rows, watch = dry_run
  clocks = _interval_clocks(watch.clock)
  assert [sorted(c) for c in clocks] == [["after", "assess", "assessed", "before", "train"]] * 3
  eps = 0.011
  for i, (row, c) in enumerate(zip(rows, clocks)):
    phases = row["phase_seconds"]
    assert set(phases) == {"handover", "train", "evaluate", "sampling"}
    assert 0 < phases["sampling"] <= phases["evaluate"] + 0.01  # a share of evaluate (rounded)
    assert c["before"] < c["train"] < c["assess"] < c["assessed"] < c["after"]
    assert c["train"] - c["before"] - eps <= phases["train"] <= c["assess"] - c["before"] + eps
    assessed = c["assessed"] - c["assess"]
    assert assessed - eps <= phases["evaluate"] <= c["after"] - c["train"] + eps
    assert phases["train"] + phases["evaluate"] <= c["after"] - c["before"] + eps
    if i:  # The hand-over lies between the last interval's end and this one's training.
      assert phases["handover"] <= c["before"] - clocks[i - 1]["after"] + eps


def test_tensorboard_has_named_scalars_and_images(dry_run):
  from tensorboard.backend.event_processing import event_accumulator

  workdir, _, _ = dry_run
  acc = event_accumulator.EventAccumulator(
    os.path.join(workdir, "tensorboard"), size_guidance={"tensors": 0}
  )
  acc.Reload()
  tags = set(acc.Tags()["tensors"])
  for name in (
    "train/loss",
    "train/neg_elbo",
    "train/consistency",
    "train/mutual_information",
    "train/temperature",
    "train/pi",
    "train/grad_norm",
    "train/validation_neg_elbo",
    "interval/test_neg_elbo_seen",
    "interval/consistency",
    "samples",
    "reconstructions",
  ):
    assert name in tags, name
  assert len(acc.Tensors("samples")) == 3


def test_sample_pngs_written(dry_run):
  workdir, _, _ = dry_run
  assert sorted(os.listdir(os.path.join(workdir, "samples"))) == [
    "interval-000.png",
    "interval-001.png",
    "interval-002.png",
  ]


def test_export_loads_and_samples(dry_run):
  workdir, _, _ = dry_run
  loaded = tf.saved_model.load(os.path.join(workdir, "export"))
  out = loaded.signatures["sample"](
    num_samples=tf.constant(5), component=tf.constant(1), seed=tf.constant(0)
  )
  images = out["images"].numpy()
  assert images.shape == (5, 28, 28, 1) and images.min() >= 0 and images.max() <= 1
  assert set(out["component"].numpy()) == {1}


def test_workdir_with_another_config_is_refused(dry_run):
  workdir, _, _ = dry_run
  other = config_lib.Config(order=(1, 2), **TINY)
  with pytest.raises(lifelong.RunError, match="another configuration"):
    lifelong.run(other, workdir, out=open(os.devnull, "w"))


def test_it_remembers_with_replay_and_forgets_without(tmp_path):
  """Digit 0 then digit 1: replay with consistency keeps digit 0, naive training loses it.

  Measured (seeds 1, 2): digit 0 test -ELBO after digit 1 is 140-141 nats with
  replay and 360-363 without (129-130 before digit 1). Asserted with headroom.
  """
  settings = dict(
    dataset="mnist",
    data_dir=paths.DATA_ROOT,
    order=(0, 1),
    batch_size=64,
    hidden_units=128,
    continuous_dim=8,
    learning_rate=1e-3,
    eval_every=100,
    max_steps_per_interval=400,
    patience=10,
    eval_examples=300,
    validation_synthetic_examples=300,
    seed=1,
  )
  after = {}
  for baseline in ("none", "naive"):
    rows = lifelong.run(
      config_lib.Config(baseline=baseline, **settings),
      str(tmp_path / baseline),
      out=open(os.devnull, "w"),
    )
    after[baseline] = rows[-1]["neg_elbo_per_distribution"]["0"]
    if baseline == "naive":
      assert rows[-1]["synthetic_examples"] == 0
  assert after["none"] < 200
  assert after["naive"] > after["none"] + 100


def test_batch_vae_is_judged_on_the_distributions_not_on_their_pool(tmp_path):
  """Full and seen -ELBO of the batch baseline: the mean over its members' test sets.

  With eval_examples below a test set's size, the pooled split's first rows are all of
  the first distribution; counted as a third distribution it pulled `full` towards it.
  """
  config = config_lib.Config(baseline="batch_vae", **{**TINY, "eval_examples": 50})
  rows = lifelong.run(config, str(tmp_path), out=open(os.devnull, "w"))
  (row,) = rows
  per = {int(k): v for k, v in row["neg_elbo_per_distribution"].items()}
  assert -1 not in per and len(per) >= 2
  assert row["test_neg_elbo_full"] == pytest.approx(np.mean(list(per.values())), rel=1e-6)
  assert row["test_neg_elbo_full"] == pytest.approx(row["test_neg_elbo_seen"], rel=1e-6)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_eval_split_chooses_the_split_the_intervals_are_scored_on(tmp_path, split):
  # Validation: digit 3s; test: blank images, whose -ELBO differs by tens of nats.
  from tf_lifelong import Learner
  from tf_lifelong.data import sources, streams

  train = sources.load_source("mnist", paths.DATA_ROOT).train
  threes = train.take(np.flatnonzero(train.labels == 3)[:400])
  validation, blank = threes.take(np.arange(300, 400)), threes.take(np.arange(100))
  blank = sources.Split(np.zeros_like(blank.images), blank.labels)
  dist = streams.Distribution(0, "threes", threes.take(np.arange(300)), validation, blank)
  fast = {"max_steps_per_interval": 200, "eval_every": 50, "learning_rate": 1e-3}
  config = config_lib.Config(eval_split=split, **{**TINY, **fast})
  out = io.StringIO()
  learner = Learner(config, str(tmp_path), out=out)
  row = learner.learn(dist, name="threes")
  assert f"steps: {split} -ELBO seen" in out.getvalue()  # the progress line names the split
  scored = {"validation": 0.0, "test": 0.0}
  for name, images in (("validation", validation.images), ("test", blank.images)):
    x = tf.convert_to_tensor(images, tf.float32) / 255.0
    from tf_lifelong.model import inference

    scored[name] = float(np.mean(inference.neg_elbo(learner.ctx.student, x, seed=0)))
  assert abs(scored["validation"] - scored["test"]) > 30
  assert row["test_neg_elbo_seen"] == pytest.approx(scored[split], abs=5.0)


def test_eval_split_is_test_or_validation():
  with pytest.raises(config_lib.ConfigError, match="eval_split must be one of test, validation"):
    config_lib.Config(eval_split="train")
