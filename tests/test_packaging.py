"""The package as `pip install .` leaves it: console scripts that work from any folder.

tf_lifelong is installed once, non-editably and offline, from a copy of the
checkout into a target folder (`pip install --no-deps --no-build-isolation
--check-build-dependencies --no-index --target T`: the stack and the build's
setuptools, pyproject.toml's, come from this interpreter's environment).
Each console script in T/bin then runs from a folder outside the checkout with
PYTHONPATH=T; `tf-lifelong-train` learns a tiny `folder:` dataset there.
"""

import configparser
import csv
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests import paths

TOOLS = {
  "train": "--dataset",
  "export": "--checkpoint",
  "tune": "--max_trials",
  "experiment": "--preset",
  "benchmark": "--devices",
}
"""Tool -> a flag of its own that its --help lists."""
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "tf_lifelong")


def _copy_sources(dest: str) -> None:
  for name in SOURCES:
    src = os.path.join(paths.REPO, name)
    if os.path.isdir(src):
      shutil.copytree(src, os.path.join(dest, name), ignore=shutil.ignore_patterns("__pycache__"))
    else:
      shutil.copy(src, dest)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(target folder, a working folder outside the checkout, the environment to run in,
  pip's output)."""
  root = tmp_path_factory.mktemp("packaging")
  src, target, outside = root / "src", root / "target", root / "elsewhere"
  src.mkdir()
  outside.mkdir()
  _copy_sources(str(src))
  env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("PYTHONPATH", None)
  done = subprocess.run(
    [
      sys.executable,
      "-m",
      "pip",
      "install",
      "--no-deps",
      "--no-build-isolation",
      "--check-build-dependencies",
      "--no-index",
      "--no-cache-dir",
      "--target",
      str(target),
      str(src),
    ],
    capture_output=True,
    text=True,
    timeout=300,
    cwd=str(root),
    env=env,
  )
  assert done.returncode == 0, done.stdout + done.stderr
  env["PYTHONPATH"] = str(target)
  return target, outside, env, done.stdout + done.stderr


def _run(installed, *args, timeout=120):
  _, outside, env, _ = installed
  return subprocess.run(
    list(args), capture_output=True, text=True, timeout=timeout, cwd=str(outside), env=env
  )


def _script(installed, tool: str) -> str:
  return str(installed[0] / "bin" / f"tf-lifelong-{tool}")


def test_every_tool_has_a_console_script(installed):
  target = installed[0]
  for tool in TOOLS:
    path = _script(installed, tool)
    assert os.path.isfile(path) and os.access(path, os.X_OK), path
  (info,) = target.glob("tf_lifelong-*.dist-info")
  entry_points = configparser.ConfigParser()
  entry_points.read(info / "entry_points.txt")
  assert dict(entry_points["console_scripts"]) == {
    f"tf-lifelong-{tool}": f"tf_lifelong.cli.{tool}:entry" for tool in TOOLS
  }
  assert (info / "LICENSE").is_file() or (info / "licenses" / "LICENSE").is_file()


def test_a_clean_install_prints_no_warning(installed):
  """A PEP 517 build (pyproject.toml) with an SPDX license: no deprecation walls."""
  output = installed[3]
  assert "Successfully installed tf_lifelong" in output.replace("tf-lifelong", "tf_lifelong")
  for word in ("warning", "deprecat", "!!"):
    assert word not in output.lower(), output
  (info,) = installed[0].glob("tf_lifelong-*.dist-info")
  metadata = (info / "METADATA").read_text().splitlines()
  assert "License-Expression: Apache-2.0" in metadata
  assert not [line for line in metadata if line.startswith("Classifier: License ::")]


def test_the_installed_package_is_the_one_imported(installed):
  done = _run(installed, sys.executable, "-c", "import tf_lifelong; print(tf_lifelong.__file__)")
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip().startswith(str(installed[0])), done.stdout


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_runs_outside_the_checkout(installed, tool):
  done = _run(installed, _script(installed, tool), "--help")
  assert done.returncode == 0, done.stderr  # a help request is not an error.
  assert not done.stderr, done.stderr
  assert TOOLS[tool] in done.stdout, done.stdout
  assert "-v,--verbosity" in done.stdout and "--[no]logtostderr" in done.stdout


def _tiny_folder(root) -> None:
  """Two distributions of six 8x8 grey PNGs each (a bright and a dark one)."""
  rng = np.random.default_rng(0)
  for name, low in (("bright", 128), ("dark", 0)):
    os.makedirs(os.path.join(root, name))
    for i in range(6):
      pixels = rng.integers(low, low + 128, (8, 8), dtype=np.uint8)
      Image.fromarray(pixels).save(os.path.join(root, name, f"{i}.png"))


def test_train_learns_a_tiny_folder_outside_the_checkout(installed):
  outside = installed[1]
  _tiny_folder(outside / "images")
  done = _run(
    installed,
    _script(installed, "train"),
    "--dataset=folder:images",  # relative to the working folder
    "--workdir=run",
    "--batch_size=8",
    "--hidden_units=8",
    "--continuous_dim=2",
    "--eval_every=2",
    "--max_steps_per_interval=4",
    "--patience=1",
    "--validation_synthetic_examples=8",
    "--steps_per_execution=1",
    "--checkpoint_every=0",
    "--threads=1",
    "-v",
    "0",
    timeout=240,
  )
  assert done.returncode == 0, done.stdout + done.stderr
  with open(outside / "run" / "metrics.csv") as f:
    rows = list(csv.DictReader(f))
  assert [row["distribution"] for row in rows] == ["0", "1"]
  assert (outside / "run" / "export" / "saved_model.pb").is_file()
  assert (outside / "run" / "config.json").is_file()
  # -v 0: absl's INFO lines, among them the command line and the folder's contents.
  assert "train: tf_lifelong" in done.stderr and "12 images (8x8 grey)" in done.stderr


# ------------------------------------------------------ optional extras
def test_require_names_the_extra(monkeypatch):
  from tf_lifelong import installation

  monkeypatch.setitem(sys.modules, "keras_tuner", None)  # `import keras_tuner` now fails.
  with pytest.raises(installation.MissingExtraError) as info:
    installation.require("keras_tuner", "the search")
  message = str(info.value)
  assert "\n" not in message and "the search needs keras-tuner" in message
  assert "pip install 'tf_lifelong[tune]'" in message
  assert installation.require("json", "x") is sys.modules["json"]


def _hidden(root, module: str) -> dict:
  """An environment in which `import module` fails as if it were not installed."""
  folder = root / "hidden" / module
  folder.mkdir(parents=True)
  (folder / "__init__.py").write_text(
    f'raise ModuleNotFoundError("No module named {module!r}", name={module!r})\n'
  )
  path = os.pathsep.join(p for p in (str(root / "hidden"), os.environ.get("PYTHONPATH")) if p)
  return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.mark.parametrize(
  "tool,module,extra,args",
  [
    ("tune", "keras_tuner", "tune", ["--max_trials=1", "--dataset=folder:{root}"]),
    ("experiment", "matplotlib", "figures", ["--preset=mnist_sequential", "--report_only"]),
  ],
)
def test_a_missing_extra_is_one_line_naming_it(tmp_path, tool, module, extra, args):
  args = [a.format(root=tmp_path) for a in args]
  out = "--workdir" if tool == "tune" else "--output"
  done = subprocess.run(
    [sys.executable, os.path.join(paths.REPO, "bin", tool), *args, f"{out}={tmp_path / 'out'}"],
    capture_output=True,
    text=True,
    timeout=120,
    env=_hidden(tmp_path, module),
  )
  lines = [line for line in done.stderr.splitlines() if line.strip()]
  assert done.returncode == 2 and len(lines) == 1, done.stderr
  assert (
    lines[0].startswith(f"{tool}: error: ") and f"pip install 'tf_lifelong[{extra}]'" in lines[0]
  )


# ------------------------------------------------ commands and child processes
@pytest.mark.parametrize(
  "argv0,expected",
  [
    ("/venv/bin/tf-lifelong-train", "tf-lifelong-train"),
    (os.path.join(paths.REPO, "bin", "experiment"), "bin/experiment"),
    ("bin/benchmark", "bin/benchmark"),
    ("/site-packages/tf_lifelong/cli/tune.py", "python -m tf_lifelong.cli.tune"),
    ("/some where/tool", "'/some where/tool'"),
  ],
)
def test_recorded_commands_rerun_as_invoked(monkeypatch, argv0, expected):
  from tf_lifelong.cli import errors

  monkeypatch.setattr(sys, "argv", [argv0, "--output=a b", "--seeds=2"])
  assert errors.invoked_as() == expected
  assert errors.command_line() == f"{expected} '--output=a b' --seeds=2"


def test_runs_record_the_installed_train_tool():
  from tf_lifelong import config as config_lib
  from tf_lifelong.experiments import extras, runner

  spec = runner.RunSpec(
    "naive", 0, "out/runs/naive/seed-0", config_lib.Config(), extras.ExtrasOptions()
  )
  assert runner.train_command(spec) == (
    "tf-lifelong-train --config_file=out/runs/naive/seed-0/run_config.json"
  )


def test_child_processes_import_this_tf_lifelong(tmp_path):
  import tf_lifelong
  from tf_lifelong import installation

  root = installation.package_root()
  assert root == os.path.dirname(os.path.dirname(os.path.abspath(tf_lifelong.__file__)))
  env = installation.child_env({"PYTHONPATH": "/elsewhere"})
  assert env["PYTHONPATH"].split(os.pathsep) == [root, "/elsewhere"]  # not in site-packages
  done = subprocess.run(
    [sys.executable, "-c", "import tf_lifelong; print(tf_lifelong.__file__)"],
    capture_output=True,
    text=True,
    cwd=str(tmp_path),
    env=installation.child_env(),
    timeout=60,
  )
  assert done.stdout.strip() == os.path.abspath(tf_lifelong.__file__), done.stderr
