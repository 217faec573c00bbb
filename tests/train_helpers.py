"""Helpers of the tests that run bin/train in subprocesses: a tiny run, and the launcher.

Every bin/train start spends about 5 s importing TensorFlow; the tiny run
(tests/synthetic.py's stream, no real data, a 32-unit MLP, 10-step evaluations,
50 test examples per distribution) keeps what comes after it to a few seconds per interval. Its
uninterrupted --deterministic run (`reference_run`) is made once per test
session and shared by tests/test_resume.py and tests/test_determinism.py, also
across pytest-xdist workers.
"""

import contextlib
import dataclasses
import fcntl
import json
import os
import subprocess
import sys

from tests import paths, synthetic

TRAIN = os.path.join(paths.REPO, "bin", "train")
TINY = dict(
  dataset=synthetic.dataset(),
  order=[3, 7, 3],
  batch_size=32,
  hidden_units=32,
  continuous_dim=4,
  eval_every=10,
  max_steps_per_interval=30,
  patience=2,
  eval_examples=50,
  validation_synthetic_examples=50,
  seed=3,
  threads=1,
  checkpoint_every=10,
)
"""A tiny run: 3 intervals of 30 steps, a checkpoint at every evaluation (10 steps)."""
ROW_KEYS = ("interval", "distribution", "is_new", "num_categories", "steps")


def config_file(folder, **overrides) -> str:
  """Writes the tiny run's configuration (with `overrides`) as JSON; returns its path."""
  path = os.path.join(str(folder), "tiny.json")
  with open(path, "w") as f:
    json.dump({**TINY, **overrides}, f)
  return path


def _env() -> dict:
  pythonpath = os.pathsep.join(p for p in (paths.REPO, os.environ.get("PYTHONPATH")) if p)
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=pythonpath)


def killing(kill_at: str | None) -> list[str]:
  """The command prefix that runs a program under tests/faults.py's `kill_at` (if given)."""
  return [sys.executable, "-m", "tests.faults", kill_at] if kill_at else [sys.executable]


def train(*args, kill_at: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
  """Runs bin/train with `args` (killed at the point `kill_at` names, if given); waits."""
  return subprocess.run(
    [*killing(kill_at), TRAIN, *args],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=_env(),
  )


def start_train(*args, log_path: str) -> subprocess.Popen:
  """Starts bin/train in the background, its output going to `log_path`."""
  with open(log_path, "w") as log:  # The child keeps its own copy of the descriptor.
    return subprocess.Popen(
      [sys.executable, TRAIN, *args], stdout=log, stderr=subprocess.STDOUT, env=_env()
    )


def wait(proc: subprocess.Popen, timeout: float = 300) -> int:
  """Waits for a background run (kills it past `timeout`); its exit status."""
  try:
    return proc.wait(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
    raise


def metrics(workdir) -> list[dict]:
  """The rows of workdir/metrics.jsonl."""
  with open(os.path.join(str(workdir), "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


@contextlib.contextmanager
def _locked(path: str):
  with open(path, "w") as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def reference_run(tmp_path_factory) -> str:
  """The workdir of the tiny run, uninterrupted, with --deterministic (made once).

  Under pytest-xdist the workers share it through their common temporary
  folder, made by whichever asks first while the others wait on a lock.
  """
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = tmp_path_factory.getbasetemp().parent
  else:
    root = tmp_path_factory.getbasetemp()
  workdir, done = str(root / "reference"), str(root / "reference.ok")
  with _locked(str(root / "reference.lock")):
    if not os.path.exists(done):
      os.makedirs(str(root), exist_ok=True)
      result = train(
        f"--config_file={config_file(root)}",
        f"--workdir={workdir}",
        "--deterministic",
        "--overwrite",
      )
      assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
      open(done, "w").close()
  return workdir


# The child runs bin/TOOL as its __main__ and, however the tool exits, prints last on
# stdout whether TensorFlow was imported.
_REPORTING = (
  "import runpy, sys\n"
  "sys.argv = sys.argv[1:]\n"
  "try:\n"
  "  runpy.run_path(sys.argv[0], run_name='__main__')\n"
  "finally:\n"
  "  print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
)


@dataclasses.dataclass
class Exit:
  """How a tool ended: its exit status, its non-blank stderr lines, its stdout
  (without the report line) and whether it imported TensorFlow."""

  returncode: int
  lines: list[str]
  stdout: str
  tensorflow: bool


def run_tool(tool: str, *args: str, timeout: float = 120) -> Exit:
  """Runs bin/TOOL with `args` as a user would (sys.argv[0] is the launcher)."""
  done = subprocess.run(
    [sys.executable, "-c", _REPORTING, os.path.join(paths.REPO, "bin", tool), *args],
    capture_output=True,
    text=True,
    timeout=timeout,
    env=_env(),
  )
  *out, report = done.stdout.splitlines() or [""]
  assert report.startswith("tensorflow imported: "), done.stdout + done.stderr
  return Exit(
    done.returncode,
    [line for line in done.stderr.splitlines() if line.strip()],
    "\n".join(out),
    report.endswith("True"),
  )
