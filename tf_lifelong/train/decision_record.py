"""The record of one task-free decision: a line of W/boundaries.jsonl (docs/outputs.md).

`detection.Decision` is this class (detection.py makes the statistics; deciding.py fills
the record).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Decision:
  """What the learner decided for one chunk or segment of a chunk, and why (a line of
  boundaries.jsonl)."""

  chunk: int
  decision: str
  """same, return or new."""
  component: int | None
  """The component the chunk is given to: the current one (same), the returning one, or
  the new one (J after the hand-over - 1)."""
  statistic: float | None = None
  """|z| of the shift test (None for the first chunk)."""
  threshold: float | None = None
  return_statistic: float | None = None
  """The smallest d_j over the components with a reference (None when none has one)."""
  return_threshold: float | None = None
  best_return: int | None = None
  return_distances: list[float] | None = None
  """best_return's distance per profile entry (`profile`: s_j, KL_c, s_i - s_j, ...)."""
  return_mass: float | None = None
  """best_return's share of the chunk's mean posterior q(z_d = j | x)."""
  return_ratio: float | None = None
  """best_return's nearest-sample ratio (neighbours.py), None where not measured."""
  ratio_threshold: float | None = None
  """--return_ratio, the bound on return_ratio."""
  driver: int | None = None
  """The component whose score (j = k) or difference to k (j != k) moved most."""
  current: int | None = None
  """k: the component that explains the current interval best."""
  scores: list[float | None] | None = None
  """S_j(c) for every component j (None for a component the screen did not score)."""
  screened: list[int] | None = None
  """The components the screen scored, when it alone decided the chunk *same*
  (screening.py); None when every component was scored."""
  seconds: float = 0.0
  truth: int | None = None
  truth_name: str | None = None
  start: int = 0
  """The first row of the chunk this decision is for (segmenting.py: a chunk with a change
  inside is cut, and each segment decided; 0 and `end` None in records from before)."""
  end: int | None = None
  """The row after its last (the chunk's length for a whole chunk)."""
  cut_statistic: float | None = None
  """For a segment that starts at a cut: the rank scan's M there, and its critical value."""
  cut_threshold: float | None = None
  outside_share: float | None = None
  """For a segment that changed: the share of it outside the current interval's support
  (gradual.py; a partial mix opens a transition)."""
  newer_share: float | None = None
  """In a transition from p to q: the share of its rows with s_q < s_p (gradual.py)."""
  gradual: bool = False
  """*same* as a further step of a gradual transition, though the shift test fired."""
  mix: bool = False
  """A *new* segment whose rows inside the interval's support are the interval's own
  distribution: a partial mix (gradual.py)."""

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> Decision:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
