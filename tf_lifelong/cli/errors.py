"""Turns user-facing errors into one line on stderr and a non-zero exit."""

from __future__ import annotations

import contextlib
import os
import sys

# Errors whose message is written for the user; anything else is a bug and keeps
# its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = ()


def quiet_tensorflow(verbose: bool) -> None:
  """Silences TensorFlow's C++ and Python logging unless verbose."""
  if not verbose:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def user_errors() -> tuple[type[BaseException], ...]:
  """The exception types that mean bad input, not a bug (imported lazily)."""
  from tf_lifelong import config, lifelong
  from tf_lifelong.data import sources
  return (config.ConfigError, sources.DataError, lifelong.RunError)


@contextlib.contextmanager
def reported(program: str, verbose: bool):
  """Runs the body; a user error becomes `program: error: message` and exit 2."""
  try:
    yield
  except KeyboardInterrupt:
    print(f"{program}: interrupted", file=sys.stderr)
    sys.exit(130)
  except Exception as e:  # noqa: BLE001
    if verbose or not isinstance(e, user_errors()):
      raise
    print(f"{program}: error: {e}", file=sys.stderr)
    sys.exit(2)
