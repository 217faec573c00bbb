"""A function run in a fresh Python process: a JSON payload in, a JSON result out.

The benchmarks run some measurements in a process of their own, so that its
peak memory is its own and TensorFlow starts there afresh (logical devices can
be laid out before it initialises). The parent calls
`run_json_child(module, function, payload)`; the child (`serve`) reads the
payload from stdin, calls `module.function(payload)` and prints the result as
the last line of its stdout.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping

from tf_lifelong import installation

STDERR_TAIL_CHARS = 3000
"""How much of a failed child's stderr (its end) the exception carries."""

_CHILD_MAIN = (
  "import sys; from tf_lifelong.benchmarks import child_process; child_process.serve(*sys.argv[1:])"
)


def run_json_child(
  module: str,
  function: str,
  payload: dict,
  *,
  env: Mapping[str, str] | None = None,
  timeout: float | None = None,
  description: str | None = None,
) -> dict:
  """Runs `module.function(payload)` in a fresh Python process and returns its result.

  The child gets this process's environment with `env` on top,
  TF_CPP_MIN_LOG_LEVEL 3 unless either sets it, and the folder of this
  tf_lifelong first on PYTHONPATH where it is not installed in site-packages.

  Args:
    module: the dotted name of the function's module, e.g.
      "tf_lifelong.benchmarks.interval".
    function: a function of `module` that takes the payload (a dict) and
      returns a JSON-able result.
    payload: the function's argument, JSON-able.
    env: environment variables set in the child, over this process's.
    timeout: seconds before the child is killed (None: no limit).
    description: what the child is, for error messages (default: the
      function's dotted name).

  Returns:
    The function's result, parsed from the last line of the child's stdout.

  Raises:
    RuntimeError: the child failed, ran past `timeout`, or its last stdout line
      is not JSON; the message ends with the tail of its stderr.
  """
  what = description or f"the child process {module}.{function}"
  child_env = dict(os.environ)
  child_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  child_env.update(env or {})
  child_env = installation.child_env(child_env)  # It imports this tf_lifelong.
  try:
    done = subprocess.run(
      [sys.executable, "-c", _CHILD_MAIN, module, function],
      input=json.dumps(payload),
      capture_output=True,
      text=True,
      env=child_env,
      timeout=timeout,
      check=False,
    )
  except subprocess.TimeoutExpired as e:
    raise RuntimeError(f"{what} ran past {timeout} s:\n{_tail(e.stderr)}") from None
  if done.returncode != 0:
    raise RuntimeError(f"{what} failed ({done.returncode}):\n{_tail(done.stderr)}")
  lines = done.stdout.strip().splitlines()
  try:
    return json.loads(lines[-1])
  except (IndexError, json.JSONDecodeError):
    last = lines[-1][:200] if lines else "(no output)"
    raise RuntimeError(
      f"{what} printed no JSON result as its last line ({last!r}):\n{_tail(done.stderr)}"
    ) from None


def serve(module: str, function: str) -> None:
  """The child's side: the payload JSON on stdin, `module.function(payload)` as JSON on stdout.

  The result is stdout's last line, so whatever the function prints before it
  does no harm.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  payload = json.loads(sys.stdin.read())
  result = getattr(importlib.import_module(module), function)(payload)
  print(json.dumps(result))


def _tail(text: str | bytes | None) -> str:
  """The last STDERR_TAIL_CHARS characters of a child's output."""
  if isinstance(text, bytes):
    text = text.decode(errors="replace")
  return (text or "")[-STDERR_TAIL_CHARS:]
