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
    # 3 also hides the "failed call to cuInit" error every GPU-less machine prints.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings  # noqa: PLC0415

    from absl import logging  # noqa: PLC0415

    logging.set_verbosity(logging.WARNING)
    warnings.filterwarnings("ignore", module="keras")


_USER_ERRORS = {
  "tf_lifelong.config": "ConfigError",
  "tf_lifelong.data.sources": "DataError",
  "tf_lifelong.lifelong": "RunError",
  "tf_lifelong.checkpoints": "CheckpointError",
  "tf_lifelong.tuning": "TuneError",
  "tf_lifelong.resume": "WorkdirError",
  "tf_lifelong.runtime": "RuntimeSetupError",
  "tf_lifelong.experiments.runner": "ExperimentError",
}
"""Module -> the exception type of its user messages."""


def user_errors() -> tuple[type[BaseException], ...]:
  """The exception types that mean bad input, not a bug.

  Only those of modules already imported: an error can only come from a module
  that was, and importing the others (TensorFlow among them) would cost seconds.
  """
  return tuple(
    getattr(sys.modules[name], kind) for name, kind in _USER_ERRORS.items() if name in sys.modules
  )


@contextlib.contextmanager
def native_stderr_silenced(enabled: bool = True):
  """Sends file descriptor 2 to /dev/null inside the block.

  TensorFlow's C++ runtime prints INFO lines (oneDNN, missing CUDA drivers)
  straight to stderr while it loads, before its log level applies; a user who
  did not ask for --verbose should see one line per problem, not those.
  """
  if not enabled:
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  try:
    os.dup2(devnull, 2)
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


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


def run_app(program: str, main, help_modules: tuple[str, ...]) -> None:
  """absl's app.run, with the flags of `help_modules` under --help and a
  one-line error (exit 2) for an unknown or malformed flag."""
  from absl import app, flags  # noqa: PLC0415

  from tf_lifelong.cli import flags as run_flags  # noqa: PLC0415

  for module in help_modules:
    run_flags.show_in_help(module)

  def parse(argv: list[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f"{program}: error: {e}\nTry --help.", file=sys.stderr)
      sys.exit(2)

  app.run(main, flags_parser=parse)
