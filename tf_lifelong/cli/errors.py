"""Turns user-facing errors into one line on stderr and a non-zero exit."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys

# Errors whose message is written for the user; anything else is a bug and keeps
# its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = ()


ABSL_LOGGING_FLAGS = ("verbosity", "logtostderr", "alsologtostderr")
"""absl's logging flags that every tool's --help lists (the others: --helpfull)."""

_VERBOSITY_HELP = (
  "Python logging level, as in every absl program: -1 warnings and errors only (the "
  "default of these tools), 0 also INFO, 1 also DEBUG. TensorFlow's native (C++) "
  "log lines stay hidden unless --verbose."
)


def quiet_tensorflow(verbose: bool) -> None:
  """Silences TensorFlow's C++ logging and Keras' warnings unless verbose.

  Python logging (absl's, TensorFlow's Python side, tf_lifelong's) follows
  absl's own flags: -v/--verbosity as given, to stderr (--logtostderr and
  --alsologtostderr work as in any absl program). Without -v, the level is
  WARNING unless verbose (then absl's default, INFO).
  """
  if not verbose:
    # 3 also hides the "failed call to cuInit" error every GPU-less machine prints.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings  # noqa: PLC0415

    warnings.filterwarnings("ignore", module="keras")
  apply_verbosity(verbose)


def apply_verbosity(verbose: bool) -> None:
  """Sets absl's verbosity to WARNING unless -v/--verbosity was given or verbose."""
  from absl import flags, logging  # noqa: PLC0415

  given = "verbosity" in flags.FLAGS and flags.FLAGS["verbosity"].present
  if not given and not verbose:
    logging.set_verbosity(logging.WARNING)


_USER_ERRORS = {
  "tf_lifelong.config": "ConfigError",
  "tf_lifelong.data.sources": "DataError",
  "tf_lifelong.train.lifelong": "RunError",
  "tf_lifelong.train.context": "RunError",
  "tf_lifelong.state.checkpoints": "CheckpointError",
  "tf_lifelong.experiments.tuning": "TuneError",
  "tf_lifelong.state.resume": "WorkdirError",
  "tf_lifelong.runtime": "RuntimeSetupError",
  "tf_lifelong.experiments.runner": "ExperimentError",
  "tf_lifelong.installation": "MissingExtraError",
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
  except Exception as e:
    message = None if verbose else _user_message(e)
    if message is None:
      raise
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(2)


def _user_message(e: Exception) -> str | None:
  """The line for the user: a user error's message; after training's step
  watchdog aborted the collectives of a multi-worker run (a peer gone or hung),
  its line, whatever failed then; else None (a bug: the traceback stays)."""
  if isinstance(e, user_errors()):
    return str(e)
  watchdog = sys.modules.get("tf_lifelong.train.watchdog")
  return watchdog.collectives_aborted() if watchdog is not None else None


def run_app(program: str, main, help_modules: tuple[str, ...]) -> None:
  """absl's app.run, with the flags of `help_modules` and absl's logging flags
  under --help, a one-line error (exit 2) for an unknown or malformed flag, and
  exit 0 after --help (absl's own exits 1).

  Before `main`, the logging level is set (`apply_verbosity`) and an INFO line
  names the program, the version and the command line (shown with -v 0 or more).
  """
  from absl import app, flags, logging  # noqa: PLC0415

  from tf_lifelong import __version__  # noqa: PLC0415
  from tf_lifelong.cli import flags as run_flags  # noqa: PLC0415

  for module in help_modules:
    run_flags.show_in_help(module)
  _show_logging_flags()

  def parse(argv: list[str]) -> list[str]:
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f"{program}: error: {e}\nTry --help.", file=sys.stderr)
      sys.exit(2)
    except SystemExit as e:
      # absl's help flags (--help, -?, --helpshort, --helpfull, --helpxml) print the
      # help to stdout and exit 1 while the flags are parsed; nothing else exits
      # there. A help request is not an error: exit 0.
      sys.exit(0 if e.code == 1 else e.code)

  def logged_main(argv: list[str]):
    apply_verbosity("verbose" in flags.FLAGS and bool(flags.FLAGS.verbose))
    logging.info("%s: tf_lifelong %s, command line: %s", program, __version__, command_line())
    return main(argv)

  app.run(logged_main, flags_parser=parse)


def _show_logging_flags() -> None:
  """Lists absl's -v/--verbosity, --logtostderr and --alsologtostderr under --help."""
  from absl import flags  # noqa: PLC0415
  from absl import logging as _  # noqa: F401, PLC0415 - defines the logging flags.

  for name in ABSL_LOGGING_FLAGS:
    if name in flags.FLAGS:
      flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[name])
  if "verbosity" in flags.FLAGS:
    flags.FLAGS["verbosity"].help = _VERBOSITY_HELP


def command_line() -> str:
  """This process's command line as a user reruns it (shell-quoted)."""
  return " ".join([invoked_as(), *map(shlex.quote, sys.argv[1:])])


def invoked_as() -> str:
  """How the running tool was started: `bin/train`, `tf-lifelong-train` or `python -m ...`.

  A bin/ launcher is named relative to the checkout (as the README runs it), a
  console script by its name (on PATH after `pip install`), and a module run
  with `python -m` by its module.
  """
  path = sys.argv[0] if sys.argv and sys.argv[0] else "python"
  name = os.path.basename(path)
  if name.startswith("tf-lifelong-"):
    return name
  parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
  if name.endswith(".py") and parent == "cli":
    return f"python -m tf_lifelong.cli.{name[:-3]}"
  if parent == "bin":
    return f"bin/{name}"
  return shlex.quote(path)
