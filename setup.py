"""Installs tf_lifelong. Pins: see README.md, section "Pinned versions"."""

import re

import setuptools

with open("tf_lifelong/__init__.py") as f:
  VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

# The stack, pinned to versions seen working together on Python 3.11 (CPU).
INSTALL_REQUIRES = [
  "tensorflow==2.21.0",
  "tf-keras==2.21.0",  # TFP 0.25 imports tf_keras at import time.
  "keras==3.15.1",
  "tensorflow-probability==0.25.0",  # not [tf]: that extra pulls unpinned packages.
  "tensorflow-datasets==4.9.10",
  "importlib_resources==7.1.0",  # tfds 4.9.10 imports it on 3.11 without declaring it.
  "keras-tuner==1.4.8",
  "tensorboard==2.21.0",  # tf.summary.image needs it.
  "absl-py==2.5.1",
  "h5py==3.14.0",  # TF 2.21 needs h5py < 3.15.
  "numpy==2.4.6",
  "scipy==1.17.1",  # SVHN .mat files; image rotation.
  "pillow==13.0.0",  # folder datasets; PNG output.
  "matplotlib==3.11.2",  # report figures.
]

setuptools.setup(
  name="tf_lifelong",
  version=VERSION,
  description="Lifelong Generative Modeling (student-teacher VAE) in TensorFlow 2 / Keras 3",
  python_requires=">=3.11,<3.12",
  packages=setuptools.find_packages(include=["tf_lifelong", "tf_lifelong.*"]),
  install_requires=INSTALL_REQUIRES,
  extras_require={
    "test": [
      "pytest==9.2.0",
      "pytest-xdist==3.8.0",
      "hypothesis==6.170.17",
      "ruff==0.17.6",
    ],
    # On a CUDA host: pip install -e .[cuda]
    "cuda": ["tensorflow[and-cuda]==2.21.0"],
  },
  entry_points={"console_scripts": ["tf-lifelong-train=tf_lifelong.cli.train:entry"]},
)
