"""What depends on how tf_lifelong is installed: optional extras and child processes.

Some parts need a package that `pip install .` alone does not bring: the
tuner needs keras-tuner (`pip install '.[tune]'`), the experiment report's
figures need matplotlib (`pip install '.[figures]'`). `require` imports such
a package or raises `MissingExtraError`, whose one-line message names the
extra to install; the command-line tools print it as `tool: error: ...`.

`child_env` gives a child Python process (`sys.executable -m tf_lifelong...`)
the environment in which it imports this same tf_lifelong, whether it runs
from a checkout, a `pip install --target` folder or site-packages.
"""

from __future__ import annotations

import importlib
import os
import site
import sys
from collections.abc import Mapping
from types import ModuleType

EXTRAS = {"keras_tuner": ("tune", "keras-tuner"), "matplotlib": ("figures", "matplotlib")}
"""Optional module -> (the extra of setup.py that installs it, its PyPI name)."""


class MissingExtraError(ImportError):
  """An optional package is not installed; the message names the extra to install."""


def require(module: str, purpose: str) -> ModuleType:
  """Imports the optional `module` (a key of EXTRAS).

  Args:
    module: the module to import, e.g. "keras_tuner".
    purpose: what needs it, for the message, e.g. "tf-lifelong-tune".

  Returns:
    The module.

  Raises:
    MissingExtraError: `module` is not installed (one line naming the extra).
  """
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError as e:
    if e.name is None or e.name.split(".")[0] != module.split(".")[0]:
      raise  # Another module is missing: a broken installation, not an extra.
    raise MissingExtraError(missing_message(module, purpose)) from None


def missing_message(module: str, purpose: str) -> str:
  """The one line that says which extra brings `module`."""
  extra, package = EXTRAS[module]
  return (
    f"{purpose} needs {package}, which is not installed; install the extra with "
    f"`pip install 'tf_lifelong[{extra}]'` (from a checkout: `pip install '.[{extra}]'`)"
  )


def package_root() -> str:
  """The folder that holds the imported tf_lifelong package (a checkout, a target, site-packages)."""
  return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
  """`env` (default os.environ) with PYTHONPATH led by `package_root()` where needed.

  A child `sys.executable -m tf_lifelong...` then imports this tf_lifelong,
  also when the parent found it only through `sys.path` (bin/ launchers put
  the checkout there). An installed package (in site-packages) needs nothing,
  and its folder is not added: it would come before the standard library.
  """
  out = dict(os.environ if env is None else env)
  root = package_root()
  installed = {os.path.abspath(p) for p in _site_dirs()}
  if root not in installed:
    out["PYTHONPATH"] = os.pathsep.join(p for p in (root, out.get("PYTHONPATH")) if p)
  return out


def _site_dirs() -> list[str]:
  dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
  if site.ENABLE_USER_SITE:
    dirs.append(site.getusersitepackages())
  return dirs + [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")]
