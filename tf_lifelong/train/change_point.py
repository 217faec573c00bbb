"""Where a chunk changes: change points from per-example statistics (issue #35, part 3).

Pure numpy. The input is a chunk's per-example statistics in time order, rows x_1..x_n,
d columns (for the learner: `detection.profile(scores, k, components)`, i.e. s_k, KL_c
and s_j - s_k, the columns of `detection.shift_statistic`), and optionally the current
interval's held-out statistics R (m rows, the same columns, the same model).

The scan. Per column, r_i is the rank of y_i in the series y = [R; x] (N = m + n; y = x
when there is no R; ties get their mean rank). A split after t rows compares y[:t] with
y[t:] by the standardised Mann-Whitney statistic, for every t from one cumulative sum:

    W_t = sum_{i<=t} r_i,   E W_t = t (N + 1) / 2,
    Var W_t = t (N - t) / (N (N - 1)) * sum_i (r_i - (N + 1) / 2)^2,
    Z_t = (W_t - E W_t) / sqrt(Var W_t).

M = max over the columns and over t in [lo, hi] of |Z_t|; its argmax t* is the change
point. O(N d) after the ranks' O(N d log N). Ranks, not values: with no change the rows
are exchangeable, the ranks a uniform permutation whatever the statistics' distribution,
so M's null law depends on N, [lo, hi] and d only, not on the skew and the outliers of
-ELBO scores (one odd image moves one rank, not a mean). The cost: an efficiency of
3/pi = 0.955 against the t-test on Gaussian data, more than 1 on heavy tails.

The threshold. M is a maximum, not N(0, 1). With no change, Z_{uN} -> B(u)/sqrt(u(1-u))
(B a Brownian bridge), in the time s = log(u/(1-u)) / 2 a stationary Ornstein-Uhlenbeck
process with correlation exp(-|ds|). Its maximum over a range (Pickands; Siegmund 1985,
with his correction nu for a process seen at discrete t) has, for one column,

    P(max_{lo<=t<=hi} |Z_t| > b)
      ~= P(|Z_lo| > b) + 2 b phi(b) sum_{t=lo+1}^{hi} nu(b w_t) w_t^2 / 2,
    w_t^2 = N / (t (N - t)) (the variance of Z_{t+1} - Z_t),  nu(x) ~= exp(-0.583 x)

(`tail_probability`, taken SAFETY = 1.3 times: simulated, it was up to 1.2x low). Without
nu the sum is the range's length in s, log((1-e)/e) for lo = eN = N - hi: the threshold
grows like sqrt(2 log log N), slowly, with N and with a narrower min_segment.
For d columns, b (`critical_value`) solves it = 1 - (1 - false_alarm)^(1/d): exact for
independent columns, conservative for dependent ones (the profile's differences share
s_k): by the Gaussian correlation inequality (Royen 2014) P(every column's max <= b) >=
prod_c P(column c's max <= b) for jointly Gaussian processes, which the rank processes
are in the limit. At false_alarm = 0.01 and min_segment = 100, b is 2.9 / 3.4 (n = 200,
d = 2 / 12), 3.8 / 4.3 (n = 1000), 4.0 / 4.4 (n = 5000); N(0, 1)'s 2.58 would split
about 14% of the chunks of 1000 without a change (one column; 17% at 2.5, simulated).

Measured splits in chunks without a change, in % of chunks, at false_alarm = 0.01 and
min_segment = 100: columns iid / with 300 reference rows / dependent (a common part,
correlation 0.9); Gaussian columns, since the ranks make every continuous law the same
(2000 chunks each for n <= 1000, 1000 for n = 2000, 400 for n = 5000; again with 3000
and 1500: 0.77 / 0.67 at d = 2, 0.73 / 0.53 at d = 12):

    n       d = 2             d = 4             d = 8             d = 12
    200     0.75 0.60 0.70    0.55 0.30 0.40    0.15 0.70 0.20    0.65 0.60 0.45
    500     0.70 0.85 0.75    0.75 0.70 0.65    0.55 0.95 0.30    0.85 0.35 0.30
    1000    0.90 0.80 0.65    0.80 0.75 0.55    0.65 0.70 0.50    0.70 0.85 0.25
    2000    0.60 0.60 1.00    0.70 0.40 0.60    0.70 0.30 0.60    0.60 0.60 0.20
    5000    1.00 1.50 1.00    1.00 1.00 0.25    1.00 0.50 0.75    0.75 0.50 0.75

Several changes: binary segmentation. After a significant t*, each side is scanned again
with its own threshold, down to segments of 2 min_segment; all significant points are
returned. Why all and not the first: the learner decides the segments in order, each
with fresh statistics, so a superfluous split costs a decision (its two sides are both
*same*), while a missed one puts two distributions in one segment, the spurious component
this module exists to prevent. Under no change the first scan stops it (false_alarm);
each further scan on a side without a change adds at most false_alarm.

The edges. A split needs min_segment rows on each side, so a change within min_segment of
a chunk's end is found at the edge (t* = n - min_segment) or not at all (then the next
chunk starts with it): either way at most min_segment rows go to the wrong side. With R,
the scan starts at the chunk's start (t = 0: R against the whole chunk), and a point t <
min_segment means the chunk changes at (or near) its start: it moves to min_segment when t
>= min_segment / 2 (and a segment of min_segment follows), else it goes and the chunk's
first segment, decided as a whole as without this module, starts with the change; at most
min_segment / 2 rows on the wrong side. Without R a change in the first min_segment rows
is found at min_segment or not at all. With min_segment <= 100, every change the scan has
the power to see is placed within 100 rows.

Measured (tests/test_change_point.py's chunks: n = 500, 1000, 2000 with d = 2, 6, 12;
Gaussian, Student-t 3, lognormal; with and without R; t every n/40 rows): a shift of one
sd in one column is placed, between the edges, within median 1, 90th percentile 6, at
most 28 rows (570 chunks), and at the edges within 68; half a sd: median 3, 90th
percentile 20, 99th 81, at most 150. Real MNIST (mean ink and 3 principal coordinates of
each image, no model; chunks of 1000, t every 10 rows): 1 -> 7 within 2 rows between
the edges, 4 -> 9 within 39; 0 to 2 splits in 300 chunks of one digit.

Gradual transitions (a proposal, measured on simulated statistics only). A chunk of a
transition P -> Q is a mix (1 - pi) P + pi Q, with pi rising over several chunks. It has no
change point (its rows are exchangeable), so the scan leaves it whole. The shift test then
fires at nearly every step: the chunk with share pi' differs in mean from the interval
with share pi, by (pi' - pi) times P and Q's difference. Each step opens another component.
What separates this from a new distribution is support, not level: a chunk of the
transition holds nothing the interval has not seen (P-like rows and Q-like rows), only in
other proportions, and its share of Q has not fallen. Hence:

1. When a chunk opens a new interval, its `outside_share` against the interval it leaves
   (the share of its rows beyond that interval's support, by nearest neighbours) is in
   PARTIAL: it is a partial mix, and the new interval is a transition from p (the
   component it left) to q (the new one).
2. In such an interval, a chunk that fails the shift test is *same* when `continues`: its
   outside share against the interval's held-out rows is at most OUTSIDE_MAX, and its
   `newer_share` (rows with s_q < s_p) is at least that of the interval's latest chunk,
   less a slack (a return to P has a share near 0; a new distribution R lies outside).

Measured (tests/test_change_point.py, `_changes`: static scores of a P, a Q and an R,
each best explained by its own component, skewed noise; the shift test with threshold 5
and a 10% held-out share, no model, no returns; 20 seeds, chunks of 1000; right = one
change within the transition, and one at each abrupt change):

    stream (Q 30 nats from P under p)          shift test alone      with the proposal
    P x3, pi = .2 .4 .6 .8, Q x3                0/20 (3-4 changes)    20/20
    P x3, pi = .1 .. .9, Q x3                   0/20 (3-5 changes)    20/20
    P x3, pi = .25 .5 .75, Q x2, P x2 (return)  0/20 (3-5)            20/20
    the same, then R x2 instead of P            0/20 (3-5)            20/20
    P x3, Q x3, P x3 (abrupt)                   20/20                 20/20

With Q 10 nats from P: 19 or 20 of 20 right with the proposal, 0 without. With 5 nats
(look-alikes): 15, 8, 18, 18, 20 of 20: the supports overlap, the opening chunk's outside
share falls below PARTIAL, the interval is not marked, and the shift test goes on as
before. Not measured: a learner, whose scores move as it trains on the mix (the new
component first learns a mostly-P chunk, so its s_q of P rows may be low, and newer_share
less telling), nor a mix whose share rises within a chunk (the scan may cut it: a
superfluous split, both sides *same*). gradual.py wires the rule into the learner's
decisions; docs/task_free.md has its measurement with a learner.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

MIN_SEGMENT = 100
FALSE_ALARM = 0.01
_NU = 0.583
SAFETY = 1.3
"""The approximation's tail, measured on 10^5 null scans of one column, was up to 1.2x low
near b = 4 for n = 300..5000 (it neglects O(1/b^2) terms): it is taken 1.3x."""


@dataclasses.dataclass(frozen=True)
class Split:
  """The change points located in a chunk, in chunk positions (0 < t < n), increasing."""

  points: tuple[int, ...]
  statistics: tuple[float, ...]
  """M at each point (the largest |Z_t| over the columns)."""
  thresholds: tuple[float, ...]
  """The critical value each point's scan had to exceed."""
  columns: tuple[int, ...]
  """The column whose |Z_t| was the largest at each point."""
  start_change: bool = False
  """With a reference: the chunk also differs from it from its start (a point < min_segment,
  not kept: the first segment is decided as a whole)."""


def ranks(values: np.ndarray) -> np.ndarray:
  """Mean ranks 1..N of each column of values [N, d] (ties share their mean rank)."""
  out = np.empty(values.shape, np.float64)
  for c in range(values.shape[1]):
    _, inverse, counts = np.unique(values[:, c], return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    out[:, c] = mean_rank[inverse.reshape(-1)]
  return out


def scan(values: np.ndarray, lo: int, hi: int) -> tuple[int, float, int]:
  """(t*, M, column): the split after t* rows (lo <= t* <= hi) with the largest |Z_t|."""
  n = len(values)
  r = ranks(values)
  centred = r - (n + 1) / 2.0
  ss = np.sum(centred**2, axis=0)
  t = np.arange(lo, hi + 1, dtype=np.float64)
  w = np.cumsum(centred, axis=0)[lo - 1 : hi]  # W_t - E W_t, t = lo..hi
  var = (t * (n - t) / (n * (n - 1.0)))[:, None] * ss[None, :]
  z = np.where(var > 0, np.abs(w) / np.sqrt(np.maximum(var, 1e-300)), 0.0)
  i, c = np.unravel_index(int(np.argmax(z)), z.shape)
  return lo + int(i), float(z[i, c]), int(c)


def tail_probability(b: float, n: int, lo: int, hi: int) -> float:
  """P(max_{lo<=t<=hi} |Z_t| > b) for one column of n exchangeable rows (docstring):
  |Z_lo| > b, or a crossing later; times SAFETY."""
  t = np.arange(lo + 1, hi + 1, dtype=np.float64)
  w2 = n / (t * (n - t))
  phi = math.exp(-b * b / 2) / math.sqrt(2 * math.pi)
  crossings = 2 * b * phi * np.sum(np.exp(-_NU * b * np.sqrt(w2)) * w2 / 2)
  return SAFETY * float(math.erfc(b / math.sqrt(2)) + crossings)


@functools.lru_cache(maxsize=4096)
def critical_value(n: int, lo: int, hi: int, d: int, false_alarm: float = FALSE_ALARM) -> float:
  """b with P(M > b) = false_alarm under no change, M the max over d columns and t in [lo, hi]."""
  per_column = 1.0 - (1.0 - false_alarm) ** (1.0 / d)
  low, high = 0.5, 12.0
  for _ in range(60):
    mid = (low + high) / 2
    if tail_probability(mid, n, lo, hi) > per_column:
      low = mid
    else:
      high = mid
  return high


def locate(
  values: np.ndarray,
  reference: np.ndarray | None = None,
  *,
  min_segment: int = MIN_SEGMENT,
  false_alarm: float = FALSE_ALARM,
) -> Split | None:
  """The significant change points of a chunk (module docstring), or None.

  Args:
    values: the chunk's per-example statistics in time order, [n, d].
    reference: the current interval's held-out statistics, [m, d], or None.
    min_segment: the fewest rows on either side of a split (within the chunk).
    false_alarm: the chance of a split in a chunk without a change (per scan).

  Returns:
    A Split with points min_segment <= t <= n - min_segment (segments of at least
    min_segment rows), or None when there is none (the chunk is decided as a whole).
  """
  x = np.asarray(values, np.float64)
  x = x[:, None] if x.ndim == 1 else x
  ref = np.zeros([0, x.shape[1]]) if reference is None else np.asarray(reference, np.float64)
  m, n, h = len(ref), len(x), int(min_segment)
  if h < 1 or not 0 < false_alarm < 1:
    raise ValueError(f"min_segment {min_segment} (>= 1), false_alarm {false_alarm} (in (0, 1))")
  y = np.concatenate([ref.reshape(m, x.shape[1]), x])
  found = []
  todo = [(0, m + n)]
  while todo:
    a, b = todo.pop()
    lo = max(a + h, m) if m else a + h  # with R, the chunk's start (t = 0) is scanned too
    hi = b - h
    if hi < lo or lo <= a:
      continue
    t, stat, column = scan(y[a:b], lo - a, hi - a)
    bound = critical_value(b - a, lo - a, hi - a, x.shape[1], false_alarm)
    if stat > bound:
      found.append((a + t - m, stat, bound, column))
      todo += [(a, a + t), (a + t, b)]
  return _placed(sorted(found), n, h)


def _placed(found: list[tuple], n: int, h: int) -> Split | None:
  """The Split of the points found (chunk positions, increasing): a point before h (only with
  a reference) moves to h when it lies in [h/2, h) and a segment of h still follows it;
  otherwise it goes (the chunk's first segment then starts with the change)."""
  start = bool(found) and found[0][0] < h
  kept = [f for f in found if f[0] >= h]
  if start and found[0][0] >= h / 2 and (kept[0][0] if kept else n) >= 2 * h:
    kept.insert(0, (h, *found[0][1:]))
  if not kept:
    return None
  return Split(*(tuple(v) for v in zip(*kept)), start_change=start)


def bounds(n: int, split: Split | None) -> list[tuple[int, int]]:
  """The segments [start, end) of a chunk of n rows that `split` cuts, in time order."""
  edges = [0, *(split.points if split else ()), n]
  return [(a, b) for a, b in zip(edges[:-1], edges[1:])]


def segments(images: np.ndarray, split: Split | None) -> list[np.ndarray]:
  """The chunk's images cut at the split's points: the sub-chunks to decide, in order."""
  return [images[a:b] for a, b in bounds(len(images), split)]


# ------------------------------------------------------------------ gradual transitions
OUTSIDE_QUANTILE = 0.95
PARTIAL = (0.05, 0.9)
"""An opening chunk with an outside share in this range is a partial mix: a gradual start."""
OUTSIDE_MAX = 0.2
"""A chunk with at most this outside share holds nothing its interval has not seen."""


def _standardised(values: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Both in the reference's robust units per column: (v - median) / (1.4826 MAD)."""
  centre = np.median(reference, axis=0)
  scale = 1.4826 * np.median(np.abs(reference - centre), axis=0)
  scale = np.where(scale > 0, scale, np.std(reference, axis=0))
  scale = np.where(scale > 0, scale, 1.0)
  return (values - centre) / scale, (reference - centre) / scale


def _nearest(a: np.ndarray, b: np.ndarray, exclude_self: bool = False) -> np.ndarray:
  """Each row of a's Euclidean distance to its nearest row of b (blocks of 512 rows)."""
  out, b2 = [], np.sum(b * b, axis=1)
  for start in range(0, len(a), 512):
    block = a[start : start + 512]
    d2 = np.sum(block * block, axis=1)[:, None] + b2[None, :] - 2 * block @ b.T
    if exclude_self:
      d2[np.arange(len(block)), start + np.arange(len(block))] = np.inf
    out.append(np.sqrt(np.maximum(d2.min(axis=1), 0.0)))
  return np.concatenate(out)


def outside_share(
  values: np.ndarray, reference: np.ndarray, quantile: float = OUTSIDE_QUANTILE
) -> tuple[float, np.ndarray]:
  """The share of a chunk's rows outside the reference's support, and which rows.

  A row is outside when its nearest reference row (in the reference's robust units per
  column) is farther than the `quantile` of the reference rows' own nearest-neighbour
  distances (leave one out). The share is (outside - (1 - quantile)) / quantile, in [0, 1]:
  about 0 for a chunk of the reference's distribution, or of any mix of the parts it has
  (whatever their proportions), about 1 for a distribution it has none of, and pi for a mix
  holding a share pi of such a one (when the two are apart). At most 2000 reference rows
  (evenly spaced) are used.
  """
  ref = np.asarray(reference, np.float64)
  ref = ref[np.linspace(0, len(ref) - 1, min(len(ref), 2000)).astype(int)]
  x, r = _standardised(np.asarray(values, np.float64), ref)
  bound = np.quantile(_nearest(r, r, exclude_self=True), quantile)
  outside = _nearest(x, r) > bound
  share = (float(np.mean(outside)) - (1.0 - quantile)) / quantile
  return min(max(share, 0.0), 1.0), outside


def newer_share(scores: np.ndarray, old: int, new: int) -> float:
  """The share of rows that component `new` explains better than `old`: mean(s_new < s_old)
  (scores as `detection.component_scores`, [N, J + 1])."""
  return float(np.mean(scores[:, new] < scores[:, old]))


def continues(
  values: np.ndarray,
  heldout: np.ndarray,
  share: float,
  last_share: float,
  *,
  outside_max: float = OUTSIDE_MAX,
  slack: float = 0.05,
) -> bool:
  """Is a chunk that failed the shift test more of a gradual transition under way? (`gradual`)

  Args:
    values, heldout: the chunk's and the current interval's held-out statistics (the same
      columns as the shift test's).
    share, last_share: `newer_share` of the chunk, and of the interval's latest chunk's
      held-out share (the transition's new component against the one it started from).

  Returns:
    True (decide *same*) when nothing in the chunk lies outside the interval's support
    (`outside_share` <= outside_max) and its newer share has not fallen (>= last - slack).
  """
  outside, _ = outside_share(values, heldout)
  return outside <= outside_max and share >= last_share - slack
