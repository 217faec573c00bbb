"""A first, cheap look at a chunk: is it surely *same*? (issue #35 part 6, the decisions' cost;
deciding.py calls it before scoring a chunk in full).

Scoring a chunk costs J decoder passes per image, for the chunk and again for the open
interval's held-out share (detection.component_scores): at J = 29 on rotated MNIST, 500
steps per interval, about as much as the chunk's 100 training steps. Most chunks are
*same* (127 of 156 there), and for them most of the J columns are idle: a component the
encoder sends almost nothing of the chunk or of the interval to explains neither.

The screen scores the chunk and the held-out share under only `components`: those to
which the encoder sends at least `MASS` of the chunk's or of the held-out share's mean
posterior q(z_d = j | x), and the two shares' largest. On those columns (detection.profile
relative to k, the best of them on the held-out share, with KL_c) it runs the learner's
own tests: the shift test (detection.shift_statistic) and the cut scan (segmenting.cut).

- A chunk passes only when its subset z <= --shift_threshold and the scan finds no cut;
  it is then decided *same* on these columns (`screened` in its record lists them). Any
  other chunk is scored in full and decided exactly as without the screen.
- So the screen can call a changed chunk unchanged (when the change shows only in the
  columns it left out: a subset's z is the largest standard score over fewer columns),
  never an unchanged one changed.

What it costs: a chunk that passes costs (C + 1) / (J + 1) of the full scores, C the
subset's size, plus one encoder pass over the chunk and the held-out share; a chunk that
fails costs the subset's scores on top of the full ones.
"""

from __future__ import annotations

import numpy as np

from tf_lifelong.train import detection, segmenting

MASS = 0.02
"""A component's least share of the chunk's or the held-out share's mean posterior for the
screen to score it (--screen_mass's default; 0: no screen)."""


def components(chunk_masses: np.ndarray, held_masses: np.ndarray, mass: float = MASS) -> list[int]:
  """The screened components, ascending: each with at least `mass` of either mean
  posterior, and the argmax of each."""
  keep = (np.asarray(chunk_masses) >= mass) | (np.asarray(held_masses) >= mass)
  keep[int(np.argmax(chunk_masses))] = keep[int(np.argmax(held_masses))] = True
  return [int(j) for j in np.flatnonzero(keep)]


def screen(
  student, images, held_images, noise: int, shift_threshold: float, mass: float = MASS
) -> dict | None:
  """detection.decide's entries for a chunk the screen finds unchanged (module docstring),
  in component ids: statistic, driver, current (k), scores (S_j(c); None where j was not
  scored) and screened (the subset); None when the chunk must be scored in full."""
  if not mass or held_images is None or not len(held_images):
    return None
  chosen = components(
    detection.posterior_masses(student, images),
    detection.posterior_masses(student, held_images),
    mass,
  )
  if len(chosen) >= int(student.num_categories):
    return None  # Nothing to leave out.
  chunk = detection.component_scores(student, images, noise, components=chosen)
  held = detection.component_scores(student, held_images, noise, components=chosen)
  k = detection.current_component(held)
  z, driver = detection.shift_statistic(chunk, held, k)
  if z > shift_threshold or len(segmenting.cut(chunk, held, shift_threshold)) > 1:
    return None
  scores = [None] * int(student.num_categories)
  for i, j in enumerate(chosen):
    scores[j] = float(chunk[:, i].mean())
  return {
    "statistic": z,
    "driver": chosen[driver] if driver < len(chosen) else int(student.num_categories),
    "current": chosen[k],
    "scores": scores,
    "screened": chosen,
  }
