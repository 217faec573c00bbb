"""change_point: a change inside a chunk, located from per-example statistics (issue #35).

Hand-made statistics (seeded Gaussian, Student-t with 3 degrees of freedom, lognormal:
the skew and outliers of -ELBO scores), with a change at a known row, and real MNIST
digits' simple per-example statistics (no model). Pure numpy, a few seconds.
"""

import gzip
import os

import numpy as np
import pytest

from tests import paths
from tf_lifelong.train import change_point as cp

H = cp.MIN_SEGMENT
KINDS = ("gauss", "t3", "lognormal")
SIZES = ((500, 2), (1000, 6), (2000, 12))


def _noise(rng, kind, n, d):
  """Unit-sd noise [n, d] of the given kind."""
  if kind == "gauss":
    return rng.standard_normal((n, d))
  if kind == "t3":
    return rng.standard_t(3, (n, d)) / np.sqrt(3.0)
  return (np.exp(rng.standard_normal((n, d))) - np.exp(0.5)) / np.sqrt((np.e - 1) * np.e)


def _chunk(rng, kind, n, d, t, delta):
  """Noise with a shift of delta (sds) from row t on, in one column."""
  x = _noise(rng, kind, n, d)
  x[t:, int(rng.integers(d))] += delta
  return x


def _error(split, t, n):
  """Rows on the wrong side: the distance from t to the nearest boundary the learner uses."""
  edges = np.array([0, *(split.points if split else ()), n])
  return int(np.abs(edges - t).min())


def _errors(seed, kind, n, d, reference, delta=1.0):
  rng = np.random.default_rng(seed)
  out = []
  for i, t in enumerate(range(0, n, n // 40)):
    ref = _noise(rng, kind, 300, d) if reference else None
    split = cp.locate(_chunk(rng, kind, n, d, t, delta if i % 2 else -delta), ref)
    out.append(_error(split, t, n))
  return np.array(out)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n,d", SIZES)
@pytest.mark.parametrize("reference", [False, True])
def test_a_change_is_located_within_100_rows(kind, n, d, reference):
  errors = _errors(n + d, kind, n, d, reference)
  assert errors.max() <= 100, errors
  assert np.median(errors) <= 10, errors


@pytest.mark.parametrize(
  "kind,n,d,reps", [("gauss", 200, 2, 600), ("lognormal", 1000, 6, 400), ("t3", 3000, 12, 100)]
)
@pytest.mark.parametrize("reference", [False, True])
def test_no_change_no_split_in_99_percent_of_chunks(kind, n, d, reps, reference):
  rng = np.random.default_rng(reps + d)
  splits = 0
  for _ in range(reps):
    ref = _noise(rng, kind, 300, d) if reference else None
    splits += cp.locate(_noise(rng, kind, n, d), ref) is not None
  assert splits <= 0.01 * reps


def test_the_threshold_grows_with_the_chunk_and_the_columns():
  b = {(n, d): cp.critical_value(n, H, n - H, d) for n in (200, 1000, 5000) for d in (2, 12)}
  assert b[200, 2] < b[1000, 2] < b[5000, 2] and b[1000, 2] < b[1000, 12]
  assert 3.0 < b[1000, 2] < 4.0 < b[1000, 12] < 4.6  # not 2.58: a max over t and columns


@pytest.mark.parametrize("reference", [False, True])
def test_a_change_at_the_edges_costs_at_most_min_segment_rows(reference):
  rng = np.random.default_rng(3)
  n = 1000
  for t in [*range(1, H, 7), *range(n - H + 1, n, 7)]:
    ref = _noise(rng, "gauss", 300, 4) if reference else None
    split = cp.locate(_chunk(rng, "gauss", n, 4, t, 2.0), ref)
    assert all(b - a >= H for a, b in cp.bounds(n, split))
    assert _error(split, t, n) <= (H // 2 + 10 if reference and t < H else H)
  # With the held-out share, a change right at the start is seen, and no segment is cut for it.
  split = cp.locate(_chunk(rng, "gauss", n, 4, 10, 2.0), _noise(rng, "gauss", 300, 4))
  assert split is None or (split.start_change and split.points[0] >= H)


def test_ties_and_constant_columns():
  rng = np.random.default_rng(5)
  splits = 0
  for _ in range(300):  # counts (many ties) and a constant column
    x = np.concatenate([rng.poisson(2.0, (1000, 2)), np.ones((1000, 1))], axis=1)
    splits += cp.locate(x) is not None
  assert splits <= 3
  x = np.concatenate([rng.poisson(2.0, (1000, 2)), np.ones((1000, 1))], axis=1)
  x[600:, 0] += 1
  assert _error(cp.locate(x), 600, 1000) <= 100


def test_short_chunks_and_bad_arguments():
  rng = np.random.default_rng(6)
  assert cp.locate(_chunk(rng, "gauss", 2 * H - 1, 3, H // 2, 5.0)) is None  # no room to cut
  assert cp.locate(np.zeros([0, 3]), _noise(rng, "gauss", 300, 3)) is None
  with pytest.raises(ValueError, match="min_segment"):
    cp.locate(_noise(rng, "gauss", 500, 3), min_segment=0)


def test_every_change_of_a_chunk_is_found():
  rng = np.random.default_rng(4)
  for t1, t2 in [(150, 400), (300, 700), (480, 850)]:
    x = _noise(rng, "t3", 1000, 6)
    x[t1:t2, 0] += 1.5  # a burst of another distribution
    split = cp.locate(x)
    assert split is not None and len(split.points) <= 3
    assert _error(split, t1, 1000) <= 100 and _error(split, t2, 1000) <= 100


def test_segments_cut_the_chunk_in_order():
  images = np.arange(1000)[:, None, None] * np.ones([1, 2, 2])
  split = cp.Split(points=(300, 650), statistics=(9.0, 8.0), thresholds=(4.0, 4.0), columns=(0, 1))
  assert cp.bounds(1000, split) == [(0, 300), (300, 650), (650, 1000)]
  parts = cp.segments(images, split)
  assert [len(p) for p in parts] == [300, 350, 350]
  np.testing.assert_array_equal(np.concatenate(parts), images)
  assert [len(p) for p in cp.segments(images, None)] == [1000]


# ------------------------------------------------------------------ real MNIST statistics
def _idx(name):
  with gzip.open(os.path.join(paths.MNIST_DIR, name)) as f:
    data = f.read()
  dims = data[3]
  shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
  return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


@pytest.fixture(scope="module")
def digits():
  """Per digit: [N, 4] statistics of the train images: mean ink and 3 principal coordinates
  of the 14x14 average-pooled image (fitted on the test images of the digits used), no model."""
  if not os.path.isdir(paths.MNIST_DIR):
    pytest.skip(f"no MNIST in {paths.MNIST_DIR}")

  def pooled(images):
    return images.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(-1, 196) / 255.0

  train, labels = _idx("train-images-idx3-ubyte.gz"), _idx("train-labels-idx1-ubyte.gz")
  test, test_labels = _idx("t10k-images-idx3-ubyte.gz"), _idx("t10k-labels-idx1-ubyte.gz")
  fit = pooled(test[np.isin(test_labels, [1, 7, 4, 9])])
  mean = fit.mean(axis=0)
  axes = np.linalg.eigh((fit - mean).T @ (fit - mean))[1][:, -3:]
  out = {}
  for digit in (1, 7, 4, 9):
    x = pooled(train[labels == digit])
    out[digit] = np.concatenate([x.mean(axis=1, keepdims=True), (x - mean) @ axes], axis=1)
  return out


@pytest.mark.parametrize("old,new", [(1, 7), (4, 9)])
def test_real_digits_change_is_located(digits, old, new):
  rng = np.random.default_rng(old * 10 + new)
  n, errors, splits = 1000, [], 0
  for t in range(0, n, 50):
    a, b = rng.permutation(digits[old]), rng.permutation(digits[new])
    split = cp.locate(np.concatenate([a[:t], b[: n - t]]), a[-300:])
    errors.append(_error(split, t, n))
  for _ in range(100):
    a = rng.permutation(digits[old])
    splits += cp.locate(a[:n], a[-300:]) is not None
  assert max(errors) <= 100, errors
  assert splits <= 2


# ------------------------------------------------------------------ gradual transitions
def test_outside_share_measures_the_unseen_part():
  rng = np.random.default_rng(8)
  ref = rng.standard_normal((300, 3))
  far = rng.standard_normal((1000, 3)) + 8.0
  same = rng.standard_normal((1000, 3))
  assert cp.outside_share(same, ref)[0] < 0.05
  assert cp.outside_share(far, ref)[0] > 0.95
  mix = np.where(rng.random((1000, 1)) < 0.3, far, same)
  assert abs(cp.outside_share(mix, ref)[0] - 0.3) < 0.06
  # A mix of what the reference holds, in other proportions, is not outside it.
  ref_mix = np.where(rng.random((300, 1)) < 0.2, far[:300], ref)
  assert cp.outside_share(np.where(rng.random((1000, 1)) < 0.6, far, same), ref_mix)[0] < 0.1


def _scores(rng, kinds, gap=30.0):
  """Static stand-ins for detection.component_scores, [n, 3]: s_p, s_q, KL_c; kinds 0 = P,
  1 = Q, 2 = R. Skewed noise; each distribution best explained by its own component, Q by
  `gap` nats under p (P by gap / 2 under q)."""
  g = (rng.gamma(4.0, size=(len(kinds), 3)) - 4.0) / 2.0
  base = np.choose(kinds, [100.0, 110.0, 105.0]) + 8 * g[:, 0]
  s_p = np.where(kinds == 0, base, base + np.choose(kinds, [0, gap, 25.0]) + 8 * g[:, 1])
  s_q = np.where(kinds == 1, base, base + np.choose(kinds, [gap / 2, 0, 20.0]) + 5 * g[:, 1])
  return np.stack([s_p, s_q, np.choose(kinds, [20.0, 23.0, 18.0]) + 2 * g[:, 2]], 1)


def _profile(s, k, components):
  """detection.profile: s_k, KL_c, s_j - s_k."""
  others = [j for j in components if j != k]
  return np.concatenate([s[:, [k]], s[:, [-1]], s[:, others] - s[:, [k]]], 1)


def _shift(a, b):
  """detection.shift_statistic's z: the largest Welch score over the profile's columns."""
  se = np.sqrt(a.var(0, ddof=1) / len(a) + b.var(0, ddof=1) / len(b))
  return float(np.max(np.abs(a.mean(0) - b.mean(0)) / se))


def _changes(seed, shares, proposal, n=1000, threshold=5.0, gap=30.0):
  """Chunks (share of Q, share of R) through the shift test alone (no model, no returns):
  the chunks decided not *same*; each opens an interval, held-out share 10%."""
  rng = np.random.default_rng(seed)
  held, components, gradual, changes = [], [0], None, []
  for c, (q, r) in enumerate(shares):
    s = _scores(rng, rng.choice(3, size=n, p=[1 - q - r, q, r]), gap)
    if c:
      pooled = np.concatenate(held)
      k = int(np.argmin(pooled[:, components].mean(0)))
      chunk, heldout = _profile(s, k, components), _profile(pooled, k, components)
      go_on = (
        proposal
        and gradual
        and cp.continues(
          chunk, heldout, cp.newer_share(s, *gradual), cp.newer_share(held[-1], *gradual)
        )
      )
      if _shift(chunk, heldout) > threshold and not go_on:
        changes.append(c)
        outside, _ = cp.outside_share(chunk, heldout)
        partial = cp.PARTIAL[0] < outside < cp.PARTIAL[1] and k != 1
        gradual, components, held = ((k, 1) if partial else None), [0, 1], []
    held.append(s[: n // 10])
  return changes


P, Q, R = (0, 0), (1, 0), (0, 1)
STREAMS = {  # name: (shares of Q and R per chunk, where each true change may be decided)
  "gradual in 4": ([P] * 3 + [(p, 0) for p in (0.2, 0.4, 0.6, 0.8)] + [Q] * 3, [range(3, 7)]),
  "gradual in 9": ([P] * 3 + [(p / 10, 0) for p in range(1, 10)] + [Q] * 3, [range(3, 12)]),
  "gradual, back": (
    [P] * 3 + [(p, 0) for p in (0.25, 0.5, 0.75)] + [Q] * 2 + [P] * 2,
    [range(3, 6), [8]],
  ),
  "gradual, R": (
    [P] * 3 + [(p, 0) for p in (0.25, 0.5, 0.75)] + [Q] * 2 + [R] * 2,
    [range(3, 6), [8]],
  ),
  "abrupt, back": ([P] * 3 + [Q] * 3 + [P] * 3, [[3], [6]]),
}


def right(changes, truth):
  return len(changes) == len(truth) and all(c in t for c, t in zip(changes, truth))


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_a_gradual_transition_gives_one_change(name):
  shares, truth = STREAMS[name]
  proposal = [right(_changes(seed, shares, True), truth) for seed in range(10)]
  today = [right(_changes(seed, shares, False), truth) for seed in range(10)]
  assert sum(proposal) >= 9
  if name.startswith("gradual"):
    assert sum(today) <= 1  # the shift test alone makes a change at nearly every step
  else:
    assert sum(today) == 10
