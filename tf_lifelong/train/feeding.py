"""What lifelong.run feeds its learner, from where the workdir left off.

- Told boundaries: the stream's intervals, one `Learner.learn` each.
- `boundaries == "detect"`: chunks, one `Learner.observe` each, in time order:
  a labelled stream's intervals cut into chunks (`chunked`; such a stream is in
  memory already), or a time-ordered source (data/frames.py: an npz, an .npy, a
  folder of frames) read one chunk at a time, never whole. A chunk's truth,
  where the source has one, goes beside its decision only.

A continuation's chunks are numbered on from the learner's (`start.first_chunk`
is the number of this invocation's first chunk), so that a resumed invocation
skips what it has learned without reading it.
"""

from __future__ import annotations

import numpy as np

from tf_lifelong.data import frames, streams
from tf_lifelong.state import resume


def chunked(stream: streams.Stream, chunk_size: int) -> list[tuple[np.ndarray, int, str]]:
  """The stream's intervals cut into chunks, in time order: (images uint8, truth id, name).

  Each interval's examples (train and validation splits, in their order) give
  max(1, N // chunk_size) chunks of chunk_size; the last takes the remainder.
  """
  out = []
  for interval in stream:
    d = interval.distribution
    images = np.concatenate([d.train.images, d.validation.images])
    count = max(1, len(images) // chunk_size)
    for i in range(count):
      end = len(images) if i == count - 1 else (i + 1) * chunk_size
      out.append((images[i * chunk_size : end], d.id, d.name))
  return out


def _after(chunks, done: int):
  """(images, truth, name) of the chunks after the first `done`."""
  if isinstance(chunks, frames.Chunks):
    return ((c.images, c.truth, c.truth_name) for c in chunks.from_chunk(done))
  return chunks[done:]


def feed(learner, stream: streams.Stream | None, chunks, start: resume.Start) -> None:
  """for interval in stream: learner.learn(interval), or observe(chunk) for every chunk
  (a list of `chunked`, or frames.Chunks), from where the workdir left off."""
  if chunks is not None:
    for images, truth, name in _after(chunks, learner.chunks_observed - start.first_chunk):
      learner.observe(images, truth=truth, truth_name=name)
    learner.ctx.last = True
    learner.end_interval()
    return
  done = start.next_interval - start.first_interval
  for interval in stream.intervals[done:]:
    dist = interval.distribution
    learner.ctx.last = interval is stream.intervals[-1]
    learner.learn(dist, name=dist.name, new=None if start.invocation else interval.is_new)
