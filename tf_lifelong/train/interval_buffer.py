"""The open task-free interval's examples in bounded memory: a reservoir (`--interval_buffer`).

    buffer = IntervalBuffer(capacity=5000, seed=0)
    buffer.add(chunk_images, chunk=7)          # any number of chunks, in time order
    buffer.images()                            # at most `capacity` of them, a uniform sample

Why a reservoir and not a window. Detect mode opens an interval when it decides
that a new distribution (or a return) began, and keeps adding the chunks it
decides are *the same*. Everything in the interval is therefore, by the
detector's own decision, one distribution, and two things read the interval's
examples:

- the interval's training (`chunk_steps` per chunk, then the closing training),
  which should fit the *whole* distribution: the model never sees these examples
  again after the interval ends;
- the shift test, which compares each new chunk with the interval's held-out
  share: a sample of what "same" has meant so far.

A reservoir (Vitter's algorithm R) keeps, after n examples, each of them with
the same probability min(1, capacity / n): an unbiased sample of the interval.
A window of the last `capacity` examples would forget the interval's beginning
(a long stretch would train the component on its end only, and a slow drift
inside the interval would move the "same" reference along with it, so that the
drift is never detected). Its cost is the same as the window's: memory and
disk fixed at `capacity` examples, O(chunk) work per chunk.

Algorithm R. The i-th example of the interval (0-based) fills slot i while
i < capacity; afterwards it replaces slot r, r uniform in {0, ..., i}, when r
< capacity (else it is dropped). By induction each of the n examples seen is in
the buffer with probability capacity / n, and any two with the same joint
probability (the sample is uniform without replacement). The random numbers of
chunk c come from (seed, c) only, so a resumed run that re-adds the same chunks
from the same state gets the same buffer.
"""

from __future__ import annotations

import numpy as np

_SALT = 0x5EED
"""Keys the reservoir's random numbers (with the run's seed and the chunk's number)."""


class IntervalBuffer:
  """At most `capacity` examples of an interval, a uniform sample of all added (Algorithm R)."""

  def __init__(self, capacity: int, seed: int = 0):
    if capacity < 1:
      raise ValueError(f"interval buffer capacity must be >= 1, got {capacity}")
    self.capacity = int(capacity)
    self.seed = int(seed)
    self.seen = 0
    """Examples added since the interval began (kept or not)."""
    self._data: np.ndarray | None = None
    self._filled = 0

  def __len__(self) -> int:
    return self._filled

  def images(self) -> np.ndarray:
    """The kept examples, [min(seen, capacity), ...] (slot order; a view, do not change it)."""
    if self._data is None:
      raise ValueError("the interval buffer is empty")
    return self._data[: self._filled]

  def add(self, images: np.ndarray, chunk: int | tuple[int, ...]) -> None:
    """Adds a chunk's examples in order (Algorithm R, random numbers keyed by `chunk`: its
    number, or (number, first row) for a segment of a chunk that was cut)."""
    images = np.asarray(images)
    n = len(images)
    if n == 0:
      return
    if self._data is None:
      self._data = np.empty((self.capacity, *images.shape[1:]), images.dtype)
    elif images.shape[1:] != self._data.shape[1:] or images.dtype != self._data.dtype:
      raise ValueError(
        f"chunk {chunk}: images of shape {images.shape[1:]} ({images.dtype}) do not match the "
        f"interval's {self._data.shape[1:]} ({self._data.dtype})"
      )
    fill = min(n, self.capacity - self._filled)
    self._data[self._filled : self._filled + fill] = images[:fill]
    self._filled += fill
    rest = np.arange(fill, n)
    if len(rest):
      # Example at position p of the chunk is the (seen + p)-th of the interval.
      key = (chunk,) if np.ndim(chunk) == 0 else tuple(chunk)
      rng = np.random.default_rng((_SALT, self.seed, *(int(k) for k in key)))
      draws = rng.integers(0, self.seen + rest + 1)  # r uniform in {0, ..., i}
      kept = draws < self.capacity
      slots, sources = draws[kept], rest[kept]
      # A slot drawn twice in one chunk holds the later example (sequential semantics).
      last = len(slots) - 1 - np.unique(slots[::-1], return_index=True)[1]
      self._data[slots[last]] = images[sources[last]]
    self.seen += n

  # ------------------------------------------------------------ state
  def state(self) -> dict:
    """Arrays and counters that restore this buffer exactly (`from_state`)."""
    empty = np.zeros((0,), np.uint8)
    return {
      "images": self.images().copy() if self._data is not None else empty,
      "seen": np.int64(self.seen),
      "capacity": np.int64(self.capacity),
      "seed": np.int64(self.seed),
    }

  def copy(self) -> IntervalBuffer:
    """An independent buffer with the same examples and counters."""
    return IntervalBuffer.from_state(self.state())

  @classmethod
  def from_state(cls, state: dict) -> IntervalBuffer:
    """The buffer that `state()` described."""
    buffer = cls(int(state["capacity"]), int(state["seed"]))
    images = np.asarray(state["images"])
    buffer.seen = int(state["seen"])
    if buffer.seen:
      buffer._data = np.empty((buffer.capacity, *images.shape[1:]), images.dtype)
      buffer._data[: len(images)] = images
      buffer._filled = len(images)
    return buffer
