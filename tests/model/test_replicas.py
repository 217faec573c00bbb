"""1 and 2 replicas compute the same loss and gradients (method.md section 4, Reduction).

MirroredStrategy over two logical CPU devices needs the devices configured
before TensorFlow starts, so the check runs in a subprocess
(replicas_check.py). It feeds the same global batch, omega mask and noise to
one device and, split in halves, to two replicas; batch norm is synchronised
and the MI marginal is all-reduced, so they agree to float precision (without
either, the gradients differ by 1e-2 .. 1).
"""

import json
import math
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope="module")
def report():
  env = dict(
    os.environ,
    PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    TF_CPP_MIN_LOG_LEVEL="2",
  )
  out = subprocess.run(
    [sys.executable, os.path.join(HERE, "replicas_check.py")],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert out.returncode == 0, out.stderr[-3000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_replicas_same_loss_and_gradients(report):
  assert report["replicas"] == 2
  assert report["num_grads"] == 20
  assert report["loss_2"] == pytest.approx(report["loss_1"], rel=1e-5)
  assert report["grad_max_abs_diff"] <= 1e-5 * max(1.0, report["grad_max_abs"])


def test_fit_under_mirrored_strategy(report):
  assert report["fit_pi"] == pytest.approx(report["expected_pi"])  # trackers are global means
  assert math.isfinite(report["fit_loss"]) and report["fit_loss"] > 0  # a -ELBO: positive
  assert report["fit_steps"] == 4  # one update per batch of the epoch
  assert report["student_max_change"] > 1e-6  # the student learned
  assert report["teacher_max_change"] == 0.0  # the teacher did not
