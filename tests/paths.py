"""Where the tests find real data, in a checkout, a CI clone and under Bazel.

The shared data lie beside the repository (`../shared`); TF_LIFELONG_SHARED
overrides that. Under Bazel the test files are symlinks into the source tree,
so the real path of this file still leads to the checkout.
"""

import os

REPO = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
SHARED = os.environ.get("TF_LIFELONG_SHARED", os.path.join(os.path.dirname(REPO), "shared"))
DATA_ROOT = os.path.join(SHARED, "data")
"""A --data_dir root: holds mnist/ with the four IDX .gz files."""
MNIST_DIR = os.path.join(DATA_ROOT, "mnist")
FASHION_DIR = "/usr/share/datasets/fashion-mnist"
"""Where Debian's dataset-fashion-mnist package puts its files."""
