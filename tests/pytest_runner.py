"""Runs one pytest module as a Bazel py_test: `pytest_runner.py path/to/test_x.py`."""

import os
import sys

import pytest

if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *sys.argv[1:]]))
