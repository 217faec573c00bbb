"""Every component draws its own distribution (issue #32): real MNIST, the default settings.

Three digits, one interval each, at a small budget with the default objective and hand-over.
A classifier that this test trains on the digits' real training images must put at least
`OWN_SHARE` of each component's samples in that component's own digit. The defaults before
the component anchor failed it (`STEPS`; docs/results/README.md, "Consistent sampling").
"""

import dataclasses

import keras
import numpy as np
import pytest

from tests import paths
from tf_lifelong import Learner
from tf_lifelong import config as config_lib
from tf_lifelong.data import sources

DIGITS = (2, 3, 8)
OWN_SHARE = 0.9
STEPS = 600
"""Steps per interval. Measured (2026-12-07, seed 1, AMD EPYC): own shares 0.985, 0.97, 0.95
with the defaults; 0.93, 0.91, 0.82 with `anchor_weight=0` (the defaults before issue #32),
which fails. Look-alike digits: 3 and 8 share strokes with 2 (in the ten-digit stream 3 or 8
took over digit 2's component; docs/results/README.md)."""


@pytest.fixture(scope="module")
def mnist():
  return sources.load_source("mnist", paths.DATA_ROOT)


def _index(labels: np.ndarray) -> np.ndarray:
  """Each digit's position in DIGITS (the classifier's output)."""
  return np.array([DIGITS.index(int(d)) for d in labels], np.int64)


def _classifier(mnist) -> keras.Model:
  """An MLP over DIGITS (output k = DIGITS[k]) fitted on real training images; >= 0.95."""
  train, test = mnist.train, mnist.test
  pick = np.isin(train.labels, DIGITS)
  x = train.images[pick].astype("float32") / 255.0
  y = _index(train.labels[pick])
  keras.utils.set_random_seed(0)
  model = keras.Sequential(
    [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(128, "relu")]
    + [keras.layers.Dense(len(DIGITS))]
  )
  model.compile(
    "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
  )
  model.fit(x, y, batch_size=128, epochs=1, verbose=0)
  pick = np.isin(test.labels, DIGITS)
  _, accuracy = model.evaluate(test.images[pick] / 255.0, _index(test.labels[pick]), verbose=0)
  assert accuracy >= 0.95
  return model


def own_shares(learner, classifier, n: int = 200) -> list[float]:
  """Per component j: the share of its n samples that the classifier calls DIGITS[j]."""
  shares = []
  for j in range(len(DIGITS)):
    images = np.asarray(learner.sample(n, component=j, seed=j))
    predicted = np.argmax(classifier.predict(images, verbose=0), -1)
    shares.append(float(np.mean(predicted == j)))
  return shares


def test_each_component_draws_its_own_digit_with_the_defaults(mnist, tmp_path):
  config = dataclasses.replace(config_lib.Config(), max_steps_per_interval=STEPS, seed=1)
  learner = Learner(config, workdir=str(tmp_path / "run"))
  train = mnist.train
  for digit in DIGITS:
    learner.learn(train.images[train.labels == digit], name=f"digit {digit}")
  shares = own_shares(learner, _classifier(mnist))
  assert min(shares) >= OWN_SHARE, shares
