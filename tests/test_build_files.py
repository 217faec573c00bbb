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


def _label(dep: str, package: str) -> str:
  """A dep as '//package:name': ':name' is in this package, '//a/b' means '//a/b:b'."""
  if dep.startswith(":"):
    return f"//{package}{dep}"
  if ":" not in dep:
    return f"{dep}:{dep.rsplit('/', 1)[-1]}"
  return dep


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
        deps = [_label(d, package) for d in _strings(args.get("deps"))]
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


def _empty(path: str) -> bool:
  """True for a module with no statement but its docstring (or none at all)."""
  body = ast.parse(open(os.path.join(paths.REPO, path)).read()).body
  if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
    body = body[1:]
  return not body


EMPTY_INITS = tuple(m for m in _modules() if m.endswith("__init__.py") and _empty(m))
"""Package __init__ files Bazel may make itself: empty or only a docstring. An
__init__ with code (tf_lifelong/config/__init__.py: the Config) must be a dep."""


def _imported(path: str) -> set[str]:
  out = set()
  for node in ast.walk(ast.parse(open(os.path.join(paths.REPO, path)).read())):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      for alias in node.names:  # a submodule, else a name the package's __init__ defines
        submodule = f"{node.module}.{alias.name}"
        out.add(submodule if _file_of(submodule) else node.module)
  return {m for m in out if m.startswith("tf_lifelong")}


def _cycle(src: str, needed: str) -> bool:
  """True where a module imports its own package's __init__, which imports it back
  (config/profiles.py's lazy `from tf_lifelong.config import Config`): a cycle Bazel
  cannot express, and the package is loaded whenever the module is."""
  if needed != os.path.join(os.path.dirname(src), "__init__.py"):
    return False
  return src[: -len(".py")].replace("/", ".") in _imported(needed)


def test_the_reader_finds_the_libraries():
  assert "//tf_lifelong:config" in LIBRARIES
  assert "tf_lifelong/config/__init__.py" in LIBRARIES["//tf_lifelong/config:config"]["srcs"]
  assert "//tf_lifelong:config" in LIBRARIES["//tf_lifelong:runtime"]["deps"]
  assert LIBRARIES["//tf_lifelong:config"]["deps"] == ["//tf_lifelong/config:config"]


def test_only_empty_inits_are_skipped():
  assert "tf_lifelong/config/__init__.py" not in EMPTY_INITS  # the Config
  assert "tf_lifelong/cli/__init__.py" in EMPTY_INITS


def test_imports_resolve_to_the_files_they_need():
  # `from P import submodule` needs the submodule; `from P import Name` needs P's __init__.
  assert _imported("tf_lifelong/experiments/figures.py") == {"tf_lifelong.installation"}
  assert "tf_lifelong.config" in _imported("tf_lifelong/runtime.py")
  assert _cycle("tf_lifelong/config/profiles.py", "tf_lifelong/config/__init__.py")
  assert not _cycle("tf_lifelong/runtime.py", "tf_lifelong/config/__init__.py")


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
        if needed in (None, *EMPTY_INITS) or (src, module) in LAZY or _cycle(src, needed):
          continue  # an empty __init__: Bazel makes any that a runfiles tree lacks
        if needed not in available:
          missing.append(f"{target}: {src} imports {module} ({needed} is in none of its deps)")
  assert missing == []
