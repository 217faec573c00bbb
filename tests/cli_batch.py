"""Runs bin/train's main on several command lines in one process (a test driver).

Each bin/train start spends seconds importing TensorFlow; tests that check many
bad command lines pass them all to one process of this driver instead:

    python tests/cli_batch.py < cases.json > results.json

Input: a JSON list of argument lists (without the program name). Output: a JSON
list of {"rc", "stdout", "stderr"}, one per command line, as bin/train would
have exited and printed (an unexpected exception prints its traceback, rc 1).
The flags are parsed as bin/train parses them, reset between command lines.
Command lines that split the CPU (--num_cpu_devices) must come first: the
device layout is fixed once TensorFlow has started.
"""

import contextlib
import io
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags

from tf_lifelong.cli import flags as run_flags
from tf_lifelong.cli import train


def run_one(args: list[str]) -> dict:
  """One bin/train command line: its exit status and what it printed."""
  out, err = io.StringIO(), io.StringIO()
  rc = 0
  flags.FLAGS.unparse_flags()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      train.main(flags.FLAGS(["train", *args]))
    except SystemExit as e:
      rc = e.code if isinstance(e.code, int) else 1
    except Exception:  # noqa: BLE001 - reported as bin/train would: a traceback, status 1.
      traceback.print_exc()
      rc = 1
  return {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main() -> None:
  cases = json.load(sys.stdin)
  run_flags.define_run_flags()
  results = [run_one(args) for args in cases]
  sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
  main()
