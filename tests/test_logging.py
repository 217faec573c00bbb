"""absl's logging flags in every tool: -v/--verbosity, --logtostderr; --verbose hides neither.

The tools run in subprocesses, each stopping at once with a one-line error
before TensorFlow loads (bin/export without --workdir, bin/train with a bad
flag value). Every tool logs, at INFO, its version and command line first.
"""

import os
import re
import subprocess
import sys

import pytest

from tests import paths

INFO = re.compile(r"^I\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ", re.MULTILINE)
"""The start of an absl INFO line: `I1130 10:00:00.123456 4242 file.py:12] `."""
DEBUG_OR_INFO = re.compile(r"^[ID]\d{4} ", re.MULTILINE)


def _tool(name: str, *args: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run(
    [sys.executable, os.path.join(paths.REPO, "bin", name), *args],
    capture_output=True,
    text=True,
    timeout=120,
    env=env,
  )


def _info_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if INFO.match(line)]


def test_v_1_shows_absl_info_lines():
  result = _tool("export", "-v", "1")
  assert result.returncode == 2
  (line,) = [line for line in _info_lines(result.stderr) if "export: tf_lifelong" in line]
  assert "errors.py:" in line and line.endswith("command line: bin/export -v 1")
  assert "export: error: --workdir is required" in result.stderr


def test_verbosity_0_to_stderr_and_logtostderr():
  for args in (["--verbosity=0"], ["--logtostderr", "-v", "0"], ["--alsologtostderr", "-v=0"]):
    result = _tool("export", *args)
    assert any("export: tf_lifelong" in line for line in _info_lines(result.stderr)), args


def test_without_v_only_the_error_line():
  result = _tool("export")
  assert result.returncode == 2
  assert not DEBUG_OR_INFO.search(result.stderr), result.stderr
  assert result.stderr.splitlines() == ["export: error: --workdir is required", "Try --help."]


def test_verbose_no_longer_overrides_verbosity():
  """--verbose keeps its tracebacks; an explicit -v still sets the level."""
  quiet = _tool("export", "--verbose", "--verbosity=-1")
  assert quiet.returncode == 2 and not DEBUG_OR_INFO.search(quiet.stderr), quiet.stderr
  loud = _tool("export", "--verbose")  # absl's own default then: INFO.
  assert _info_lines(loud.stderr), loud.stderr


def test_train_logs_its_command_line_at_info(tmp_path):
  """A bad --batch_size fails in train's main, after the INFO line, before TensorFlow loads."""
  args = ("--batch_size=0", f"--workdir={tmp_path}")
  result = _tool("train", *args, "-v", "0")
  assert result.returncode == 2 and "batch_size must be at least 1" in result.stderr
  (line,) = [line for line in _info_lines(result.stderr) if "train: tf_lifelong" in line]
  assert line.endswith(f"command line: bin/train --batch_size=0 --workdir={tmp_path} -v 0")
  assert not _info_lines(_tool("train", *args).stderr)


@pytest.mark.parametrize("tool", ["train", "export", "tune", "experiment", "benchmark"])
def test_help_lists_the_logging_flags(tool):
  result = _tool(tool, "--help")
  assert result.returncode == 0, result.stderr  # a help request is not an error.
  out = result.stdout
  assert "-v,--verbosity:" in out and "--[no]logtostderr:" in out and "--[no]verbose:" in out


@pytest.mark.parametrize("request_flag", ["--helpshort", "--helpfull", "-?"])
def test_every_help_flag_exits_0(request_flag):
  result = _tool("train", request_flag)
  assert result.returncode == 0, result.stderr
  assert "--dataset" in result.stdout
