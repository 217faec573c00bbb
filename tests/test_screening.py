"""The screen (train/screening.py): which components it scores, that their columns are the
full scores' own, and what it decides on hand-made scores: an unchanged chunk *same* on its
columns; a change in them, or a cut, to the full scores; a change only outside them missed
(its known blind spot); no screen at --screen_mass=0. On real digits (3s, then 7s) a
learner with the screen decides as one without it."""

import dataclasses
import os

import numpy as np
import pytest

from tests import paths
from tf_lifelong import Learner
from tf_lifelong import config as config_lib
from tf_lifelong.data import sources
from tf_lifelong.model import student as student_lib
from tf_lifelong.train import detection, screening

J = 6
SHIFT = 5.0


def test_components_are_those_with_enough_mass_and_each_argmax():
  chunk = np.array([0.01, 0.90, 0.05, 0.015, 0.015, 0.01])
  held = np.array([0.012, 0.70, 0.0, 0.0, 0.018, 0.27])
  assert screening.components(chunk, held, 0.02) == [1, 2, 5]
  assert screening.components(chunk, held, 0.5) == [1]
  flat = np.full(J, 1 / J)
  assert screening.components(flat, flat, 0.02) == list(range(J))
  assert screening.components(np.eye(J)[4] * 0.01, np.eye(J)[0] * 0.01, 0.02) == [0, 4]


def test_scores_of_some_components_are_their_columns_among_all():
  config = config_lib.Config(arch="mlp", hidden_units=7, continuous_dim=3, seed=2)
  model = student_lib.new_student(config, (6, 5, 1), num_categories=4)
  x = np.random.default_rng(0).uniform(size=(700, 6, 5, 1)).astype(np.float32)
  full = detection.component_scores(model, x, seed=11)
  some = detection.component_scores(model, x, seed=11, components=[3, 1])
  assert some.shape == (700, 3)
  np.testing.assert_allclose(some, full[:, [3, 1, 4]], rtol=1e-5)
  # One trace per model for every set of components and batch (each costs ~0.2 s).
  detection.component_scores(model, x[:30], seed=1, components=[2])
  assert detection._FUNCTIONS[model].experimental_get_tracing_count() == 1


class _Student:
  num_categories = J


def _fake(monkeypatch, chunk_scores, held_scores, chunk_masses, held_masses):
  """detection's model functions replaced by hand-made scores and masses (by the images
  argument: 'chunk' or 'held'); the scored columns are recorded."""
  scored = []

  def masses(student, images):
    return chunk_masses if images == "chunk" else held_masses

  def scores(student, images, noise, components=None):
    full = chunk_scores if images == "chunk" else held_scores
    scored.append(list(components))
    return full[:, list(components) + [J]]

  monkeypatch.setattr(detection, "posterior_masses", masses)
  monkeypatch.setattr(detection, "component_scores", scores)
  return scored


def _scores(rng, n, shift=None):
  """Scores [n, J + 1]: component 1 explains the data best (100 nats), others 30-80 worse,
  KL_c 20; `shift` {column: nats} added to every row."""
  means = np.array([150.0, 100.0, 130.0, 170.0, 180.0, 140.0, 20.0])
  out = means + rng.normal(0.0, 5.0, size=(n, J + 1))
  for column, nats in (shift or {}).items():
    out[:, column] += nats
  return out


MASSES = np.array([0.0, 0.95, 0.04, 0.0, 0.0, 0.01])  # screened: 1 and 2


def test_an_unchanged_chunk_is_same_on_the_screened_columns(monkeypatch):
  rng = np.random.default_rng(0)
  chunk, held = _scores(rng, 1000), _scores(rng, 300)
  scored = _fake(monkeypatch, chunk, held, MASSES, MASSES)
  out = screening.screen(_Student(), "chunk", "held", 3, SHIFT)
  assert scored == [[1, 2], [1, 2]]
  assert out["screened"] == [1, 2] and out["current"] == 1
  z, driver = detection.shift_statistic(chunk[:, [1, 2, J]], held[:, [1, 2, J]], 0)
  assert out["statistic"] == pytest.approx(z) and z <= SHIFT
  assert out["driver"] == [1, 2, J][driver]
  assert out["scores"][1] == pytest.approx(chunk[:, 1].mean()) and out["scores"][0] is None
  assert screening.screen(_Student(), "chunk", "held", 3, SHIFT, mass=0.0) is None
  assert screening.screen(_Student(), "chunk", None, 3, SHIFT) is None


def test_a_change_on_the_screened_columns_or_a_cut_goes_to_the_full_scores(monkeypatch):
  rng = np.random.default_rng(1)
  held = _scores(rng, 300)
  moved = _scores(rng, 1000, {2: -4.0})  # s_2 - s_1 moves by 0.8 sd
  _fake(monkeypatch, moved, held, MASSES, MASSES)
  assert screening.screen(_Student(), "chunk", "held", 3, SHIFT) is None
  # Two halves, 2 sds above and below the interval: the whole chunk's mean has not moved.
  up, down = _scores(rng, 500, {1: 10.0, 2: 10.0}), _scores(rng, 500, {1: -10.0, 2: -10.0})
  inside = np.concatenate([up, down])
  assert detection.shift_statistic(inside[:, [1, 2, J]], held[:, [1, 2, J]], 0)[0] <= SHIFT
  _fake(monkeypatch, inside, held, MASSES, MASSES)
  assert screening.screen(_Student(), "chunk", "held", 3, SHIFT) is None
  # Its blind spot: a change only in a column it leaves out passes as *same*.
  hidden = _scores(rng, 1000, {4: -30.0})
  assert detection.shift_statistic(hidden, held, 1)[0] > SHIFT
  _fake(monkeypatch, hidden, held, MASSES, MASSES)
  assert screening.screen(_Student(), "chunk", "held", 3, SHIFT)["screened"] == [1, 2]


def test_nothing_to_leave_out_is_no_screen(monkeypatch):
  rng = np.random.default_rng(2)
  flat = np.full(J, 1 / J)
  scored = _fake(monkeypatch, _scores(rng, 500), _scores(rng, 200), flat, flat)
  assert screening.screen(_Student(), "chunk", "held", 3, SHIFT) is None and not scored


def test_a_learner_with_the_screen_decides_as_one_without(tmp_path):
  train = sources.load_source("mnist", paths.DATA_ROOT).train
  threes, sevens = train.images[train.labels == 3], train.images[train.labels == 7]
  chunks = [threes[i * 500 : (i + 1) * 500] for i in range(3)]
  chunks += [sevens[i * 500 : (i + 1) * 500] for i in range(3)]
  base = config_lib.Config(
    boundaries="detect",
    chunk_size=500,
    batch_size=64,
    hidden_units=256,
    continuous_dim=8,
    eval_every=50,
    max_steps_per_interval=600,
    validation_synthetic_examples=200,
    learning_rate=1e-3,
    seed=1,
  )
  # At J = 2 the encoder sends 2-8% of a chunk to the other digit's component: a share of
  # 0.1 leaves it out of the 7s' chunks (the default 0.02 needs a larger J to leave any).
  runs = {}
  for mass in (0.0, 0.1):
    config = dataclasses.replace(base, screen_mass=mass)
    learner = Learner(config, str(tmp_path / str(mass)), out=open(os.devnull, "w"))
    runs[mass] = [learner.observe(c).to_dict() for c in chunks]
  full, screened = runs[0.0], runs[0.1]
  keys = ("decision", "component", "current")
  assert [[d[k] for k in keys] for d in screened] == [[d[k] for k in keys] for d in full]
  assert [d["decision"] for d in full] == ["new", "same", "same", "new", "same", "same"]
  assert all(d["screened"] is None for d in full)
  assert [d["screened"] for d in screened[4:]] == [[1], [1]]
  for a, b in zip(screened[4:], full[4:]):
    assert a["statistic"] <= b["statistic"] + 1e-9  # the largest score over fewer columns
    assert a["scores"][0] is None and a["scores"][1] == pytest.approx(b["scores"][1])
