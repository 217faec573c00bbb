"""bin/tune as a user meets it: two trials of a tiny stream on real MNIST (digits 3, 7).

The search writes trials.jsonl and best_config.json; the objective of each
trial must be the mean of its run's per-interval best validation -ELBO, the
best config must be the best trial's values on top of the base configuration,
and bin/train's flag parsing must take it back.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from tests import paths, train_helpers
from tf_lifelong import config as config_lib
from tf_lifelong.experiments import tuning

TUNE = os.path.join(paths.REPO, "bin", "tune")
# test_lifelong's TINY settings, shorter still: two trials of two intervals.
BASE = config_lib.Config(
  dataset="mnist",
  data_dir=paths.DATA_ROOT,
  order=(3, 7),
  batch_size=32,
  hidden_units=64,
  continuous_dim=4,
  eval_every=20,
  max_steps_per_interval=40,
  patience=2,
  eval_examples=100,
  validation_synthetic_examples=100,
  seed=3,
)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _tune(*args, timeout=400):
  return subprocess.run(
    [sys.executable, TUNE, *args], capture_output=True, text=True, timeout=timeout, env=ENV
  )


@pytest.fixture(scope="module")
def search(tmp_path_factory):
  root = tmp_path_factory.mktemp("tune")
  base_file = root / "base.json"
  base_file.write_text(BASE.to_json())
  workdir = str(root / "w")
  result = _tune(f"--config_file={base_file}", "--max_trials=2", f"--workdir={workdir}")
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, "trials.jsonl")) as f:
    trials = [json.loads(line) for line in f]
  return workdir, trials, result.stdout


def test_each_trial_is_a_run_scored_on_validation(search):
  _, trials, stdout = search
  assert [t["trial"] for t in trials] == ["0", "1"]
  for trial in trials:
    assert trial["status"] == "COMPLETED", trial
    with open(os.path.join(trial["workdir"], "metrics.jsonl")) as f:
      rows = [json.loads(line) for line in f]
    assert [r["distribution"] for r in rows] == [3, 7]
    validation = [r["best_validation_neg_elbo"] for r in rows]
    assert trial["best_validation_neg_elbo"] == validation
    assert trial[tuning.OBJECTIVE] == pytest.approx(sum(validation) / len(validation))
    assert math.isfinite(trial[tuning.OBJECTIVE])
    with open(os.path.join(trial["workdir"], "config.json")) as f:
      run_config = config_lib.Config.from_json(f.read())
    assert run_config == tuning.trial_config(BASE, trial["values"])
    assert f"trial {trial['trial']}:" in stdout
  assert trials[0]["values"] != trials[1]["values"]


def test_best_config_is_the_best_trial_on_the_base(search):
  workdir, trials, stdout = search
  with open(os.path.join(workdir, "best_config.json")) as f:
    best = config_lib.Config.from_json(f.read())
  winner = min(trials, key=lambda t: t[tuning.OBJECTIVE])
  defaults = config_lib.Config()
  for name in tuning.SPACE:
    assert getattr(best, name) == pytest.approx(winner["values"][name]), name
    if name != "continuous_dim":  # the floats: a random draw never hits the default
      assert getattr(best, name) != getattr(defaults, name), name
      assert getattr(best, name) != getattr(BASE, name), name
  assert 2 <= best.continuous_dim <= 64
  assert 0.1 * BASE.tau0 <= best.tau_min <= BASE.tau0
  assert 1e-5 <= best.learning_rate <= 1e-2
  # Everything not searched is the base configuration.
  searched = set(tuning.SPACE)
  assert {k: v for k, v in best.to_dict().items() if k not in searched} == {
    k: v for k, v in BASE.to_dict().items() if k not in searched
  }
  assert "best: trial " + winner["trial"] in stdout


def test_bin_train_takes_the_best_config_back(search):
  workdir, _, _ = search
  path = os.path.join(workdir, "best_config.json")
  # bin/train's own flag parsing (a dry parse: no training).
  code = (
    "import sys; sys.path.insert(0, sys.argv[1]);"
    "from absl import flags; from tf_lifelong.cli import flags as f;"
    "f.define_run_flags(); flags.FLAGS(['train', '--config_file=' + sys.argv[2]]);"
    "print(f.config_from_flags().to_json())"
  )
  result = subprocess.run(
    [sys.executable, "-c", code, paths.REPO, path],
    capture_output=True,
    text=True,
    timeout=60,
    env=ENV,
  )
  assert result.returncode == 0, result.stderr
  with open(path) as f:
    assert config_lib.Config.from_json(result.stdout) == config_lib.Config.from_json(f.read())


def test_bad_max_trials_is_one_line(tmp_path):
  result = train_helpers.run_tool("tune", "--max_trials=0", f"--workdir={tmp_path}", timeout=60)
  assert (result.returncode, result.tensorflow) == (2, False)
  assert result.lines == [
    "tune: error: flag --max_trials=0: 0 is not a positive integer",
    "Try --help.",  # absl's second line for a flag it cannot parse
  ]


def test_missing_data_stops_the_search_with_one_line(tmp_path):
  result = _tune(
    "--dataset=mnist",
    f"--data_dir={tmp_path}",
    "--max_trials=3",
    f"--workdir={tmp_path}/w",
    timeout=120,
  )
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and lines[0].startswith("tune: error:") and "--data_dir" in lines[0]
  assert "trial 0:" not in result.stdout  # no trial is reported as run


def test_objective_is_the_mean_validation_and_needs_every_interval():
  rows = [
    {"best_validation_neg_elbo": 100.0, "test_neg_elbo_seen": 1.0},
    {"best_validation_neg_elbo": 120.0, "test_neg_elbo_seen": 1.0},
  ]
  assert tuning.objective(rows) == 110.0
  assert math.isnan(tuning.objective(rows + [{"best_validation_neg_elbo": None}]))
  assert math.isnan(tuning.objective([]))


def test_a_failed_trial_is_recorded_and_the_search_goes_on(tmp_path, monkeypatch):
  """lifelong.run stubbed: trial 0 diverges, trial 1 finishes (no training here)."""
  calls = []

  def fake_run(config, workdir, **kwargs):
    calls.append(config)
    if len(calls) == 1:
      raise tuning.lifelong.RunError("interval 0: the loss is not finite")
    return [{"best_validation_neg_elbo": 90.0}, {"best_validation_neg_elbo": 110.0}]

  monkeypatch.setattr(tuning.lifelong, "run", fake_run)
  best = tuning.tune(BASE, str(tmp_path), max_trials=2)
  with open(tmp_path / "trials.jsonl") as f:
    trials = [json.loads(line) for line in f]
  assert [t["status"] for t in trials] == ["FAILED", "COMPLETED"]
  assert "not finite" in trials[0]["error"] and trials[0][tuning.OBJECTIVE] is None
  assert trials[1][tuning.OBJECTIVE] == 100.0
  assert best == calls[1] == tuning.trial_config(BASE, trials[1]["values"])
  assert config_lib.Config.from_json((tmp_path / "best_config.json").read_text()) == best


def test_no_finished_trial_is_an_error(tmp_path, monkeypatch):
  def fake_run(config, workdir, **kwargs):
    raise tuning.lifelong.RunError("interval 0: the loss is not finite")

  monkeypatch.setattr(tuning.lifelong, "run", fake_run)
  with pytest.raises(tuning.TuneError, match="no trial finished"):
    tuning.tune(BASE, str(tmp_path), max_trials=2)
  assert not (tmp_path / "best_config.json").exists()


def test_a_search_continues_in_its_workdir(tmp_path, monkeypatch):
  monkeypatch.setattr(
    tuning.lifelong, "run", lambda config, workdir, **kwargs: [{"best_validation_neg_elbo": 1.0}]
  )
  tuning.tune(BASE, str(tmp_path), max_trials=1)
  tuning.tune(BASE, str(tmp_path), max_trials=2)
  with open(tmp_path / "trials.jsonl") as f:
    first = [json.loads(line)["trial"] for line in f]
  assert first == ["0", "1"]  # one more trial, not two
  tuning.tune(BASE, str(tmp_path), max_trials=1, overwrite=True)
  with open(tmp_path / "trials.jsonl") as f:
    assert [json.loads(line)["trial"] for line in f] == ["0"]
