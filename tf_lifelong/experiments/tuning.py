"""Hyperparameter search over whole lifelong runs with keras-tuner (bin/tune).

    best = tune(base_config, "runs/tune-mnist", max_trials=20)

Each trial is one lifelong run (`lifelong.run`, the base configuration with the
trial's values) in its own workdir, `W/search/trial_XX/run/`. The objective,
minimised, is the mean over the run's intervals of the best validation -ELBO
of each interval (`best_validation_neg_elbo` in lifelong's metrics rows: the
interval's validation split plus the teacher's synthetic validation batch,
method.md section 6). The test sets never enter the objective.

The search space (`SPACE`, keras-tuner random search, `seed` = config.seed):

| field (symbol)            | range                      | sampling |
|---------------------------|----------------------------|----------|
| mi_weight (lambda)        | [1e-3, 10]                 | log      |
| consistency_weight (gamma)| [1e-3, 10]                 | log      |
| tau_min                   | [0.1 tau0, tau0]           | linear   |
| continuous_dim (F)        | [2, 64]                    | log      |
| learning_rate             | [1e-5, 1e-2]               | log      |

The workdir W receives keras-tuner's own records (`W/search/oracle.json`,
`W/search/trial_XX/trial.json`), `W/trials.jsonl` (one line per trial: id,
status, values, objective, per-interval validation -ELBO, its run's workdir or
its error) and `W/best_config.json`, the full Config of the best trial, which
`bin/train --config_file=W/best_config.json` takes back. A search started again
in the same workdir continues (the finished trials count towards
`max_trials`); `overwrite=True` starts afresh.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

from tf_lifelong import config as config_lib
from tf_lifelong import installation
from tf_lifelong.data import sources
from tf_lifelong.state import artifacts
from tf_lifelong.train import lifelong

OBJECTIVE = "validation_neg_elbo"
PROJECT = "search"


@dataclasses.dataclass(frozen=True)
class Range:
  """One searched Config field: [low, high], log or linear sampling."""

  low: float
  high: float
  log: bool
  integer: bool = False


SPACE = {
  "mi_weight": Range(1e-3, 10.0, log=True),
  "consistency_weight": Range(1e-3, 10.0, log=True),
  "tau_min": Range(0.1, 1.0, log=False),  # times config.tau0
  "continuous_dim": Range(2, 64, log=True, integer=True),
  "learning_rate": Range(1e-5, 1e-2, log=True),
}
"""The searched fields; tau_min's bounds are fractions of the base tau0."""


class TuneError(Exception):
  """The search cannot go on or found nothing; the message says why."""


def _keras_tuner():
  """keras_tuner, or a MissingExtraError naming the `tune` extra."""
  return installation.require("keras_tuner", "the hyperparameter search (tf-lifelong-tune)")


def hyperparameters(base: config_lib.Config):
  """The keras-tuner search space for `base` (see `SPACE`)."""
  keras_tuner = _keras_tuner()

  hp = keras_tuner.HyperParameters()
  for name, r in SPACE.items():
    low, high = r.low, r.high
    if name == "tau_min":
      low, high = low * base.tau0, high * base.tau0
    sampling = "log" if r.log else "linear"
    if r.integer:
      hp.Int(name, int(low), int(high), sampling=sampling)
    else:
      hp.Float(name, low, high, sampling=sampling)
  return hp


def trial_config(base: config_lib.Config, values: dict[str, Any]) -> config_lib.Config:
  """`base` with the searched fields set from a trial's values."""
  fields = {name: values[name] for name in SPACE if name in values}
  if "continuous_dim" in fields:
    fields["continuous_dim"] = int(fields["continuous_dim"])
  return dataclasses.replace(base, **fields)


def objective(rows: list[dict[str, Any]]) -> float:
  """Mean over intervals of the best validation -ELBO (NaN if an interval has none)."""
  values = [row.get("best_validation_neg_elbo") for row in rows]
  if not values or any(v is None or not math.isfinite(v) for v in values):
    return math.nan
  return float(sum(values) / len(values))


def _tuner_class():
  """A keras-tuner BaseTuner whose trials are lifelong runs (imported lazily)."""
  keras_tuner = _keras_tuner()

  class LifelongTuner(keras_tuner.engine.base_tuner.BaseTuner):
    """Runs `lifelong.run` per trial and returns the validation objective."""

    def __init__(self, base: config_lib.Config, oracle, out=None, **kwargs):
      self.base = base
      self.out = out
      self.records: dict[str, dict[str, Any]] = {}
      super().__init__(oracle, **kwargs)

    def on_trial_end(self, trial):
      """keras-tuner's bookkeeping, then trials.jsonl and one line on `out`."""
      super().on_trial_end(trial)
      _write_trials(self, self.directory)
      if self.out is not None:
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.hyperparameters.values.items())
        score = trial.score
        result = f"validation -ELBO {score:.3f}" if score is not None else str(trial.status)
        print(f"trial {trial.trial_id}: {values}: {result}", file=self.out, flush=True)

    def run_trial(self, trial, *args, **kwargs):
      del args, kwargs
      config = trial_config(self.base, trial.hyperparameters.values)
      trial_dir = self.get_trial_dir(trial.trial_id)
      workdir = os.path.join(trial_dir, "run")
      record = {
        "trial": trial.trial_id,
        "values": dict(trial.hyperparameters.values),
        "workdir": workdir,
      }
      self.records[trial.trial_id] = record
      os.makedirs(trial_dir, exist_ok=True)
      try:
        with open(os.path.join(trial_dir, "progress.log"), "w") as out:
          rows = lifelong.run(config, workdir, overwrite=True, out=out)
      except lifelong.RunError as e:  # e.g. a non-finite loss: this trial failed.
        record["error"] = str(e)
        raise keras_tuner.errors.FailedTrialError(str(e)) from None
      except (config_lib.ConfigError, sources.DataError) as e:  # bad input: stop.
        raise keras_tuner.errors.FatalError(str(e)) from e
      except Exception as e:  # a bug: stop with its traceback, not a silent bad trial.
        raise keras_tuner.errors.FatalError(f"trial {trial.trial_id} crashed: {e!r}") from e
      record["best_validation_neg_elbo"] = [r.get("best_validation_neg_elbo") for r in rows]
      value = objective(rows)
      record[OBJECTIVE] = value
      if math.isnan(value):
        record["error"] = "an interval has no finite validation -ELBO"
        raise keras_tuner.errors.FailedTrialError(record["error"])
      return {OBJECTIVE: value}

  return LifelongTuner


def tune(
  base: config_lib.Config, workdir: str, *, max_trials: int, overwrite: bool = False, out=None
) -> config_lib.Config:
  """Searches `SPACE` around `base` with `max_trials` lifelong runs.

  Args:
    base: the configuration of every trial apart from the searched fields.
    workdir: where the search writes (see the module docstring).
    max_trials: number of trials (in all, counting those of an earlier search
      in the same workdir).
    overwrite: start afresh instead of continuing a search in `workdir`.
    out: text stream for one line per trial (None: silent).

  Returns:
    The best trial's Config (also written to workdir/best_config.json).

  Raises:
    TuneError: bad arguments, or no trial finished.
    config.ConfigError, data.sources.DataError: bad configuration or data.
  """
  if max_trials < 1:
    raise TuneError(f"max_trials must be at least 1, got {max_trials}")
  keras_tuner = _keras_tuner()

  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise TuneError(f"cannot write the workdir {workdir}: {e.strerror}") from None
  tuner = _tuner_class()(
    base,
    _oracle(keras_tuner, base, max_trials),
    out=out,
    directory=workdir,
    project_name=PROJECT,
    overwrite=overwrite,
  )
  try:
    tuner.search(verbose=0)
  except keras_tuner.errors.FatalError as e:
    cause = e.__cause__
    if isinstance(cause, (config_lib.ConfigError, sources.DataError)):
      raise cause from None
    raise
  finally:
    _write_trials(tuner, workdir)
  best = tuner.oracle.get_best_trials(1)
  if not best or best[0].score is None or not math.isfinite(best[0].score):
    raise TuneError(f"no trial finished; see {workdir}/trials.jsonl")
  config = trial_config(base, best[0].hyperparameters.values)
  artifacts.write_text(os.path.join(workdir, "best_config.json"), config.to_json() + "\n")
  if out is not None:
    print(
      f"best: trial {best[0].trial_id}, validation -ELBO {best[0].score:.3f}; "
      f"{os.path.join(workdir, 'best_config.json')}",
      file=out,
      flush=True,
    )
  return config


def _oracle(keras_tuner, base: config_lib.Config, max_trials: int):
  """The random search over `SPACE` (seeded by `base.seed`): failed trials never stop it."""
  return keras_tuner.oracles.RandomSearchOracle(
    objective=keras_tuner.Objective(OBJECTIVE, direction="min"),
    max_trials=max_trials,
    seed=base.seed,
    hyperparameters=hyperparameters(base),
    tune_new_entries=False,
    allow_new_entries=False,
    max_consecutive_failed_trials=max_trials + 1,
  )


def _write_trials(tuner, workdir: str) -> None:
  """workdir/trials.jsonl from the oracle's trials and the runs' records."""
  lines = []
  for trial_id, trial in sorted(tuner.oracle.trials.items()):
    record = dict(tuner.records.get(trial_id, {}))
    record.update(
      trial=trial_id,
      status=str(trial.status),
      values=dict(trial.hyperparameters.values),
      workdir=os.path.join(tuner.get_trial_dir(trial_id), "run"),
    )
    record[OBJECTIVE] = trial.score
    if trial.message and "error" not in record:
      record["error"] = trial.message.strip().splitlines()[-1]
    lines.append(record)
  text = "".join(json.dumps(_finite(r), sort_keys=True) + "\n" for r in lines)
  artifacts.write_text(os.path.join(workdir, "trials.jsonl"), text)


def _finite(value: Any) -> Any:
  """JSON-ready: NaN and inf become None, numpy scalars Python numbers."""
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  if hasattr(value, "item"):
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _fmt(value: Any) -> str:
  return f"{value:.4g}" if isinstance(value, float) else str(value)
