"""The Bazel BUILD files agree with the code: every module is in a py_library, and
each library's deps (transitively) hold every tf_lifelong module its files import.

Under `bazel test` a test's runfiles hold only its deps' sources, so a missing dep
breaks an import there and nowhere else (pytest sees the whole checkout). This reads
the BUILD files as Python syntax (Starlark's py_library calls are) and the code's
imports with the ast module; it needs no Bazel.
"""

import ast
import os

from tests import paths

PACKAGE = os.path.join(paths.REPO, "tf_lifelong")
LAZY = {("tf_lifelong/__init__.py", "tf_lifelong.train.learner")}
"""Imports made only when asked for (`tf_lifelong.Learner`, a module __getattr__):
a target that needs the Learner depends on //tf_lifelong/train:learner itself."""


def _strings(node) -> list[str]:
  return [e.value for e in getattr(node, "elts", []) if isinstance(e, ast.Constant)]


def _libraries() -> dict[str, dict]:
  """'//package:name' -> {'srcs': [repo-relative paths], 'deps': ['//package:name']}."""
  out = {}
  for folder, _, names in os.walk(PACKAGE):
    if "BUILD" not in names:
      continue
    package = os.path.relpath(folder, paths.REPO)
    for node in ast.walk(ast.parse(open(os.path.join(folder, "BUILD")).read())):
      if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "py_library":
        args = {k.arg: k.value for k in node.keywords}
        deps = [f"//{package}{d}" if d.startswith(":") else d for d in _strings(args.get("deps"))]
        srcs = [os.path.join(package, s) for s in _strings(args.get("srcs"))]
        out[f"//{package}:{args['name'].value}"] = {"srcs": srcs, "deps": deps}
  return out


LIBRARIES = _libraries()


def _modules() -> list[str]:
  found = []
  for folder, _, names in os.walk(PACKAGE):
    found += [os.path.relpath(os.path.join(folder, n), paths.REPO) for n in names]
  return sorted(f for f in found if f.endswith(".py"))


def _reachable(target: str) -> set[str]:
  seen, todo = set(), [target]
  while todo:
    t = todo.pop()
    if t not in seen:
      seen.add(t)
      todo += LIBRARIES.get(t, {}).get("deps", [])
  return seen


def _file_of(module: str) -> str | None:
  base = module.replace(".", "/")
  for candidate in (base + ".py", base + "/__init__.py"):
    if os.path.exists(os.path.join(paths.REPO, candidate)):
      return candidate
  return None


_PACKAGE_INITS = tuple(m for m in _modules() if m.endswith("__init__.py"))


def _imported(path: str) -> set[str]:
  out = set()
  for node in ast.walk(ast.parse(open(os.path.join(paths.REPO, path)).read())):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      out.add(node.module)
      out.update(f"{node.module}.{a.name}" for a in node.names)
  return {m for m in out if m.startswith("tf_lifelong")}


def test_the_reader_finds_the_libraries():
  assert "//tf_lifelong:config" in LIBRARIES
  assert "tf_lifelong/config/__init__.py" in LIBRARIES["//tf_lifelong/config:config"]["srcs"]
  assert "//tf_lifelong:config" in LIBRARIES["//tf_lifelong:runtime"]["deps"]


def test_every_module_is_in_one_library():
  owners = {}
  for target, library in LIBRARIES.items():
    for src in library["srcs"]:
      owners.setdefault(src, []).append(target)
  assert [m for m in _modules() if m not in owners] == []
  assert {m: t for m, t in owners.items() if len(t) > 1} == {}


def test_each_library_depends_on_what_its_modules_import():
  missing = []
  for target, library in LIBRARIES.items():
    available = {s for t in _reachable(target) for s in LIBRARIES.get(t, {}).get("srcs", [])}
    for src in library["srcs"]:
      for module in sorted(_imported(src)):
        needed = _file_of(module)
        if needed in (None, *_PACKAGE_INITS) or (src, module) in LAZY:
          continue  # a package's __init__: Bazel makes any that a runfiles tree lacks
        if needed not in available:
          missing.append(f"{target}: {src} imports {module} ({needed} is in none of its deps)")
  assert missing == []
