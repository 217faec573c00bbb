"""Gradual transitions (train/gradual.py): a mix that shifts over several chunks is one new
component. The rule on hand-made scores (a step of the mix continues; a return to P and a
new R do not; what marks a transition), then a learner fed MNIST ones turning into sevens
over four chunks of mixes."""

import os

import numpy as np
import pytest

from tests import paths
from tf_lifelong import Learner
from tf_lifelong import config as config_lib
from tf_lifelong.data import sources
from tf_lifelong.train import detection, gradual
from tf_lifelong.train.open_interval import OpenInterval

_RNG = np.random.default_rng(5)


def _rows(kind: str, n: int) -> np.ndarray:
  """Scores [n, 3] (s_0, s_1, KL_c) of P (component 0's), Q (component 1's), R (neither's)
  or L, a look-alike of P (every row shifted by 3 nats: inside P's support, but not P)."""
  level = {"P": (100, 130), "Q": (130, 100), "R": (170, 165), "L": (103, 127)}[kind]
  s = np.array(level, float) + _RNG.gamma(4.0, 2.0, size=(n, 2))
  return np.concatenate([s, 20 + _RNG.normal(0, 2, size=(n, 1))], axis=1)


def _mix(pi: float, n: int) -> np.ndarray:
  q = round(pi * n)
  return _RNG.permutation(np.concatenate([_rows("P", n - q), _rows("Q", q)]))


def _decide(chunk, held, transition):
  out = detection.decide(
    chunk,
    held,
    lambda k: {},
    np.array([0.5, 0.5]),
    shift_threshold=5.0,
    return_threshold=1.5,
    return_mass=0.95,
  )
  if out["decision"] == detection.NEW:
    out["component"] = 2
  return gradual.judge(transition, chunk, held, out, 5.0)


def test_a_further_step_of_the_mix_is_same_a_return_or_a_new_one_is_not():
  transition = {"from": 0, "to": 1, "share": 0.3}  # the interval's latest step: 30% of Q
  held = _mix(0.3, 200)
  step = _decide(_mix(0.6, 1000), held, transition)
  assert step["statistic"] > 5.0  # the shift test alone would open a component
  assert (step["decision"], step["component"], step["gradual"]) == ("same", 1, True)
  assert step["outside_share"] <= 0.2 and step["newer_share"] == pytest.approx(0.6, abs=0.05)
  back = _decide(_rows("P", 1000), held, transition)  # P again: its share of Q fell
  assert back["decision"] == "new" and back["newer_share"] < 0.05
  other = _decide(_rows("R", 1000), held, transition)  # R: outside the interval's support
  assert other["decision"] == "new" and other["outside_share"] > 0.8
  plain = _decide(_mix(0.6, 1000), held, None)  # not a transition: the shift test decides
  assert plain["decision"] == "new" and "newer_share" not in plain


def test_a_partial_mix_opens_a_transition_and_a_new_distribution_does_not():
  first = _decide(_mix(0.25, 1000), _rows("P", 200), None)
  assert first["decision"] == "new" and 0.05 < first["outside_share"] < 0.9
  whole = _decide(_rows("R", 1000), _rows("P", 200), None)
  assert whole["outside_share"] >= 0.9
  alike = _decide(_rows("L", 1000), _rows("P", 200), None)
  assert 0.05 < alike["outside_share"] < 0.9 and first["mix"] and not alike["mix"]
  marked = {"from": 0, "to": 2, "share": None}
  for out, expected in ((first, marked), (whole, None), (alike, None)):
    interval = OpenInterval(index=1, ident=1, component=2, decision="new", first_chunk=3)
    decision = detection.Decision(chunk=3, **{k: v for k, v in out.items() if k != "scores"})
    gradual.mark(interval, decision)
    assert interval.transition == expected


GRADUAL = config_lib.Config(
  boundaries="detect",
  chunk_size=500,
  chunk_steps=100,
  batch_size=64,
  hidden_units=256,
  continuous_dim=8,
  eval_every=50,
  max_steps_per_interval=2000,
  patience=2,
  validation_synthetic_examples=200,
  learning_rate=1e-3,
  sampling_samples=0,
  seed=1,
)


def test_ones_turning_into_sevens_over_four_chunks_make_one_new_component(tmp_path):
  train = sources.load_source("mnist", paths.DATA_ROOT).train
  ones, sevens = train.images[train.labels == 1], train.images[train.labels == 7]
  rng, used = np.random.default_rng(0), [0, 0]
  learner = Learner(GRADUAL, str(tmp_path / "w"), out=open(os.devnull, "w"))
  decisions = []
  for pi in (0, 0, 0, 0.2, 0.4, 0.6, 0.8, 1, 1, 1):
    q = round(500 * pi)
    rows = np.concatenate([ones[used[0] : used[0] + 500 - q], sevens[used[1] : used[1] + q]])
    used = [used[0] + 500 - q, used[1] + q]
    decisions.append(learner.observe(rows[rng.permutation(500)]))
  kinds = [d.decision for d in decisions]
  assert kinds == ["new", "same", "same", "new"] + ["same"] * 6, kinds
  assert learner.num_categories == 2
  assert learner._task_free.open.transition["from"] == 0, learner._task_free.open.transition
