"""The open interval's reservoir (train/interval_buffer.py): bounded, uniform, exact on resume."""

import numpy as np
import pytest

from tf_lifelong.train.interval_buffer import IntervalBuffer


def _chunks(sizes, start=0):
  """Chunks of consecutive example numbers (uint32 'images' of shape [n, 1]), in time order."""
  out, first = [], start
  for n in sizes:
    out.append(np.arange(first, first + n, dtype=np.uint32)[:, None])
    first += n
  return out


def _fill(buffer, chunks, first_chunk=0):
  for c, images in enumerate(chunks, start=first_chunk):
    buffer.add(images, chunk=c)
  return buffer


def test_the_buffer_never_holds_more_than_its_capacity():
  buffer = IntervalBuffer(capacity=64, seed=3)
  for c, images in enumerate(_chunks([10, 50, 7, 300] + [100] * 200)):
    buffer.add(images, chunk=c)
    assert len(buffer) == min(64, buffer.seen)
    assert buffer.images().shape == (min(64, buffer.seen), 1)
  assert buffer.seen == 10 + 50 + 7 + 300 + 100 * 200
  kept = buffer.images()[:, 0]
  assert len(np.unique(kept)) == 64  # each example at most once: a sample without replacement


def test_every_example_is_kept_with_probability_capacity_over_seen():
  """Algorithm R: after n examples each is in the buffer with probability k / n, the first
  chunk's as much as the last chunk's (a window would keep only the last k)."""
  capacity, sizes, runs = 40, [25, 60, 15, 100], 3000
  n = sum(sizes)
  counts = np.zeros(n)
  for seed in range(runs):
    buffer = _fill(IntervalBuffer(capacity, seed=seed), _chunks(sizes))
    counts[buffer.images()[:, 0]] += 1
  p = capacity / n
  sd = np.sqrt(runs * p * (1 - p))
  z = (counts - runs * p) / sd
  assert np.abs(z).max() < 4.5, f"inclusion counts off by {np.abs(z).max():.1f} sds"
  # The four chunks' mean inclusion rates, each within 3% of k / n.
  edges = np.cumsum([0, *sizes])
  for a, b in zip(edges[:-1], edges[1:], strict=True):
    assert counts[a:b].mean() / runs == pytest.approx(p, rel=0.03)


def _reference(capacity, seed, chunks):
  """Algorithm R one example at a time, with the draws the buffer makes for each chunk."""
  slots, seen = [], 0
  for c, images in enumerate(chunks):
    rng = np.random.default_rng((0x5EED, seed, c))
    start = max(0, min(len(images), capacity - len(slots)))
    for x in images[:start, 0]:
      slots.append(int(x))
    draws = rng.integers(0, seen + np.arange(start, len(images)) + 1)
    for x, r in zip(images[start:, 0], draws, strict=True):
      if r < capacity:
        slots[int(r)] = int(x)
    seen += len(images)
  return slots


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_chunk_gives_the_same_buffer_as_one_example_at_a_time(seed):
  """Within a chunk, a slot drawn twice ends with the later example (sequential order)."""
  chunks = _chunks([5, 400, 3, 250])  # long chunks into a small buffer: many repeated slots
  buffer = _fill(IntervalBuffer(8, seed=seed), chunks)
  assert buffer.images()[:, 0].tolist() == _reference(8, seed, chunks)


def test_a_restored_buffer_goes_on_exactly_as_the_original():
  chunks = _chunks([30, 30, 30, 30, 30, 30])
  whole = _fill(IntervalBuffer(50, seed=9), chunks)
  first = _fill(IntervalBuffer(50, seed=9), chunks[:3])
  state = {k: np.array(v) for k, v in first.state().items()}  # as np.savez would keep it
  resumed = _fill(IntervalBuffer.from_state(state), chunks[3:], first_chunk=3)
  assert resumed.seen == whole.seen == 180
  np.testing.assert_array_equal(resumed.images(), whole.images())


def test_an_empty_buffer_round_trips_and_refuses_a_shape_change():
  empty = IntervalBuffer.from_state(IntervalBuffer(5, seed=1).state())
  assert len(empty) == 0 and empty.seen == 0
  empty.add(np.zeros((3, 2, 2), np.uint8), chunk=0)
  assert empty.images().shape == (3, 2, 2)
  with pytest.raises(ValueError, match=r"chunk 1: images of shape \(3, 3\)"):
    empty.add(np.zeros((2, 3, 3), np.uint8), chunk=1)
  with pytest.raises(ValueError, match="capacity"):
    IntervalBuffer(0)
