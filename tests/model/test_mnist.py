"""A few hundred steps on real MNIST lower the validation -ELBO (method.md sections 2-3).

Measured before writing the bounds (digits 0-2, 6,000 training images, batch
64, 282 steps, default Adam lr 1e-4, MLP 512-512, F = 20, seeds 0-2): the
validation -ELBO (hard z_d, 1,000 test images) went from 551 to 222-233 nats.
The test asserts a drop of more than 200 nats and a final value below 300.
"""

import os

import numpy as np
import pytest

from tf_lifelong.model import inference, student

from .conftest import MNIST_DIR, load_mnist, make_config

pytestmark = pytest.mark.real_data  # Without the data it fails, as the suite's policy is.


def test_the_mnist_files_are_there():
  assert os.path.isdir(MNIST_DIR), f"{MNIST_DIR} missing: see ../shared/data/mnist/README"


def test_training_lowers_validation_neg_elbo():
  x, y = load_mnist("train")
  xt, yt = load_mnist("test")
  train, val = x[y < 3][:6000], xt[yt < 3][:1000]
  config = make_config(
    hidden_units=512, continuous_dim=20, batch_size=64, learning_rate=1e-4, seed=0
  )
  model = student.new_student(config, (28, 28, 1))
  before = float(np.mean(inference.neg_elbo(model, val, seed=0)))
  logs = model.fit(train, batch_size=64, epochs=3, verbose=0).history
  after = float(np.mean(inference.neg_elbo(model, val, seed=0)))
  assert int(model.student_step.numpy()) == 282
  assert logs["neg_elbo"][-1] < logs["neg_elbo"][0]
  assert before > 500  # about D log 2 = 543 at initialisation
  assert after < before - 200 and after < 300
  evaluated = model.evaluate(val, batch_size=500, verbose=0, return_dict=True)
  assert evaluated["neg_elbo"] == pytest.approx(after, rel=0.02)
