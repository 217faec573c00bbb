"""Runs an experiment: every variant for every seed, then the report.

    summary = run_experiment("mnist_sequential", base_config, seeds=[0, 1],
                             variants=VARIANTS, output="results/mnist")

OUT's layout: layout.py; everything heavy lies under `OUT/runs/`. A run whose
`result.json` (written last) holds the same configuration is skipped; an unfinished one
goes on from its last checkpoint (lifelong.run's resume), so a killed experiment loses at
most `checkpoint_every` steps per run. With `parallel` > 1 runs go to that many
subprocesses (`python -m tf_lifelong.experiments.runner SPEC`, this same tf_lifelong),
each logging to its `log.txt`. Each run holds its folder's lock (state/lock.py) from
before anything is written there to its end (a subprocess: its parent's, handed down): a
folder another writer holds is refused in one line naming the holder, nothing written,
and counts as a failed run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from tf_lifelong import config as config_lib
from tf_lifelong import installation
from tf_lifelong.experiments import presets, record, report
from tf_lifelong.experiments.extras import ExtrasOptions, FinalExtras
from tf_lifelong.experiments.layout import (
  CLASSIFIER,
  EXPERIMENT,  # noqa: F401 (the layout's names are importable from here too)
  LOG,
  RESULT,
  RUN_CONFIG,
  SPEC,
  read_result,
  run_dir,
)
from tf_lifelong.state import artifacts

IGNORED_FIELDS = config_lib.fields_with_role("runtime")
"""Config fields that do not change a run's result (a finished run is kept)."""
FINAL_KEYS = (
  "test_neg_elbo_seen",
  "test_neg_elbo_full",
  "consistency",
  "best_validation_neg_elbo",
  "num_categories",
)


class ExperimentError(Exception):
  """The experiment cannot go on, or some runs failed; the message says which."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of an experiment: a variant, a seed, where, and its configuration."""

  variant: str
  seed: int
  workdir: str
  config: config_lib.Config
  options: ExtrasOptions
  classifier_dir: str | None = None

  def to_json(self) -> str:
    values = {**dataclasses.asdict(self), "config": self.config.to_dict()}
    return json.dumps({**values, "options": dataclasses.asdict(self.options)}, indent=2)

  @classmethod
  def from_json(cls, text: str) -> RunSpec:
    v = json.loads(text)
    config, options = config_lib.Config.from_dict(v["config"]), ExtrasOptions(**v["options"])
    return cls(v["variant"], v["seed"], v["workdir"], config, options, v["classifier_dir"])


def plan(
  base: config_lib.Config,
  seeds: Sequence[int],
  variants: Sequence[str],
  output: str,
  options: ExtrasOptions,
  classifier_dir: str | None = None,
) -> list[RunSpec]:
  """The runs, seed-major: for seed in seeds, for variant in variants."""
  specs = []
  for s in seeds:
    for v in variants:
      config = presets.variant_config(dataclasses.replace(base, seed=s), v)
      specs.append(RunSpec(v, s, run_dir(output, v, s), config, options, classifier_dir))
  return specs


def _comparable(config: dict) -> dict:
  """The fields that decide a run's result; a field an older result lacks had its default."""
  full = {**json.loads(config_lib.Config().to_json()), **config}
  return {k: v for k, v in full.items() if k not in IGNORED_FIELDS}


def is_finished(spec: RunSpec) -> bool:
  """Whether `spec.workdir` holds a finished run of the same configuration."""
  result = read_result(spec.workdir)
  return result is not None and _comparable(result["config"]) == _comparable(
    json.loads(spec.config.to_json())
  )


TRAIN_TOOL = "tf-lifelong-train"
"""The train tool as `pip install` puts it on PATH (bin/train in a checkout is the same)."""


def train_command(spec: RunSpec) -> str:
  """The command line that repeats this run (into a new workdir) with the installed train tool."""
  return shlex.join([TRAIN_TOOL, f"--config_file={os.path.join(spec.workdir, RUN_CONFIG)}"])


def run_one(spec: RunSpec, out=None, held=None) -> dict:
  """Runs `spec` with lifelong.run and its end-of-run extras; writes result.json. The run
  folder's lock is held throughout (`held`: taken by the caller, else here by `run_lock`);
  a RunError names the holder if another writer has it."""
  taken = run_lock(spec, out) if held is None else None
  try:
    return _run_held(spec, held or taken, out)
  finally:
    if taken is not None:
      taken.release()


def run_lock(spec: RunSpec, out=None):
  """The run folder's lock, taken before anything is written there (`release()` frees it);
  a RunError naming the holder if another writer has it. None under multi_worker, where
  lifelong.run's chief takes it."""
  from tf_lifelong.train import ownership  # noqa: PLC0415

  if spec.config.strategy == "multi_worker":
    return None
  held = ownership.take_lock(spec.workdir)
  if held.taken_over:
    _say(out, held.taken_over)
  return held


def _run_held(spec: RunSpec, held, out) -> dict:
  """`run_one` with the folder's lock held (`held`; None: lifelong.run takes it)."""
  from tf_lifelong.benchmarks import measuring  # noqa: PLC0415
  from tf_lifelong.evaluation import sampling_metrics  # noqa: PLC0415
  from tf_lifelong.train import lifelong  # noqa: PLC0415

  start = time.monotonic()
  artifacts.write_text(os.path.join(spec.workdir, RUN_CONFIG), spec.config.to_json() + "\n")

  def classifier():
    if spec.classifier_dir is None:
      return None
    return sampling_metrics.Classifier.load(spec.classifier_dir)

  hook = FinalExtras(spec.options, classifier)
  run = dict(hooks=[hook], out=out, lock=held)
  # An interrupted run goes on from its last sound checkpoint; a folder that holds another
  # configuration, or no sound checkpoint, is refused in one line (lifelong.run's RunError).
  rows = lifelong.run(spec.config, spec.workdir, **run)
  if hook.result is None:  # killed after its last interval: the extras need a full run
    _say(out, "the run ended before its extras; starting afresh")
    rows = lifelong.run(spec.config, spec.workdir, overwrite=True, **run)
  result = {
    "variant": spec.variant,
    "seed": spec.seed,
    "config": spec.config.to_dict(),
    "intervals": len(rows),
    "final": {k: rows[-1].get(k) for k in FINAL_KEYS},
    "extras": hook.result,
    "wall_seconds": round(time.monotonic() - start, 1),
    "peak_rss_mb": round(measuring.peak_rss_mb(), 1),  # its own with --parallel > 1
    "command": train_command(spec),
  }
  artifacts.write_json(os.path.join(spec.workdir, RESULT), result)
  return result


def ensure_classifier(
  base: config_lib.Config, output: str, options: ExtrasOptions, out=None
) -> str:
  """The sampling classifier over all of the stream's distributions in OUT/runs/classifier:
  trained once (classifier_cache.py: also kept in the user cache, where the runs'
  per-interval scores find it when `options` train it as they do; otherwise the
  default one is put there too)."""
  from tf_lifelong.data import streams  # noqa: PLC0415
  from tf_lifelong.evaluation import classifier_cache  # noqa: PLC0415

  folder = os.path.join(output, CLASSIFIER)
  stream = streams.build_stream(base)
  classifier = classifier_cache.stream_classifier(
    stream,
    folder=folder,
    epochs=options.classifier_epochs,
    max_per_class=options.classifier_max_per_class,
  )
  if classifier.meta["source"] == "trained":
    took = f"{len(classifier.class_ids)} distributions in {classifier.meta['train_seconds']:.1f} s"
    _say(out, f"trained the sampling classifier on {took}")
  _say(out, f"classifier test accuracy {classifier.test_accuracy:.4f}")
  if classifier.meta["key"] != classifier_cache.stream_key(stream, classifier_cache.SETTINGS):
    # The runs' per-interval scores use the default classifier: trained here once, into
    # the user cache, rather than by every run at once.
    classifier_cache.stream_classifier(stream)
  return folder


def run_experiment(
  preset: str,
  base: config_lib.Config,
  *,
  seeds: Sequence[int],
  variants: Sequence[str],
  output: str,
  options: ExtrasOptions | None = None,
  parallel: int = 1,
  command: str | None = None,
  out=None,
) -> dict:
  """Runs the experiment's unfinished runs, then builds the report.

  Args:
    preset: the preset's name (recorded; `base` already holds its fields).
    base: the configuration every run starts from (variants change it, seeds set `seed`).
    seeds, variants: run seeds; names from presets.VARIANTS.
    output: the experiment folder OUT (see the module docstring).
    options: the end-of-run extras' budgets (default ExtrasOptions()).
    parallel: runs at once; > 1 uses subprocesses (give them threads=1 on 2 cores).
    command, out: the command line to record (sys.argv); progress stream (sys.stdout).

  Returns the summary (as OUT/summary.json). Raises ExperimentError: OUT holds another
  preset, or some runs failed (the report is built from the others first).
  """
  out = out or sys.stdout
  options = options or ExtrasOptions()
  start = time.monotonic()
  command = command or shlex.join(sys.argv)
  pending = _pending_runs(preset, base, seeds, variants, output, options, out)
  # Unfinished runs keep their workdirs: run_one goes on from their checkpoints.
  if parallel > 1:
    failed = _run_parallel(pending, parallel, out)
  else:
    failed = _run_sequential(pending, out)
  wall = round(time.monotonic() - start, 1)
  entry = {"command": command, "runs": len(pending), "failed": len(failed), "wall_seconds": wall}
  record.add_invocation(output, entry)
  summary = report.build_report(output)
  if failed:
    raise ExperimentError(
      "runs failed: " + "; ".join(failed) + f"; the report of the others "
      f"is in {output}; run again to retry the failed ones"
    )
  return summary


def _pending_runs(preset, base, seeds, variants, output, options, out) -> list[RunSpec]:
  """Records the experiment, sets up TensorFlow, trains the classifier: the runs left to do."""
  from tf_lifelong import runtime  # noqa: PLC0415

  _start_record(output, preset, base, seeds, variants, options)
  runtime.configure(base)
  classifier_dir = ensure_classifier(base, output, options, out)
  specs = plan(base, seeds, variants, output, options, classifier_dir)
  pending = [s for s in specs if not is_finished(s)]
  _say(out, f"{preset}: {len(specs)} runs, {len(specs) - len(pending)} already finished")
  return pending


def _start_record(output, preset, base, seeds, variants, options) -> None:
  held = record.start(output, preset, base, seeds, variants, options)
  if held != preset:
    raise ExperimentError(
      f"{output} holds the experiment {held!r}, not {preset!r}; choose another --output"
    )


def _run_sequential(specs: Sequence[RunSpec], out) -> list[str]:
  import keras  # noqa: PLC0415

  from tf_lifelong.train import lifelong  # noqa: PLC0415

  failed = []
  for k, spec in enumerate(specs):
    _say(out, f"[{k + 1}/{len(specs)}] {spec.variant}, seed {spec.seed}: {spec.workdir}")
    keras.backend.clear_session()
    try:
      result = run_one(spec, out)
    except lifelong.RunError as e:
      failed.append(f"{spec.variant} seed {spec.seed} ({e})")
      continue
    _say(out, _done_line(spec, result))
  return failed


def _run_parallel(specs: Sequence[RunSpec], parallel: int, out) -> list[str]:
  from tf_lifelong.train.context import RunError  # noqa: PLC0415

  env = installation.child_env()  # The child imports this tf_lifelong, checkout or installed.
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  queue, running, failed = list(specs), {}, []
  main = threading.current_thread() is threading.main_thread()
  previous = signal.signal(signal.SIGTERM, _interrupted) if main else None
  try:
    while queue or running:
      while queue and len(running) < parallel:
        spec = queue.pop(0)
        try:
          running[_launch(spec, env, out)] = spec
        except RunError as e:  # Another writer holds its folder: nothing was written.
          failed.append(f"{spec.variant} seed {spec.seed} ({e})")
      time.sleep(1.0)
      for process in [p for p in running if p.poll() is not None]:
        spec = running.pop(process)
        process.held and process.held.release()
        result = read_result(spec.workdir)
        if process.returncode != 0 or result is None:
          log = os.path.join(spec.workdir, LOG)
          failed.append(f"{spec.variant} seed {spec.seed} (exit {process.returncode}, see {log})")
        else:
          _say(out, _done_line(spec, result))
  finally:
    if main:
      signal.signal(signal.SIGTERM, previous)
    for process in running:
      process.terminate()
      process.wait()
      process.held and process.held.release()
  return failed


def _interrupted(signum, frame):
  """SIGTERM to the parent ends its runs too (they restart when the experiment does)."""
  del signum, frame
  raise KeyboardInterrupt


HELD = "--held"  # The worker's flag: its parent holds the run folder's lock for it.


def _launch(spec: RunSpec, env: dict, out) -> subprocess.Popen:
  """Starts the run in a child process, its folder's lock taken here before spec.json and
  log.txt are written (RunError if another writer holds it) and held until the child ends
  (`process.held`); a local lock's open file goes to the child too: it outlives us."""
  held = run_lock(spec, out)
  path, log_path = os.path.join(spec.workdir, SPEC), os.path.join(spec.workdir, LOG)
  try:
    artifacts.write_text(path, spec.to_json() + "\n")
    with open(log_path, "a") as log:  # a resumed run adds to it
      process = subprocess.Popen(
        [sys.executable, "-m", "tf_lifelong.experiments.runner", path, *([HELD] if held else [])],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        pass_fds=(held.fd,) if held and held.fd is not None else (),
      )
  except BaseException:
    held and held.release()
    raise
  _say(out, f"started {spec.variant}, seed {spec.seed}: log in {log_path}")
  process.held = held
  return process


def _done_line(spec: RunSpec, result: dict) -> str:
  final, iwae = result["final"], result["extras"]["iwae_log_likelihood"]
  return (
    f"done {spec.variant}, seed {spec.seed} in {result['wall_seconds']:.0f} s: "
    f"test -ELBO {final['test_neg_elbo_full']:.2f}, IWAE {iwae:.2f}"
  )


def _say(out, text: str) -> None:
  if out is not None:
    print(text, file=out, flush=True)


def worker_main(argv: Sequence[str]) -> int:
  """`python -m tf_lifelong.experiments.runner SPEC [--held]`: one run in its own process,
  which takes the run folder's lock unless `--held` says that its parent holds it."""
  if len(argv) not in (2, 3) or argv[2:] not in ([], [HELD]):
    print(f"usage: python -m tf_lifelong.experiments.runner SPEC.json [{HELD}]", file=sys.stderr)
    return 2
  with open(argv[1]) as f:
    spec = RunSpec.from_json(f.read())
  run_one(spec, out=sys.stdout, held=HELD if argv[2:] else None)
  return 0


if __name__ == "__main__":
  sys.exit(worker_main(sys.argv))
