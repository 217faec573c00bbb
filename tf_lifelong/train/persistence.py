"""The learner's checkpoints: what each holds, when one may be written (finite weights
only), and restoring a workdir's latest. A part of `Learner` (train/learner.py)."""

from __future__ import annotations

import math

import numpy as np

from tf_lifelong.state import checkpoints, resume, retention
from tf_lifelong.train import open_interval, training
from tf_lifelong.train.context import Begun, RunError, _scratch


class Persistence:
  """The learner's checkpoints: the state record, writing one, restoring the latest."""

  def _state(self, phase, teacher_seen=(), train_state=None, chunk=None) -> dict:
    """The checkpoint record of the learner now (see checkpoints.py)."""
    ctx = self.ctx
    step = train_state.result.steps if train_state is not None else 0
    index = ctx.interval.index if ctx.interval is not None else len(ctx.rows) - 1
    state = {
      "checkpoint": checkpoints.checkpoint_name(index, phase, step if chunk is None else chunk),
      "phase": phase,
      "interval": index,
      "step": step,
      "seen": ctx.seen,
      "teacher_seen": list(teacher_seen),
      "global_step": ctx.global_step + step,
      "distribution_names": {str(i): n for i, n in ctx.names.items()},
    }
    if self._task_free.chunks or self._task_free.open is not None:
      state["detect"] = self._task_free.state()
    if train_state is not None:
      result = train_state.result
      state["early_stopping"] = {
        "best_validation": None if math.isinf(result.best_validation) else result.best_validation,
        "best_step": result.best_step,
        "bad_evals": train_state.bad_evals,
        "lr_decays": train_state.lr_decays,
        "grad_norms": result.grad_norms,
      }
    return state

  def checkpoint(self, phase, teacher_seen=(), train_state=None, chunk=None) -> None:
    """Saves a `start`, `train`, `chunk` or `end` checkpoint; never non-finite weights.

    Every worker of a multi-worker run calls it, since reading distributed
    variables may take part in collectives; only the chief's checkpoint lands
    in the workdir, the others write to a temporary folder that is then
    removed (TensorFlow's multi-worker saving rule).

    Args:
      phase: `start` (after a hand-over), `train` (at an evaluation boundary),
        `chunk` (after a task-free chunk's training) or `end` (the interval
        recorded; the latest `config.keep_checkpoints` are kept).
      teacher_seen: the teacher's distribution ids (what a resume hands over from).
      train_state: early stopping's state (`train`).
      chunk: the chunk's number (`chunk`).

    Raises:
      RunError: the student's weights or optimizer state are not finite.
    """
    for interval in (self._task_free.open, self._task_free.last):  # The record names them.
      open_interval.persist(self.workdir, interval, self.ctx.chief)
    state = self._state(phase, teacher_seen, train_state, chunk)
    best = train_state.best_weights if train_state is not None else None
    if not _finite(self.ctx.student, best):
      raise self.non_finite_error(state["step"], "the weights are not finite")
    if not self.ctx.chief:
      with _scratch() as scratch:
        checkpoints.save(scratch, self.ctx.student, state, best_weights=best)
      return
    checkpoints.save(self.workdir, self.ctx.student, state, best_weights=best)
    self.ctx.last_checkpoint = state["checkpoint"]
    retention.remove_superseded(self.workdir, keep=state["checkpoint"])
    if phase == "end":
      retention.keep_latest(self.workdir, self.config.keep_checkpoints)
    if self.config.boundaries == "detect":
      open_interval.prune(self.workdir, _records(self.workdir))

  def _restore(self, start: resume.Start) -> Begun | None:
    """Restores the learner from `start.state`; the interrupted interval's state, if any."""
    ctx, state = self.ctx, start.state
    step = int(state.get("step", 0))
    try:
      with self._strategy.scope():
        ctx.student = checkpoints.restore(self.workdir, state, self.config)
      best = checkpoints.read_best_weights(self.workdir, state)
    except checkpoints.CheckpointError as e:
      raise RunError(
        f"cannot resume {self.workdir}: {e}; pass --overwrite to start afresh"
      ) from None
    ctx.seen = [int(i) for i in state["seen"]]
    ctx.names = {int(k): v for k, v in (state.get("distribution_names") or {}).items()}
    ctx.global_step = int(state["global_step"]) - step
    ctx.last_checkpoint = state["checkpoint"]
    self._progress.message(
      f"resuming from checkpoint {state['checkpoint']} (interval "
      f"{state['interval']}, step {step}, global step {state['global_step']})"
    )
    if start.phase == "end":
      return None
    train_state = None
    if start.phase == "train":
      stopping = state["early_stopping"]
      result = training.IntervalResult(
        steps=step,
        best_step=int(stopping["best_step"]),
        best_validation=math.inf
        if stopping["best_validation"] is None
        else float(stopping["best_validation"]),
        grad_norms=[float(g) for g in stopping["grad_norms"]],
      )
      train_state = training.TrainState(
        result, int(stopping["bad_evals"]), best, int(stopping.get("lr_decays", 0))
      )
    return Begun(int(state["interval"]), [int(i) for i in state["teacher_seen"]], train_state)

  def non_finite_error(self, step: int, what: str) -> RunError:
    """The one-line error of a non-finite loss or weight, naming where and the last checkpoint."""
    ctx = self.ctx
    where = (
      f"{ctx.workdir}/checkpoints/{ctx.last_checkpoint}"
      if ctx.last_checkpoint
      else "none was written"
    )
    return RunError(
      f"interval {ctx.interval.index} ({ctx.interval.distribution.name}), step "
      f"{step} (global step {ctx.global_step + step}): {what}; the run stopped. "
      f"The last good checkpoint: {where}"
    )


def _finite(student, best_weights) -> bool:
  """Whether every float weight, optimizer variable and best weight is finite."""
  arrays = [*student.get_weights(), *(v.numpy() for v in student.optimizer.variables)]
  arrays += list(best_weights or [])
  return all(np.isfinite(a).all() for a in map(np.asarray, arrays) if a.dtype.kind == "f")


def _records(workdir: str) -> list[dict]:
  """The state records of the workdir's checkpoints (an unreadable one left out)."""
  out = []
  for name in checkpoints.available(workdir):
    try:
      out.append(checkpoints.read_state(workdir, name))
    except checkpoints.CheckpointError:
      pass
  return out
