"""Installs tf_lifelong into an existing environment: `pip install .` (extras below).

pyproject.toml names the build (setuptools, PEP 517); everything else is here.

install_requires holds version ranges believed to work (README.md, "Versions");
the exact set tested here is constraints.txt: `pip install -c constraints.txt .`.
"""

import re

import setuptools

with open("tf_lifelong/__init__.py") as f:
  VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

with open("README.md", encoding="utf-8") as f:
  LONG_DESCRIPTION = f.read()

# Ranges: the low ends were seen working on Python 3.10 (TF 2.19.1), the high ones are
# constraints.txt's set on 3.11 and 3.12 (TF 2.21); see README.md, "Versions".
INSTALL_REQUIRES = [
  "tensorflow>=2.19.1,<2.22",
  "tf-keras>=2.19,<2.22",  # TFP 0.25 imports tf_keras at import time; it matches TF's minor.
  "keras>=3.12,<4",
  "tensorflow-probability>=0.25,<0.26",  # not [tf]: that extra pulls unpinned packages.
  "tensorflow-datasets>=4.9.9,<5",
  "importlib_resources>=6",  # tfds imports it without declaring it.
  "tensorboard>=2.19,<2.22",  # tf.summary.image needs it.
  "absl-py>=2,<3",
  "h5py>=3.11,<3.15",  # TF 2.21 needs h5py < 3.15.
  "numpy>=1.26,<3",
  "scipy>=1.13",  # SVHN .mat files; image rotation.
  "pillow>=10",  # folder datasets; PNG output.
]
TUNE = ["keras-tuner>=1.4.7,<2"]  # tf-lifelong-tune
FIGURES = ["matplotlib>=3.8"]  # tf-lifelong-experiment's report figures
CONSOLE_SCRIPTS = [
  f"tf-lifelong-{tool}=tf_lifelong.cli.{tool}:entry"
  for tool in ("train", "export", "tune", "experiment", "benchmark")
]

setuptools.setup(
  name="tf_lifelong",
  version=VERSION,
  description="Lifelong Generative Modeling (student-teacher VAE) in TensorFlow 2 / Keras 3",
  long_description=LONG_DESCRIPTION,
  long_description_content_type="text/markdown",
  license_expression="Apache-2.0",  # SPDX (PEP 639): no license classifier.
  license_files=["LICENSE"],
  python_requires=">=3.10,<3.14",
  packages=setuptools.find_packages(include=["tf_lifelong", "tf_lifelong.*"]),
  install_requires=INSTALL_REQUIRES,
  extras_require={
    "tune": TUNE,
    "figures": FIGURES,
    "all": TUNE + FIGURES,
    # What the tests need (scripts/setup: pip install -c constraints.txt -e '.[test]').
    "test": [
      "pytest>=8",
      "pytest-xdist>=3.5",
      "hypothesis>=6.100",
      "ruff>=0.17.6,<0.18",  # the formatter's output changes between minor versions.
      *TUNE,
      *FIGURES,
    ],
    # On a CUDA host: pip install '.[cuda]'
    "cuda": ["tensorflow[and-cuda]>=2.19.1,<2.22"],
  },
  entry_points={"console_scripts": CONSOLE_SCRIPTS},
  classifiers=[
    "Programming Language :: Python :: 3",
    "Programming Language :: Python :: 3.10",
    "Programming Language :: Python :: 3.11",
    "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13",
    "Topic :: Scientific/Engineering :: Artificial Intelligence",
  ],
)
