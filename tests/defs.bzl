"""pytest_test: a py_test that runs one pytest module through tests/pytest_runner.py."""

def pytest_test(name, src, deps = [], data = [], tags = [], size = "medium", **kwargs):
    native.py_test(
        name = name,
        srcs = ["//tests:pytest_runner.py", src] + native.glob(["conftest.py"]),
        main = "//tests:pytest_runner.py",
        args = ["$(location %s)" % src],
        deps = deps + ([] if ("//tests:paths" in deps or ":paths" in deps) else ["//tests:paths"]),
        data = data,
        tags = tags,
        size = size,
        python_version = "PY3",
        **kwargs
    )
