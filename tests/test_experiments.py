"""Experiments: presets and variants, the runner's bookkeeping, the report on fake run
folders, and bin/experiment end to end on a tiny stream of real MNIST digits."""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests import paths, train_helpers
from tf_lifelong import config as config_lib
from tf_lifelong.experiments import extras, figures, presets, report, runner
from tf_lifelong.experiments import record as experiment_record
from tf_lifelong.state import artifacts
from tf_lifelong.train.context import RunError

EXPERIMENT = os.path.join(paths.REPO, "bin", "experiment")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
SUMMARY_KEYS = (
  "preset",
  "seeds",
  "final_test_neg_elbo",
  "final_consistency",
  "iwae_log_likelihood",
  "consistent_sampling",
  "commands",
  "wall_seconds",
)


# --------------------------------------------------------------- presets
def test_presets_set_the_stream_and_networks():
  c = presets.preset_config("rotated_mnist")
  assert (c.dataset, c.resolved_arch, c.num_intervals) == ("rotated_mnist", "mlp", 70)
  c = presets.preset_config("svhn_mnist", max_steps_per_interval=7)
  assert (c.resolved_arch, c.continuous_dim, c.max_steps_per_interval) == ("conv", 2, 7)
  assert presets.PRESETS["fashion_mnist_mnist"].cross_domain
  assert not presets.PRESETS["fashion_sequential"].cross_domain
  assert presets.preset_config("fashion_sequential").dataset == "fashion_mnist"
  for name in ("fashion_sequential", "mnist_sequential"):  # a longer budget than bin/train's
    assert presets.preset_config(name).max_steps_per_interval == 8000
    assert presets.preset_config(name, max_steps_per_interval=50).max_steps_per_interval == 50
  assert config_lib.Config().max_steps_per_interval == 4000
  paper = presets.preset_config("mnist_sequential", "paper")
  assert (paper.dataset, paper.learning_rate, paper.grow_init) == ("mnist", 1e-4, "glorot")
  assert (
    presets.preset_config("mnist_sequential").learning_rate == config_lib.Config().learning_rate
  )
  with pytest.raises(config_lib.ConfigError, match="unknown preset"):
    presets.preset_config("cifar")


def test_variants_change_only_the_objective_or_baseline():
  base = config_lib.Config(dataset="mnist", consistency_weight=2.0, mi_weight=0.5)
  v = {name: presets.variant_config(base, name) for name in presets.VARIANTS}
  assert (v["with_consistency"].consistency_weight, v["with_consistency"].mi_weight) == (2.0, 0.5)
  assert (v["without_consistency"].consistency_weight, v["without_consistency"].mi_weight) == (
    0.0,
    0.0,
  )
  assert v["batch_vae"].baseline == "batch_vae" and v["naive"].baseline == "naive"
  assert v["with_consistency"].baseline == "none"
  detect = v["detect"]
  assert (detect.boundaries, detect.baseline, detect.consistency_weight) == ("detect", "none", 2.0)
  assert all(v[n].boundaries == "given" for n in presets.PAPER_VARIANTS)
  assert presets.parse_variants("naive, batch_vae,naive") == ("naive", "batch_vae")
  with pytest.raises(config_lib.ConfigError, match="--variants"):
    presets.parse_variants("with_consistency,bogus")


# ---------------------------------------------------------------- runner
def test_plan_is_seed_major_and_specs_round_trip(tmp_path):
  base = config_lib.Config(dataset="mnist", order=(3, 7))
  specs = runner.plan(
    base,
    [4, 5],
    ["naive", "with_consistency"],
    str(tmp_path),
    extras.ExtrasOptions(iwae_examples=10),
    "cls",
  )
  assert [(s.seed, s.variant) for s in specs] == [
    (4, "naive"),
    (4, "with_consistency"),
    (5, "naive"),
    (5, "with_consistency"),
  ]
  assert specs[2].workdir == os.path.join(str(tmp_path), "runs", "naive", "seed-5")
  assert specs[2].config.seed == 5 and specs[2].config.baseline == "naive"
  assert runner.RunSpec.from_json(specs[2].to_json()) == specs[2]


def test_a_run_counts_as_finished_only_with_the_same_configuration(tmp_path):
  base = config_lib.Config(dataset="mnist", threads=1)
  spec = runner.plan(base, [0], ["naive"], str(tmp_path), extras.ExtrasOptions())[0]
  assert not runner.is_finished(spec)
  result = os.path.join(spec.workdir, runner.RESULT)
  artifacts.write_json(
    result, {"config": config_lib.Config(dataset="mnist", baseline="naive", threads=2).to_dict()}
  )
  assert runner.is_finished(spec)  # threads do not change the result
  older = config_lib.Config(dataset="mnist", baseline="naive").to_dict()
  del older["lr_plateau_decays"]  # A field added since: the older run had its default.
  artifacts.write_json(result, {"config": older})
  assert runner.is_finished(spec)
  artifacts.write_json(
    result,
    {
      "config": config_lib.Config(
        dataset="mnist", baseline="naive", max_steps_per_interval=9
      ).to_dict()
    },
  )
  assert not runner.is_finished(spec)


@pytest.mark.real_data
def test_a_killed_run_goes_on_from_its_checkpoint(tmp_path):
  base = config_lib.Config(
    dataset="mnist",
    data_dir=paths.DATA_ROOT,
    order=(3, 7),
    hidden_units=32,
    continuous_dim=2,
    batch_size=16,
    eval_every=10,
    max_steps_per_interval=40,
    checkpoint_every=10,
    eval_examples=50,
    validation_synthetic_examples=50,
    patience=10,
  )
  options = extras.ExtrasOptions(iwae_k=4, iwae_examples=20, sampling_n=4)
  spec = runner.plan(base, [0], ["with_consistency"], str(tmp_path), options)[0]
  path = tmp_path / "spec.json"
  path.write_text(spec.to_json())
  command = [sys.executable, "-m", "tf_lifelong.experiments.runner", str(path)]
  env = dict(ENV, PYTHONPATH=paths.REPO)
  killed = subprocess.run(
    [*train_helpers.killing("train:1:30"), *command[1:]],
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )
  assert killed.returncode == -9, killed.stderr[-2000:]
  assert not runner.is_finished(spec)
  first = (tmp_path / "runs" / "with_consistency" / "seed-0" / "metrics.csv").read_text()
  done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
  assert "resumed at step 20" in done.stdout and "afresh" not in done.stdout
  assert runner.is_finished(spec)
  result = runner.read_result(spec.workdir)
  assert result["intervals"] == 2 and result["extras"]["iwae_log_likelihood"] < 0
  assert 200 < result["peak_rss_mb"] < 20000  # TensorFlow's process, in MB
  # The first interval's row was kept, not computed again.
  after = (tmp_path / "runs" / "with_consistency" / "seed-0" / "metrics.csv").read_text()
  assert after.splitlines()[:2] == first.splitlines()[:2]


def test_a_run_folder_of_another_configuration_is_refused_not_started_afresh(tmp_path):
  """An unfinished run's folder that holds another configuration is never wiped by itself:
  one line (the RunError), its checkpoints and config.json left as they were."""
  base = config_lib.Config(dataset="mnist", order=(3, 7), max_steps_per_interval=40)
  spec = runner.plan(base, [0], ["naive"], str(tmp_path), None)[0]
  other = dataclasses.replace(spec.config, max_steps_per_interval=9)
  artifacts.write_text(os.path.join(spec.workdir, "config.json"), other.to_json() + "\n")
  marker = os.path.join(spec.workdir, "checkpoints", "latest.json")
  artifacts.write_json(marker, {"interval": 0})
  with pytest.raises(RunError, match="holds a run with another configuration") as e:
    runner.run_one(spec, out=open(os.devnull, "w"))
  assert "\n" not in str(e.value)
  assert os.path.exists(marker)
  stored = json.loads(open(os.path.join(spec.workdir, "config.json")).read())
  assert stored["max_steps_per_interval"] == 9


def test_the_runner_keeps_unfinished_runs_for_resuming(tmp_path, monkeypatch):
  # bin/experiment run again after a kill must hand unfinished workdirs (their
  # checkpoints) to the runs, not delete them.
  base = config_lib.Config(dataset="mnist", order=(3, 7), max_steps_per_interval=40)
  output = str(tmp_path)
  specs = runner.plan(base, [0], ["with_consistency", "without_consistency"], output, None)
  finished, unfinished = specs
  artifacts.write_json(
    os.path.join(finished.workdir, runner.RESULT),
    {"config": finished.config.to_dict(), "extras": {}, "final": {}},
  )
  marker = os.path.join(unfinished.workdir, "checkpoints", "latest.json")
  artifacts.write_json(marker, {"interval": 0})
  handed = []
  monkeypatch.setattr(runner, "ensure_classifier", lambda *a, **k: None)
  monkeypatch.setattr(runner, "_run_sequential", lambda pending, out: handed.extend(pending) or [])
  monkeypatch.setattr(report, "build_report", lambda out: {})
  runner.run_experiment(
    "mnist_sequential",
    base,
    seeds=[0],
    variants=["with_consistency", "without_consistency"],
    output=output,
    out=open(os.devnull, "w"),
  )
  assert [s.variant for s in handed] == ["without_consistency"]
  assert os.path.exists(marker)


# ---------------------------------------------------------------- report
def test_mean_std_over_curves_of_unequal_length():
  mean, std = figures.mean_std([[1.0, 2.0, None], [3.0], [5.0, 4.0]])
  np.testing.assert_allclose(mean, [3.0, 3.0, np.nan])
  np.testing.assert_allclose(std, [np.sqrt(8 / 3), 1.0, np.nan])


def _fake_run(output, variant, seed, finals, consistency=0.9):
  """A finished run folder with len(finals) intervals."""
  from tf_lifelong.monitor import summaries

  workdir = runner.run_dir(output, variant, seed)
  rows = [
    {
      "interval": i,
      "test_neg_elbo_seen": v - 1,
      "test_neg_elbo_full": v,
      "consistency": None if i == 0 else consistency,
      "grad_norms": [3.0, 2.0, 1.5],
      "real_examples": 100,
      "synthetic_examples": 50 * i,
    }
    for i, v in enumerate(finals)
  ]
  artifacts.write_metrics(workdir, rows)
  learned = list(range(len(finals)))
  matrix = [[finals[i] + j for j in range(len(finals))] for i in range(len(finals))]
  artifacts.write_json(
    os.path.join(workdir, "neg_elbo_matrix.json"),
    {"distribution_ids": learned, "learned": learned, "rows": matrix},
  )
  grid = summaries.image_grid(np.full((2, 3, 4, 4, 1), 0.5))
  summaries.write_png(os.path.join(workdir, "samples", f"interval-{len(finals) - 1:03d}.png"), grid)
  summaries.write_png(os.path.join(workdir, "extras", "reconstructions.png"), grid)
  sampling = {
    "mean_purity": 0.5 + 0.1 * seed,
    "distinct_majority_classes": 2 + seed,
    "classes_with_share": 3,
    "min_share": 0.1,
    "num_components": 3,
    "num_classes": 3,
    "classifier_test_accuracy": 0.97,
  }
  artifacts.write_json(
    os.path.join(workdir, runner.RESULT),
    {
      "variant": variant,
      "seed": seed,
      "config": {},
      "wall_seconds": 10.0 + seed,
      "command": f"bin/train --config_file={workdir}/run_config.json",
      "extras": {
        "iwae_log_likelihood": -finals[-1] + 5,
        "iwae_k": 100,
        "iwae_examples": 30,
        "consistent_sampling": sampling,
        "pictures": {"reconstructions": "extras/reconstructions.png"},
      },
    },
  )


@pytest.fixture
def fake_experiment(tmp_path):
  output = str(tmp_path)
  artifacts.write_json(
    os.path.join(output, runner.EXPERIMENT),
    {
      "preset": "mnist_sequential",
      "seeds": [0, 1],
      "variants": list(presets.PAPER_VARIANTS),
      "invocations": [
        {"command": "bin/experiment --preset=mnist_sequential", "wall_seconds": 12.5},
        {"command": "bin/experiment --preset=mnist_sequential", "wall_seconds": 7.5},
      ],
    },
  )
  _fake_run(output, "with_consistency", 0, [100.0, 110.0, 120.0])
  _fake_run(output, "with_consistency", 1, [102.0, 112.0, 130.0], consistency=0.7)
  _fake_run(output, "without_consistency", 0, [100.0, 130.0, 150.0], consistency=0.3)
  _fake_run(output, "batch_vae", 0, [90.0])
  _fake_run(output, "batch_vae", 1, [94.0])
  return output  # naive is missing, and without_consistency's seed 1


def test_report_on_fake_runs(fake_experiment):
  s = report.build_report(fake_experiment)
  for key in SUMMARY_KEYS:
    assert key in s, key
  assert s["missing_runs"] == ["without_consistency/seed-1", "naive/seed-0", "naive/seed-1"]
  assert s["final_test_neg_elbo"]["with_consistency"]["mean"] == pytest.approx(125.0)
  assert s["final_test_neg_elbo"]["with_consistency"]["std"] == pytest.approx(5.0)
  assert s["final_test_neg_elbo_seen"]["with_consistency"]["mean"] == pytest.approx(124.0)
  assert s["final_test_neg_elbo"]["batch_vae"] == {
    "mean": 92.0,
    "std": 2.0,
    "n": 2,
    "values": [90.0, 94.0],
  }
  assert s["final_test_neg_elbo"]["naive"]["mean"] is None
  assert s["final_consistency"]["with_consistency"]["mean"] == pytest.approx(0.8)
  assert s["final_consistency"]["batch_vae"]["mean"] is None  # one interval: no teacher
  assert s["iwae_log_likelihood"]["with_consistency"]["mean"] == pytest.approx(-120.0)
  sampling = s["consistent_sampling"]["with_consistency"]
  assert sampling["mean_purity"]["mean"] == pytest.approx(0.55)
  assert sampling["distinct_majority_classes"]["values"] == [2, 3]
  assert s["classifier_test_accuracy"] == 0.97
  # R[i][j] = finals[i] + j: distribution 0 went from 100 to 120 (seed 0).
  assert s["backward_transfer"]["with_consistency"]["values"][0] == pytest.approx(-15.0)
  assert s["wall_seconds"] == 20.0
  assert len(s["commands"]["experiment"]) == 2 and len(s["commands"]["runs"]) == 5
  for name in (
    "neg_elbo_seen",
    "neg_elbo_full",
    "consistency",
    "grad_norms",
    "examples",
    "neg_elbo_matrix_with_consistency",
    "samples_with_consistency",
    "samples_without_consistency",
    "reconstructions_batch_vae",
  ):
    assert os.path.getsize(os.path.join(fake_experiment, s["figures"][name])) > 0, name
  with open(os.path.join(fake_experiment, "summary.json")) as f:
    assert json.load(f)["final_consistency"]["batch_vae"]["mean"] is None  # strict JSON
  text = open(os.path.join(fake_experiment, "report.md")).read()
  assert "125.00 +- 5.00" in text and "figures/neg_elbo_full.png" in text
  assert "naive/seed-0" in text


# ------------------------------------------------------------ end to end
def _experiment(*args, timeout=400):
  return subprocess.run(
    [sys.executable, EXPERIMENT, *args], capture_output=True, text=True, timeout=timeout, env=ENV
  )


def test_bad_flags_are_one_line(tmp_path):
  result = _experiment("--preset=cifar", f"--output={tmp_path}")
  assert result.returncode == 2 and "preset" in result.stderr and "Traceback" not in result.stderr
  result = _experiment("--preset=mnist_sequential", f"--output={tmp_path}", "--variants=x,naive")
  assert result.returncode == 2 and "variants" in result.stderr and "naive" in result.stderr
  assert "Traceback" not in result.stderr
  (tmp_path / "experiment.json").write_text('{"preset": "fashion_sequential"}')
  result = _experiment(
    "--preset=mnist_sequential", f"--output={tmp_path}", f"--data_dir={paths.DATA_ROOT}"
  )
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert result.stderr.strip() == (
    f"experiment: error: {tmp_path} holds the experiment "
    "'fashion_sequential', not 'mnist_sequential'; choose "
    "another --output"
  )


@pytest.mark.real_data
def test_experiment_end_to_end(tmp_path):
  tiny = config_lib.Config(
    dataset="mnist",
    hidden_units=64,
    continuous_dim=2,
    batch_size=32,
    patience=2,
    validation_synthetic_examples=100,
  )
  (tmp_path / "tiny.json").write_text(tiny.to_json())
  output = str(tmp_path / "out")
  args = [
    "--preset=mnist_sequential",
    f"--config_file={tmp_path / 'tiny.json'}",
    f"--data_dir={paths.DATA_ROOT}",
    "--order=3,7",
    "--max_steps_per_interval=40",
    "--eval_every=20",
    "--eval_examples=100",
    "--seeds=1",
    "--variants=with_consistency,without_consistency",
    "--parallel=2",
    "--iwae_k=10",
    "--iwae_examples=60",
    "--sampling_n=20",
    "--classifier_epochs=1",
    "--classifier_max_per_class=300",
    f"--output={output}",
  ]
  result = _experiment(*args)
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  with open(os.path.join(output, "summary.json")) as f:
    s = json.load(f)
  for key in SUMMARY_KEYS:
    assert key in s, key
  assert s["preset"] == "mnist_sequential" and s["seeds"] == [0] and not s["missing_runs"]
  for variant in ("with_consistency", "without_consistency"):
    assert s["final_test_neg_elbo"][variant]["n"] == 1
    assert s["iwae_log_likelihood"][variant]["examples"] == 60
    assert s["consistent_sampling"][variant]["num_components"] == 2
    assert os.path.exists(os.path.join(output, "figures", f"interpolation_zd1_{variant}.png"))
  assert s["final_consistency"]["with_consistency"]["mean"] is not None
  for name in (
    "neg_elbo_seen",
    "neg_elbo_full",
    "consistency",
    "grad_norms",
    "examples",
    "samples_with_consistency",
    "samples_without_consistency",
    "neg_elbo_matrix_with_consistency",
    "reconstructions_with_consistency",
  ):
    assert os.path.exists(os.path.join(output, s["figures"][name])), name
  run = runner.run_dir(output, "without_consistency", 0)
  with open(os.path.join(run, runner.RUN_CONFIG)) as f:
    assert json.load(f)["consistency_weight"] == 0.0
  # Again: both runs are finished, only the report is rebuilt.
  again = _experiment(*args)
  assert again.returncode == 0 and "2 already finished" in again.stdout, again.stderr[-2000:]


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_run_folder_another_writer_holds_is_refused_with_nothing_written(tmp_path, parallel):
  """The folder of a run is locked before anything is written into it: a second writer
  (here the test, as a live bin/train or another invocation's run would) keeps it."""
  from tf_lifelong.state import lock

  output = str(tmp_path / "out")
  held_dir = runner.run_dir(output, "with_consistency", 3)
  config = train_helpers.config_file(tmp_path, order=[3, 7])  # The synthetic stream, seed 3.
  args = [f"--config_file={config}", "--variants=with_consistency", f"--parallel={parallel}"]
  with lock.acquire(held_dir):
    result = _experiment("--preset=mnist_sequential", f"--output={output}", *args)
    assert os.listdir(held_dir) == [lock.LOCK]  # Nothing written by the experiment.
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert result.returncode == 2 and len(lines) == 1, result.stdout[-2000:] + result.stderr
  assert lines[0].startswith(
    f"experiment: error: runs failed: with_consistency seed 3 ({held_dir} is locked by "
    f"another writer (host {socket.gethostname()}, pid {os.getpid()}, since "
  ), lines[0]
  assert lines[0].endswith(
    f"the report of the others is in {output}; run again to retry the failed ones"
  )
  assert not os.path.exists(os.path.join(held_dir, lock.LOCK))  # Released by the test.


def test_a_parallel_run_holds_its_folder_until_its_child_ends(tmp_path):
  """--parallel: the parent takes the run folder's lock and hands it to the child (which
  does not take it again); a second writer meanwhile is refused, naming the parent."""
  from tf_lifelong.state import lock

  output = str(tmp_path / "out")
  run = runner.run_dir(output, "with_consistency", 3)
  config = train_helpers.config_file(tmp_path, order=[3, 7])  # The synthetic stream, seed 3.
  extras_args = ["--iwae_k=2", "--iwae_examples=20", "--sampling_n=4"]
  command = [sys.executable, EXPERIMENT, "--preset=mnist_sequential", f"--output={output}"]
  command += [f"--config_file={config}", "--variants=with_consistency", "--parallel=2"]
  with open(tmp_path / "experiment.log", "w") as log:
    parent = subprocess.Popen([*command, *extras_args], stdout=log, stderr=log, env=ENV)
  try:
    while not os.path.exists(os.path.join(run, "metrics.jsonl")):  # The child is learning.
      assert parent.poll() is None, (tmp_path / "experiment.log").read_text()[-3000:]
      time.sleep(0.2)
    with pytest.raises(
      lock.LockError, match=rf"locked by another writer \(host .*, pid {parent.pid}, "
    ):
      lock.acquire(run)
  finally:
    status = parent.wait(timeout=900)
  assert status == 0, (tmp_path / "experiment.log").read_text()[-3000:]
  assert runner.read_result(run)["intervals"] == 2
  assert not os.path.exists(os.path.join(run, lock.LOCK))  # Freed once the child ended.


def test_invocations_at_the_same_time_each_keep_their_record(tmp_path):
  output = str(tmp_path / "out")
  base = config_lib.Config(dataset="mnist")
  runner._start_record(output, "mnist_sequential", base, [0], ["naive"], extras.ExtrasOptions())

  def invoke(k):
    for i in range(25):
      experiment_record.add_invocation(output, {"command": f"{k}-{i}"})

  threads = [threading.Thread(target=invoke, args=(k,)) for k in range(4)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  with open(os.path.join(output, runner.EXPERIMENT)) as f:
    record = json.load(f)
  commands = sorted(e["command"] for e in record["invocations"])
  assert commands == sorted(f"{k}-{i}" for k in range(4) for i in range(25))
  assert record["preset"] == "mnist_sequential"
  with pytest.raises(runner.ExperimentError, match="holds the experiment 'mnist_sequential'"):
    runner._start_record(output, "rotated_mnist", base, [0], ["naive"], extras.ExtrasOptions())
