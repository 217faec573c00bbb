"""The nearest-sample ratio of a return (train/neighbours.py) and its place in the return
test (detection.choose_return): closed forms on hand-made images, a fake model's samples."""

import numpy as np
import pytest

from tf_lifelong.train import detection, neighbours


def test_pairwise_distances_are_the_closed_form():
  samples = np.zeros((3, 2, 2, 1))
  samples[1, 0, 0, 0] = 1.0  # one pixel lit
  samples[2] = 1.0  # every pixel lit
  images = np.zeros((2, 2, 2, 1))
  images[0, 0, 0, 0] = 0.5
  images[1] = 0.75
  np.testing.assert_allclose(
    neighbours.pairwise(images, samples),
    [[0.5, 0.5, np.sqrt(0.25 + 3)], [1.5, np.sqrt(0.0625 + 3 * 0.5625), 0.5]],
  )


def test_the_distance_is_in_units_of_the_samples_own_spread():
  samples = np.zeros((2, 2, 2, 1))
  samples[0] = 0.5  # v = 4 * 0.25 = 1
  samples[1, 0, 0, 0] = 0.2  # v = 0.16 ...
  samples[1, 0, 1, 0] = 0.9  # ... + 0.09 = 0.25, floored at MIN_SPREAD (1.0)
  np.testing.assert_allclose(neighbours.spread(samples), [1.0, neighbours.MIN_SPREAD])
  images = np.ones((1, 2, 2, 1))
  np.testing.assert_allclose(
    neighbours.scaled(images, samples), neighbours.pairwise(images, samples) / [[1.0, 1.0]]
  )
  wide = np.full((1, 4, 4, 1), 0.2)  # v = 16 * 0.16 = 2.56: d = ||x - s|| / 1.6
  assert neighbours.scaled(np.ones((1, 4, 4, 1)), wide)[0, 0] == pytest.approx(3.2 / 1.6)


def test_an_image_the_sample_could_draw_lies_at_about_one():
  # E ||y - s||^2 = v(s) for y ~ Bernoulli(s): d(y, s)^2 averages 1, sharp sample or blurred,
  # which is what lets a forgotten (blurred) component's return keep r near 1.
  rng = np.random.default_rng(0)
  for blur in (0.0, 0.3):
    s = np.clip(rng.random((1, 784)) ** 3 + blur * (0.5 - rng.random((1, 784))) ** 2, 0, 1)
    y = (rng.random((4000, 784)) < s).astype(np.float64)
    assert np.mean(neighbours.scaled(y, s) ** 2) == pytest.approx(1.0, abs=0.02)


def test_rows_are_evenly_spaced_and_scaled():
  images = (np.arange(1000) % 256).astype(np.uint8).reshape(1000, 1, 1, 1)
  x = neighbours.rows(images, n=5)  # rows 0, 250, 500, 749, 999
  assert x.dtype != np.uint8 and x.max() <= 1.0
  np.testing.assert_allclose(x[:, 0, 0, 0] * 255, [0, 250, 500 - 256, 749 - 512, 999 - 768])
  assert len(neighbours.rows(np.zeros((7, 2, 2, 1)), n=300)) == 7


class _Samples:
  """A model whose component j's samples are images of value j / 10 everywhere."""

  def __init__(self):
    self.calls = []

  def sample(self, num, component, seed):
    self.calls.append((num, component, seed))
    return np.full((num, 4, 4, 1), component / 10.0, np.float32)


def test_measure_goes_both_ways_against_the_components_own_samples():
  model = _Samples()
  images = np.full((10, 4, 4, 1), 0.5, np.float32)
  images[5:] = 0.0
  # 16 pixels: rows of 0.5 lie 0.3 from component 2's samples (value 0.2), rows of 0 lie 0.2,
  # in L2 norm 1.2 and 0.8; in units of the samples' spread sqrt(16 * 0.2 * 0.8) = 1.6:
  # near = mean(0.75, 0.5) = 0.625; every sample's nearest row is a 0 row: cover = 0.5.
  got = neighbours.measure(model, 2, images, seed=3)
  assert (got.near, got.cover, got.rows) == (pytest.approx(0.625), pytest.approx(0.5), 10)
  assert got.metric == neighbours.METRIC
  assert neighbours.measure(model, 2, images, seed=3, n=4).rows == 4
  # The same latents every time for one component and seed, other latents for another.
  neighbours.measure(model, 5, images, seed=3)
  assert model.calls[0] == model.calls[1] != model.calls[2]
  assert model.calls[0][0] == neighbours.SAMPLES


def test_ratio_multiplies_both_ways_and_squares_near_for_a_short_segment():
  ref = neighbours.Distances(near=2.0, cover=4.0, rows=300)
  now = neighbours.Distances(near=2.2, cover=5.0, rows=300)
  assert neighbours.ratio(now, ref) == pytest.approx(1.1 * 1.25)
  short = neighbours.Distances(near=2.2, cover=9.0, rows=150)  # cover of 150 rows: not comparable
  assert neighbours.ratio(short, ref) == pytest.approx(1.1**2)


def _choose(r, bound=1.15, masses=(0.3, 0.7)):
  called = []

  def ratio(j):
    called.append(j)
    return None if r is None else (r, bound)

  out = detection.choose_return(
    {0: np.array([0.1, 0.2]), 1: np.array([0.3, 0.1])},
    np.asarray(masses),
    exclude=None,
    return_threshold=1.5,
    return_mass=0.0,
    ratio=ratio,
  )
  return out, called


def test_a_chunk_far_from_the_candidates_samples_is_new():
  out, called = _choose(1.05)
  assert (out["decision"], out["component"], out["return_ratio"]) == ("return", 1, 1.05)
  assert out["ratio_threshold"] == 1.15
  assert called == [1]  # the candidate only: the largest posterior share, 0.7
  out, _ = _choose(1.3)  # a look-alike newcomer: as close in profile, farther in pixels
  assert (out["decision"], out["component"], out["best_return"]) == ("new", None, 1)
  out, _ = _choose(1.3, bound=1.35)  # an old reference: its bound has grown
  assert out["decision"] == "return"
  out, _ = _choose(None)  # not measured (an old reference, --return_ratio=0): profile alone
  assert out["decision"] == "return" and out["return_ratio"] is None


def test_the_bound_grows_with_the_log_of_the_references_age():
  assert neighbours.bound(1.1, 0.12, 0) == pytest.approx(1.1)
  assert neighbours.bound(1.1, 0.12, 1) == pytest.approx(1.1 + 0.12 * np.log(2))
  assert neighbours.bound(1.1, 0.12, 7) == pytest.approx(1.1 + 0.12 * np.log(8))
  assert neighbours.bound(1.1, 0.12, -2) == pytest.approx(1.1)  # no negative age


def test_a_reference_keeps_its_neighbour_and_old_ones_load():
  near = neighbours.Distances(near=4.5, cover=5.0, rows=300).to_dict()
  ref = detection.Reference(1, [0, 1], [1.0, 2.0, 3.0], [1.0, 1.0, 1.0], [0.0] * 3, near, 4)
  assert detection.Reference.from_dict(ref.to_dict()) == ref
  assert neighbours.comparable(ref.neighbour)
  old = ref.to_dict()
  del old["neighbour"], old["interval"]
  assert detection.Reference.from_dict(old).neighbour is None
  assert not neighbours.comparable(None)
  plain_l2 = dict(near)  # measured before the spread's units: not compared (profile alone)
  del plain_l2["metric"]
  assert not neighbours.comparable(
    detection.Reference.from_dict({**ref.to_dict(), "neighbour": plain_l2}).neighbour
  )
