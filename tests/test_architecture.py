"""docs/architecture.md's direction of dependencies, checked on the imports of the code."""

import ast
import os
import re

import pytest

from tests import paths

PACKAGE = os.path.join(paths.REPO, "tf_lifelong")


def _modules():
  for folder, _, names in os.walk(PACKAGE):
    for name in names:
      if name.endswith(".py"):
        path = os.path.join(folder, name)
        yield os.path.relpath(path, paths.REPO)[: -len(".py")].replace(os.sep, "."), path


def _imports(path: str) -> set[str]:
  """Every module an import statement of the file names (function-level ones too)."""
  out = set()
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      out.add(node.module)
      out.update(f"{node.module}.{a.name}" for a in node.names)
  return out


IMPORTS = dict((name, _imports(path)) for name, path in _modules())


def _offenders(importer_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
  return sorted(
    f"{m} imports {i}"
    for m, found in IMPORTS.items()
    if m.startswith(importer_prefix)
    for i in found
    if i.startswith(forbidden)
  )


def test_the_layout_has_its_packages():
  for package in ("data", "model", "train", "state", "evaluation", "monitor", "serving", "cli"):
    assert os.path.isfile(os.path.join(PACKAGE, package, "__init__.py")), package


@pytest.mark.parametrize(
  "importer,forbidden",
  [
    ("tf_lifelong.model", ("tf_lifelong.data", "tf_lifelong.train", "tf_lifelong.state")),
    ("tf_lifelong.model", ("tf_lifelong.cli", "tf_lifelong.experiments", "tf_lifelong.serving")),
    ("tf_lifelong.data", ("tf_lifelong.model", "tensorflow_probability", "tf_lifelong.train")),
    ("tf_lifelong.model.objectives", ("keras", "tf_lifelong.model.networks")),
    ("tf_lifelong.state", ("tf_lifelong.train", "tf_lifelong.cli")),
    ("tf_lifelong.evaluation", ("tf_lifelong.train", "tf_lifelong.cli")),
    # The export traces model/inference's math into its graph; it loads without either.
    ("tf_lifelong.serving", ("tf_lifelong.train", "tf_lifelong.data", "tensorflow_probability")),
  ],
)
def test_no_import_against_the_direction(importer, forbidden):
  assert _offenders(importer, forbidden) == []


def test_nothing_outside_cli_imports_cli():
  assert [
    o
    for o in _offenders("tf_lifelong", ("tf_lifelong.cli",))
    if not o.startswith("tf_lifelong.cli")
  ] == []


MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
"""issue #19's sizes that stay readable: a module of a few hundred lines, a function
that fits on a screen (its def line to its last line, docstring included)."""


def _sizes() -> tuple[list[str], list[str]]:
  modules, functions = [], []
  for name, path in _modules():
    source = open(path).read()
    if source.count("\n") > MAX_MODULE_LINES:
      modules.append(f"{name}: {source.count(chr(10))} lines")
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        length = node.end_lineno - node.lineno + 1
        if length > MAX_FUNCTION_LINES:
          functions.append(f"{name}.{node.name}: {length} lines")
  return modules, functions


def test_modules_and_functions_stay_readable():
  modules, functions = _sizes()
  assert modules == [], f"modules over {MAX_MODULE_LINES} lines"
  assert functions == [], f"functions over {MAX_FUNCTION_LINES} lines"


TREE_NAME = re.compile(r"\b(\w+\.py)\b")


def tree_paths(page: str) -> set[str]:
  """The modules docs/architecture.md's tree names, as paths under tf_lifelong/.

  The tree is the page's first code block: a line whose first word ends with "/"
  opens a folder at its indentation; a line's leading words (up to two spaces, where
  the description starts) name files of the innermost folder indented less, one or
  several separated by commas. Only what lies under `tf_lifelong/` counts.
  """
  block = page.split("```")[1]
  folders: list[tuple[int, str]] = []  # (indentation, name) from the root down
  found = set()
  for line in block.splitlines():
    indent = len(line) - len(line.lstrip())
    words = re.split(r"\s{2,}", line.strip())[0]
    while folders and folders[-1][0] >= indent:
      folders.pop()
    if words.endswith("/"):
      folders.append((indent, words))
      continue
    if folders and folders[0][1] == "tf_lifelong/":
      prefix = "".join(name for _, name in folders[1:])
      found.update(prefix + name for name in TREE_NAME.findall(words))
  return found


def test_the_tree_reader_reads_paths():
  page = "```\ntf_lifelong/\n  files.py   x\n  state/\n    profiles.py, export.py  y.py\n```"
  assert tree_paths(page) == {"files.py", "state/profiles.py", "state/export.py"}


def test_the_architecture_page_names_every_module():
  page = open(os.path.join(paths.REPO, "docs", "architecture.md")).read()
  named = tree_paths(page)
  modules = {os.path.relpath(path, PACKAGE) for _, path in _modules()}
  unnamed = sorted(m for m in modules if not m.endswith("__init__.py") and m not in named)
  assert unnamed == [], "add them to docs/architecture.md's tree"
  assert sorted(named - modules) == [], "the tree names modules that do not exist"
