"""The learner: one lifelong VAE that you keep feeding, one interval at a time.

    from tf_lifelong import Learner

    learner = Learner(config, workdir="runs/camera")   # a new model, J = 0
    learner.learn(monday, name="street")                # interval 0: a plain VAE, J = 1
    learner.learn(tuesday, name="night")                # hand-over, replay of "street", J = 2
    learner.learn(wednesday, name="street")             # a repeat: J stays 2
    images = learner.sample(16, component=1)            # "night" (components in arrival order)
    learner = Learner.load("runs/camera")               # later, in another process

Each `learn` is one interval of method.md: the hand-over (sections 5 and 9;
except for the first), training with replay and early stopping on the
validation mix (section 6), the interval's best weights restored, then its
record: a metrics row (metrics.csv / metrics.jsonl), TensorBoard scalars and
images, a sample grid PNG and a checkpoint. A name seen before is a repeat (J
kept), a new name or none grows J; `new=` says it where there is no name.

A workdir holds one learner's whole life. `Learner.load` opens it: a finished
or between-intervals learner takes its next interval; an interrupted one goes
on inside the interval it was in, when `learn` is given that interval's data
again (lifelong.run and `bin/train` do this for a whole stream). Each
interval's random state is a function of (seed, interval) (intervals.py), so a
resumed interval redoes what was lost as the uninterrupted run did it.

Checkpoints (docs/reliability.md, persistence.py): `start` at each hand-over, `train` every
`config.checkpoint_every` steps, `end` after each interval; never non-finite weights. A full
disk in a write is a one-line RunError that stops the learner (ownership.py).

Task-free streams (`config.boundaries == "detect"`, task_free.py): `observe(
chunk)` takes chunks with no signal and decides for each, before training on
it, whether it continues the current interval, returns to a component, or is
new; the intervals are found, trained and recorded as `learn` does them.

Hooks (objects with optional `before_interval(context)` / `after_interval(context, row)`
methods) see the `Context`; they can add metrics without touching the loop.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from tf_lifelong import config as config_lib
from tf_lifelong import runtime
from tf_lifelong.data import inputs, streams
from tf_lifelong.evaluation import evaluate
from tf_lifelong.monitor import progress, summaries
from tf_lifelong.state import checkpoints, resume
from tf_lifelong.train import detection, task_free
from tf_lifelong.train.context import Context, RunError
from tf_lifelong.train.intervals import Intervals
from tf_lifelong.train.model_access import ModelAccess
from tf_lifelong.train.ownership import Ownership, writer
from tf_lifelong.train.persistence import Persistence
from tf_lifelong.train.recording import Recording

_UNNAMED = 1_000_000
"""Keys the validation share of a repeat whose distribution is not named (id unknown)."""


class Learner(Intervals, Recording, Persistence, ModelAccess, Ownership):
  """A lifelong VAE with its workdir: `learn` one interval at a time, then use it.

  Attributes (read-only): `num_categories` (J), `distributions` (the names of
  the distinct distributions in order of arrival: component j is
  `distributions[j]`), `history` (the metrics rows), `config`, `workdir`.

  Its parts: intervals.py (an interval's steps, `begin_interval` and
  `complete_interval`), recording.py (its record), persistence.py (its
  checkpoints, `checkpoint`), model_access.py (using the model, `check_shape`).
  Those public steps are what task_free.py drives; `learn` and `observe` are
  the ways to feed a learner. It holds its workdir's lock (ownership.py).
  """

  def __init__(
    self,
    config: config_lib.Config | None = None,
    workdir: str | None = None,
    *,
    hooks: Sequence[Any] = (),
    out=None,
    overwrite: bool = False,
  ):
    """Starts a new learner in `workdir` (a fresh temporary folder if None).

    Args:
      config: the configuration (defaults: `Config()`); its data fields
        (dataset, order, ...) are ignored by `learn`, which takes its data.
      workdir: where everything is written; it must not hold another learner
        (open that with `Learner.load`) unless `overwrite`.
      hooks: see the module docstring.
      out: where progress lines go (default stdout).
      overwrite: remove what another run left in `workdir` first.

    Raises:
      RunError: the runtime or the workdir cannot be set up.
    """
    config = config or config_lib.Config()
    workdir = workdir or tempfile.mkdtemp(prefix="tf_lifelong-")
    try:
      existing = resume.has_checkpoint(workdir)
    except OSError as e:
      raise RunError(f"cannot read the workdir {workdir}: {e}") from None
    if existing and not overwrite:
      raise RunError(
        f"{workdir} holds a learner already; open it with Learner.load({workdir!r}), "
        "or pass overwrite=True to start afresh"
      )
    strategy, chief = setup_runtime(config)
    with self._holding(workdir, chief):  # A WorkdirError becomes a RunError.
      start = resume.prepare(config, workdir, overwrite=True, chief=chief)
      self._setup(config, workdir, start, strategy, chief, hooks, out)

  @classmethod
  def load(
    cls, workdir: str, *, hooks: Sequence[Any] = (), out=None, read_only: bool = False, **changes
  ) -> Learner:
    """Opens the learner saved in `workdir` (finished, or interrupted: see the module docstring).

    Args:
      workdir: a workdir written by a Learner, `lifelong.run` or `bin/train`.
      hooks, out: as in the constructor.
      read_only: a reader: no lock, nothing written; `learn` and `observe` refused.
      **changes: configuration fields to change from the saved ones. Fields
        that define the model (`checkpoints.MODEL_FIELDS`) cannot change.

    Raises:
      RunError: no learner there, or unreadable checkpoints.
    """
    try:
      config = checkpoints.read_config(workdir)
      if changes:
        config = config.replace_checked(**changes)
    except (checkpoints.CheckpointError, config_lib.ConfigError) as e:
      raise RunError(f"cannot open a learner in {workdir}: {e}") from None
    strategy, chief = setup_runtime(config)
    chief = chief and not read_only
    learner = cls.__new__(cls)
    with learner._holding(workdir, chief, read_only=read_only):
      start = resume.open_learner(config, workdir, chief=chief)
      learner._setup(config, workdir, start, strategy, chief, hooks, out)
    return learner

  @classmethod
  def for_run(
    cls,
    config: config_lib.Config,
    workdir: str,
    start: resume.Start,
    strategy,
    *,
    stream: streams.Stream | None = None,
    hooks: Sequence[Any] = (),
    out=None,
    tests: dict[int, streams.Split] | None = None,
    catalogue: dict[int, str] | None = None,
  ) -> Learner:
    """The learner of lifelong.run: a prepared workdir, a strategy made by the caller.

    Args:
      tests: test splits by distribution id, evaluated after every interval.
      catalogue: names by distribution id of every distribution the run knows
        (for the pooled distribution of the batch baseline).
    """
    learner = cls.__new__(cls)
    learner._setup(
      config, workdir, start, strategy, runtime.is_chief(strategy), hooks, out, tests, catalogue
    )
    learner.ctx.stream = stream
    return learner

  def _setup(self, config, workdir, start, strategy, chief, hooks, out, tests=None, catalogue=None):
    self.ctx = Context(config, workdir, rows=list(start.rows), chief=chief)
    self._strategy = strategy
    self._hooks = list(hooks)
    self._out = out or sys.stdout
    self._catalogue = dict(catalogue or {})
    self._evaluator = evaluate.Evaluator(tests or {}, limit=config.eval_examples, seed=config.seed)
    logdir = os.path.join(workdir, "tensorboard")
    if start.state is not None and chief:
      # What an interrupted process logged after its checkpoint is logged again.
      keep = summaries.keep_until(int(start.state["global_step"]), len(start.rows))
      summaries.drop_events(logdir, keep)
    self._writer = summaries.SummaryWriter(logdir, enabled=chief)
    self._progress = progress.Progress(None, config.max_steps_per_interval, out, enabled=chief)
    if start.note:  # Damaged checkpoints passed over for the newest sound one.
      self._progress.message(start.note)
    self._pending = self._restore(start) if start.state is not None else None
    self._task_free = task_free.TaskFree(self)
    if start.state is not None and start.state.get("detect"):
      self._task_free.restore(start.state["detect"], self._pending)
      self._pending = None
    self.invocation: int | None = None
    """Which invocation of the workdir this is (lifelong.run sets it; None from Python)."""

  # ------------------------------------------------------------ properties
  @property
  def config(self) -> config_lib.Config:
    return self.ctx.config

  @property
  def workdir(self) -> str:
    return self.ctx.workdir

  @property
  def num_categories(self) -> int:
    """J: the discrete latent's categories (0 before the first interval)."""
    return 0 if self.ctx.student is None else int(self.ctx.student.num_categories)

  @property
  def distributions(self) -> list[str]:
    """Names of the distinct distributions in order of arrival (component j = entry j)."""
    return [self.ctx.names.get(i, f"distribution {i}") for i in self.ctx.seen]

  @property
  def history(self) -> list[dict]:
    """The metrics rows, one per interval (a copy)."""
    return [dict(r) for r in self.ctx.rows]

  @property
  def progress(self) -> progress.Progress:
    return self._progress

  @property
  def evaluated_ids(self) -> tuple[int, ...]:
    """The distribution ids whose test splits the evaluation after each interval covers."""
    return tuple(self._evaluator.ids)

  def add_tests(self, tests: dict[int, streams.Split]) -> None:
    """Adds test splits (by distribution id) to the evaluation after each interval."""
    self._evaluator.add(tests)

  # ------------------------------------------------------------------ learn
  @writer
  def learn(
    self,
    data: Any,
    *,
    name: str | None = None,
    new: bool | None = None,
    validation: Any = None,
    callbacks: Sequence[Any] = (),
  ) -> dict:
    """Learns one interval of one distribution; returns its metrics row.

    Args:
      data: the interval's examples: a numpy array (uint8 0..255 or float in
        [0, 1], [N, H, W] or [N, H, W, C]), a `tf.data.Dataset` of images or
        `(images, labels)`, or a source string (`folder:PATH`, `npz:PATH`,
        `mnist:3`); see data/inputs.py.
      name: the distribution's name. A name seen before is a repeat (J kept);
        a new one, or none, is a new distribution (J + 1).
      new: True / False says new or repeat where there is no name; it must not
        contradict the name.
      validation: the validation examples (same kinds as `data`); default: a
        fixed held-out share (`config.validation_fraction`) of `data`.
      callbacks: Keras callbacks passed to every `fit` of the interval.

    Raises:
      DataError: unusable data (wrong shape for this model, NaN or out of
        range pixels, empty).
      ValueError: a repeat of a name never seen, `new=False` on the first
        interval, a `new` that contradicts the name.
      RunError: training cannot go on (a non-finite loss, a full disk).
    """
    self.end_interval()
    index = len(self.ctx.rows)
    source = data.name if isinstance(data, streams.Distribution) else data
    guess = data.id if isinstance(data, streams.Distribution) else None
    ident, is_new = self._identify(name, new, guess)
    label = name or self.ctx.names.get(ident) or f"distribution {ident}"
    dist = inputs.as_distribution(
      data,
      ident=ident if ident is not None else _UNNAMED + index,  # keys the held-out share
      name=label,
      validation=validation,
      fraction=self.config.validation_fraction,
      data_dir=self.config.data_dir,
      download=self.config.download,
    )
    self.check_shape(dist.train.images.shape[1:])
    judged = getattr(dist, self.config.eval_split)
    # A pooled distribution (the batch baseline's) is judged through its members' own
    # splits; its pooled split, cut at eval_examples, would count as one more distribution.
    pooled = bool(getattr(dist, "members", ()))
    if judged is not None and len(judged) and ident is not None and not pooled:
      self._evaluator.add({ident: judged})
    interval = streams.Interval(index, dist, is_new)
    start = time.monotonic()
    begun = self.begin_interval(interval, ident, label)
    return self.complete_interval(
      interval, ident, label, begun, start, callbacks=callbacks, source=source
    )

  # --------------------------------------------------- task-free streams
  @writer
  def observe(
    self,
    chunk: Any,
    *,
    truth: Any = None,
    truth_name: str | None = None,
    callbacks: Sequence[Any] = (),
  ) -> detection.Decision:
    """Takes one chunk of a stream without signals; returns what was decided for it.

    A chunk that changes inside is cut where it changes (segmenting.py). Before training,
    each segment is decided (detection.py): *same* distribution as the current interval
    (it joins its data), *return* of the distribution of component j (the interval ends;
    a repeat hand-over, J kept) or *new* (the interval ends; J + 1). Then the learner
    trains `config.chunk_steps` steps on the interval's data. See task_free.py.

    Args:
      chunk: the chunk's images (same kinds as `learn`'s data), at least
        `config.batch_size` of them, in time order; it may hold a change anywhere.
      truth, truth_name: the chunk's true distribution where it is known (a benchmark
        stream), one id or one per image: only written down beside the decisions.
      callbacks: Keras callbacks for the `fit` of an interval that this chunk ends.

    Returns:
      The last segment's `detection.Decision` (each is a line of W/boundaries.jsonl).

    Raises:
      DataError: unusable images (wrong shape for this model, too few, NaN).
      RunError: training cannot go on (a non-finite loss, a full disk).
    """
    self._writable()
    return self._task_free.observe(chunk, truth, truth_name, callbacks)

  @writer
  def end_interval(self, callbacks: Sequence[Any] = ()) -> dict | None:
    """Ends the open task-free interval (early-stopped training, its row); None if none."""
    self._writable()
    return self._task_free.close(callbacks)

  @property
  def chunks_observed(self) -> int:
    """The number of chunks `observe` has taken (a resumed learner counts the earlier ones)."""
    return self._task_free.chunks

  @property
  def decisions(self) -> list[dict]:
    """Every decision of `observe` so far, as in workdir/boundaries.jsonl."""
    return [dict(d) for d in self._task_free.decisions]

  def _identify(self, name, new, guess) -> tuple[int | None, bool]:
    """(distribution id, is_new) of the next interval from its name and `new`."""
    by_name = {n: i for i, n in self.ctx.names.items()}
    if self._pending is not None:  # The interrupted interval's own identity.
      ident = by_name.get(name) if name is not None else None
      if ident is None and guess is not None and guess in self.ctx.names:
        ident = guess
      return ident, len(self.ctx.seen) > len(self._pending.teacher_seen)
    if name is not None and name in by_name:
      if new is True:
        raise ValueError(f"new=True, but the name {name!r} was seen before (a repeat)")
      return by_name[name], False
    if new is False:
      if not self.ctx.seen:
        raise ValueError("new=False on the first interval: there is nothing to repeat")
      if name is not None:
        raise ValueError(
          f"new=False, but the name {name!r} was never seen (seen: {', '.join(self.distributions)})"
        )
      return None, False
    fresh = guess if guess is not None and guess not in self.ctx.names else None
    if fresh is None:
      fresh = max([*self.ctx.names, *self._catalogue, -1]) + 1
    return fresh, True

  @writer
  def finish(self) -> None:
    """Ends an open task-free interval (`end_interval`), exports the model to
    workdir/export, marks the learner finished (its record) and frees the workdir's lock."""
    self.end_interval()
    self.export()
    if self.ctx.chief:
      checkpoints.mark_finished(self.workdir, export=os.path.join(self.workdir, "export"))
    self._writer.close()
    self.close()


def setup_runtime(config: config_lib.Config):
  """Configures TensorFlow for `config` and makes its strategy: (strategy, chief).

  Raises:
    RunError: the runtime cannot be set up (devices, strategy).
  """
  try:
    runtime.configure(config)
    strategy = runtime.make_strategy(config)
  except runtime.RuntimeSetupError as e:
    raise RunError(str(e)) from None
  runtime.check_batch_divides(config, strategy)
  return strategy, runtime.is_chief(strategy)
