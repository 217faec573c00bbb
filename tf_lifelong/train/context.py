"""What a learner's hooks and parts share: its Context, its errors, a begun interval,
the R matrix of its rows and a scratch folder for non-chief workers."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

from tf_lifelong import config as config_lib
from tf_lifelong.data import streams
from tf_lifelong.evaluation import metrics
from tf_lifelong.train import training

GRID_COLUMNS = 10


class RunError(Exception):
  """The run cannot go on; the message says why and what to do."""


@dataclasses.dataclass
class Context:
  """What hooks see: the learner's life so far."""

  config: config_lib.Config
  workdir: str
  stream: streams.Stream | None = None
  """The stream being run (lifelong.run), None when fed from Python."""
  interval: streams.Interval | None = None
  student: Any = None
  seen: list[int] = dataclasses.field(default_factory=list)
  """Distribution ids in order of arrival of the new ones: component j is seen[j]."""
  names: dict[int, str] = dataclasses.field(default_factory=dict)
  """Distribution id -> name, of every id seen."""
  rows: list[dict] = dataclasses.field(default_factory=list)
  global_step: int = 0
  """Training steps of the intervals before the current one (after it, once it ended)."""
  result: training.IntervalResult | None = None
  chief: bool = True
  last_checkpoint: str | None = None
  """The newest checkpoint written or restored (named in error messages)."""
  last: bool = False
  """Set by lifelong.run while the stream's last interval is being learned or recorded."""
  seen_truth: list | None = None
  """Task-free runs whose stream knows its truth: the true distribution ids seen so far."""

  @property
  def matrix(self) -> metrics.ElboMatrix:
    """R[i][j] of the rows: test -ELBO of distribution j after interval i."""
    return _matrix(self.rows)


@dataclasses.dataclass
class Begun:
  """An interval after its hand-over (just handed over, or resumed from a checkpoint):
  its index, the teacher's distribution ids, early stopping's state (None: from step 0)."""

  index: int
  teacher_seen: list[int]
  train_state: training.TrainState | None


def _matrix(rows: Sequence[dict]) -> metrics.ElboMatrix:
  """The -ELBO matrix of the rows (columns: every distribution id any row measured)."""
  ids = sorted({int(k) for r in rows for k in r.get("neg_elbo_per_distribution", {})})
  matrix = metrics.ElboMatrix(ids)
  for r in rows:
    values = r.get("neg_elbo_per_distribution", {})
    matrix.add(r["distribution"], {int(k): math.nan if v is None else v for k, v in values.items()})
  return matrix


@contextlib.contextmanager
def _scratch():
  """A temporary folder for what a non-chief worker must save but not keep."""
  folder = tempfile.mkdtemp(prefix="tf_lifelong_worker_")
  try:
    yield folder
  finally:
    shutil.rmtree(folder, ignore_errors=True)
