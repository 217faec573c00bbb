"""absl flags shared by the command-line tools, generated from `Config`'s fields.

Each `Config` field is a flag of the same name, with the field's help, default
and choices (tf_lifelong/config declares them once). A flag given on the command line
overrides `--config_file` (a JSON config such as a run's `config.json` or
`bin/tune`'s `best_config.json`), which overrides the defaults. bin/train on a
workdir that holds a run starts from that run's `config.json` instead of the
defaults, so that `bin/train --workdir=W` alone resumes it.

The few flags that are not part of a run's configuration (where it is written,
what to start from, how to treat an existing workdir) are defined here by hand.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any

from absl import flags

from tf_lifelong import config as config_lib
from tf_lifelong.state import files

FLAGS = flags.FLAGS

_LISTS = {"tuple[int, ...] | None": int, "tuple[float, ...]": float}
"""Tuple fields, written on the command line as comma-separated values."""


def _define(field: dataclasses.Field) -> None:
  """Defines the flag of one Config field, typed from the field's annotation."""
  meta, kind, default = field.metadata, field.type, field.default
  name, text = field.name, field.metadata["help"]
  if meta["choices"]:
    flags.DEFINE_enum(name, default, list(meta["choices"]), text)
  elif kind == "bool":
    flags.DEFINE_bool(name, default, text)
  elif kind in ("int", "int | None"):
    flags.DEFINE_integer(name, default, text)
  elif kind == "float":
    flags.DEFINE_float(name, default, text)
  elif kind in _LISTS:
    shown = None if default is None else ",".join(f"{v:g}" for v in default)
    flags.DEFINE_string(name, shown, text)
  elif kind in ("str", "str | None"):
    flags.DEFINE_string(name, default, text)
  else:  # A new field of a new type: say so at once, not at a user's run.
    raise TypeError(f"Config.{name}: no flag type for {kind!r}; add one in cli/flags.py")


def _value(field: dataclasses.Field) -> Any:
  """The flag's value as the Config field takes it (tuples parsed from 1,2,3)."""
  value = FLAGS[field.name].value
  if field.type not in _LISTS or value is None:
    return value
  if value == "":
    return None
  parse = _LISTS[field.type]
  try:
    return tuple(parse(t) for t in value.split(","))
  except ValueError:
    kind = "integers" if parse is int else "numbers"
    raise config_lib.ConfigError(
      f"--{field.name} must be comma-separated {kind}, got {value!r}"
    ) from None


def define_run_flags() -> None:
  """Defines the flags of a lifelong run (bin/train, bin/tune, bin/experiment)."""
  for field in dataclasses.fields(config_lib.Config):
    _define(field)
  flags.DEFINE_enum(
    "profile",
    "default",
    list(config_lib.PROFILES),
    "The defaults that --config_file and the flags given override: default (the best "
    "settings measured on validation runs, docs/results/README.md) or paper (method.md's "
    "specification exactly: "
    + ", ".join(f"{k}={v}" for k, v in config_lib.PAPER_PROFILE.items())
    + ").",
  )
  flags.DEFINE_string(
    "workdir",
    None,
    "Where the run writes config, metrics, checkpoints, TensorBoard logs, samples and the "
    "export. Default: runs/<dataset>-<time>.",
  )
  flags.DEFINE_string(
    "config_file",
    None,
    "JSON configuration to start from (a run's config.json, or bin/tune's "
    "best_config.json); flags given here override it.",
  )
  flags.DEFINE_bool(
    "overwrite",
    False,
    "Start afresh in a workdir that holds a run, removing its checkpoints, metrics, "
    "summaries, samples and export. Without it, bin/train on a workdir resumes the run "
    "there (same configuration) or refuses.",
  )
  model = ", ".join(config_lib.fields_with_role("model"))
  stream = ", ".join(f"--{n}" for n in config_lib.fields_with_role("stream") if n != "dataset")
  flags.DEFINE_bool(
    "continue",
    False,
    "Append --dataset's intervals (in --order) to the finished model in --workdir: names "
    "seen before are repeats (J kept), new names grow J; rows are appended to its metrics, "
    "TensorBoard steps go on, the export is replaced at the end. The model's settings "
    f"({model}) come from its config.json; the stream's ({stream}) from the flags. A killed "
    "continuation resumes with the same command (docs/reliability.md).",
  )
  flags.DEFINE_bool("verbose", False, "Show full tracebacks and TensorFlow's logging.")


def config_from_flags(base_file: str | None = None, new_stream: bool = False) -> config_lib.Config:
  """Builds the run's Config: --profile's defaults < --config_file < flags given explicitly.

  Args:
    base_file: a JSON configuration to start from when --config_file is not
      given (bin/train passes the config.json of the workdir it resumes).
    new_stream: the stream's fields (the config's `stream` role) come from the
      flags (given or default), not from the file (bin/train --continue).
  """
  values: dict = {}
  path = FLAGS.config_file or base_file
  if path:
    try:
      values = config_lib.Config.from_json(files.read_text(path)).to_dict()
    except (OSError, files.not_found()) as e:
      why = getattr(e, "strerror", None) or getattr(e, "message", None) or e
      raise config_lib.ConfigError(f"cannot read {path}: {why}") from None
    except config_lib.ConfigError as e:
      hint = "" if FLAGS.config_file else "; pass --overwrite to start afresh"
      raise config_lib.ConfigError(f"{path}: {e}{hint}") from None
  if new_stream:
    stream = config_lib.fields_with_role("stream")
    values = {k: v for k, v in values.items() if k not in stream}
  defaults = config_lib.profile(FLAGS.profile).to_dict()
  for field in dataclasses.fields(config_lib.Config):
    if FLAGS[field.name].present:
      values[field.name] = _value(field)
    elif field.name not in values:
      values[field.name] = defaults[field.name]
  return config_lib.Config.from_dict(values)


def show_in_help(module_name: str) -> None:
  """Lists the flags defined in `module_name` under the program's own --help."""
  program = sys.argv[0]
  for flag in FLAGS.get_flags_for_module(module_name):
    FLAGS.register_key_flag_for_module(program, flag)


def default_workdir(config: config_lib.Config) -> str:
  name = config.dataset.replace(":", "_").replace("/", "_").strip("_")[:40]
  return os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
