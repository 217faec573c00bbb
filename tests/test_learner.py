"""The Learner fed from Python, one interval at a time, on real MNIST digits (a tiny model).

Three intervals from numpy arrays and from a tf.data.Dataset, with a repeat by
name; the one-line errors of bad input; a user's Keras callback; a learner
opened again from its workdir that goes on; the checkpoint retention.
"""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import paths
from tf_lifelong import Learner
from tf_lifelong import config as config_lib
from tf_lifelong.data import sources
from tf_lifelong.state import checkpoints

TINY = config_lib.Config(
  batch_size=32,
  hidden_units=32,
  continuous_dim=4,
  eval_every=10,
  max_steps_per_interval=20,
  patience=2,
  validation_synthetic_examples=50,
  seed=5,
  keep_checkpoints=2,
)
"""Two evaluations per interval of 20 steps; the newest two interval checkpoints kept."""
TRAINED_BELOW = 500.0
"""Nats: the test -ELBO of digit 7 after the three intervals is under this. Measured
(2026-12-07, AMD EPYC): 458.7 trained; an untrained model of this size scores about 543."""
IWAE_NOISE = 5.0
"""Nats by which -IWAE (K = 4, a tighter bound) may exceed the one-sample -ELBO estimate
through sampling noise alone (measured: -IWAE 406.2 against 458.7)."""


@pytest.fixture(scope="module")
def digits():
  """300 training images of MNIST digits 3 and 7 (uint8 [N, 28, 28, 1]), and 100 test ones."""
  mnist = sources.load_source("mnist", paths.DATA_ROOT)
  train, test = mnist.train, mnist.test
  return {
    d: (train.images[train.labels == d][:300], test.images[test.labels == d][:100]) for d in (3, 7)
  }


class Counter(keras.callbacks.Callback):
  """Counts the `fit` calls, epochs and batch ends it sees, per interval (the learner's
  row count when they happen)."""

  def __init__(self, learner_rows):
    super().__init__()
    self.rows = learner_rows
    self.fits: dict[int, int] = {}
    self.epochs: dict[int, int] = {}
    self.batches: dict[int, int] = {}

  def _count(self, what: dict) -> None:
    index = len(self.rows())
    what[index] = what.get(index, 0) + 1

  def on_train_begin(self, logs=None):
    self._count(self.fits)

  def on_epoch_end(self, epoch, logs=None):
    self._count(self.epochs)

  def on_train_batch_end(self, batch, logs=None):
    self._count(self.batches)


@pytest.fixture(scope="module")
def fed(digits, tmp_path_factory):
  """Three intervals: digit 3 (numpy), digit 7 (tf.data of (images, labels)), 3 again (floats)."""
  workdir = str(tmp_path_factory.mktemp("learner"))
  learner = Learner(TINY, workdir, out=open(os.devnull, "w"))
  counter = Counter(lambda: learner.history)
  categories = []
  three, seven = digits[3][0], digits[7][0]
  learner.learn(three, name="three", callbacks=[counter])
  categories.append(learner.num_categories)
  anchors = [int(learner.ctx.student.anchor_component.numpy())]
  data = tf.data.Dataset.from_tensor_slices((seven, np.full(len(seven), 7))).batch(50)
  learner.learn(data, name="seven", callbacks=[counter])
  categories.append(learner.num_categories)
  anchors.append(int(learner.ctx.student.anchor_component.numpy()))
  learner.learn(three[:200, ..., 0].astype(np.float32) / 255.0, name="three", callbacks=[counter])
  categories.append(learner.num_categories)
  counter.anchors = [*anchors, int(learner.ctx.student.anchor_component.numpy())]
  return learner, workdir, categories, counter


def test_categories_grow_by_name(fed):
  learner, _, categories, _ = fed
  assert categories == [1, 2, 2]
  assert learner.distributions == ["three", "seven"]
  rows = learner.history
  assert [r["is_new"] for r in rows] == [True, True, False]
  assert [r["name"] for r in rows] == ["three", "seven", "three"]
  assert [r["distribution"] for r in rows] == [0, 1, 0]
  assert all(r["steps"] == 20 for r in rows)


def test_each_interval_anchors_its_component(fed):
  """The component anchor's target for real rows: a new name's category (J - 1), a repeated
  name's own (three: 0)."""
  assert fed[3].anchors == [0, 1, 0]


def test_a_user_callback_sees_every_interval(fed):
  """One `fit` per interval of 20 steps: an epoch per evaluation period (eval_every 10), a
  batch end per execution of steps_per_execution steps."""
  learner, _, _, counter = fed
  per_execution = learner.config.steps_per_execution
  assert counter.fits == {0: 1, 1: 1, 2: 1}
  assert counter.epochs == {0: 2, 1: 2, 2: 2}
  assert counter.batches == dict.fromkeys((0, 1, 2), 20 // per_execution)


def test_evaluate_sample_encode_reconstruct(fed, digits):
  learner = fed[0]
  score = learner.evaluate(digits[7][1], iwae_samples=4)
  assert score["num_images"] == 100 and sum(score["components"]) == 100
  assert len(score["components"]) == 2
  # Trained: under the untrained model's score; IWAE (K = 4) at least the ELBO, up to noise.
  assert 0 < score["neg_elbo"] < TRAINED_BELOW, score
  assert 0 < -score["iwae"] <= score["neg_elbo"] + IWAE_NOISE, score
  images = learner.sample(5, component=1, seed=0)
  assert images.shape == (5, 28, 28, 1) and images.min() >= 0 and images.max() <= 1
  np.testing.assert_array_equal(images, learner.sample(5, component=1, seed=0))
  enc = learner.encode(digits[3][1][:6])
  assert enc["probs"].shape == (6, 2) and enc["mean"].shape == (6, 4)
  np.testing.assert_allclose(enc["probs"].sum(1), 1.0, rtol=1e-5)
  assert learner.reconstruct(digits[3][1][:6]).shape == (6, 28, 28, 1)


def _one_line(excinfo):
  message = str(excinfo.value)
  assert "\n" not in message and message, message
  return message


def test_bad_input_gets_one_clear_error(fed, digits, tmp_path):
  learner = fed[0]
  three = digits[3][0]
  with pytest.raises(sources.DataError) as e:
    learner.learn(np.zeros((40, 32, 32, 3), np.uint8), name="rgb")
  assert "images are [32, 32, 3] but this model takes [28, 28, 1]" in _one_line(e)
  nan = three[:40].astype(np.float32) / 255.0
  nan[0, 0, 0, 0] = np.nan
  with pytest.raises(sources.DataError) as e:
    learner.learn(nan, name="nan")
  assert "NaN" in _one_line(e)
  with pytest.raises(sources.DataError) as e:
    learner.learn(three[:40].astype(np.float32), name="bright")  # 0..255 as floats
  assert "float images must lie in [0, 1]" in _one_line(e)
  with pytest.raises(sources.DataError) as e:
    learner.learn(tf.data.Dataset.from_tensor_slices(three[:0]), name="empty")
  assert "empty" in _one_line(e)
  with pytest.raises(ValueError) as e:
    learner.learn(three[:40], name="never", new=False)
  assert "'never' was never seen" in _one_line(e)
  with pytest.raises(ValueError) as e:
    learner.learn(three[:40], name="seven", new=True)
  assert "seen before" in _one_line(e)
  assert len(learner.history) == 3 and learner.num_categories == 2  # Nothing was learned.
  fresh = Learner(TINY, str(tmp_path / "fresh"), out=open(os.devnull, "w"))
  with pytest.raises(ValueError) as e:
    fresh.learn(three[:40], new=False)
  assert "new=False on the first interval" in _one_line(e)
  with pytest.raises(Exception, match="holds a learner already") as e:
    Learner(TINY, fed[1], out=open(os.devnull, "w"))


def test_load_goes_on_and_keeps_the_disk_bounded(fed, digits):
  first, workdir, _, _ = fed
  first.close()  # One writer per workdir: the first learner frees it.
  learner = Learner.load(workdir, out=open(os.devnull, "w"))
  assert learner.num_categories == 2 and learner.distributions == ["three", "seven"]
  assert len(learner.history) == 3
  row = learner.learn(digits[7][0][:200], new=False)  # A repeat with no name.
  assert row["interval"] == 3 and not row["is_new"] and learner.num_categories == 2
  # Its component is the teacher's vote: the argmax of its mean posterior on the interval's
  # training images (up to 1000).
  teacher, train = learner.ctx.student.teacher, learner.ctx.interval.distribution.train
  vote = tf.nn.softmax(teacher.encode(train.images[:1000] / 255.0)[0]).numpy().mean(0)
  assert int(learner.ctx.student.anchor_component.numpy()) == int(np.argmax(vote))
  ends = [n for n in checkpoints.available(workdir) if re.fullmatch(r"interval-\d+", n)]
  assert ends == ["interval-002", "interval-003"]  # keep_checkpoints=2
  assert checkpoints.read_state(workdir)["checkpoint"] == "interval-003"
  path = learner.export()
  assert os.path.isdir(path) and path == os.path.join(os.path.abspath(workdir), "export")


def _readme_example() -> str:
  with open(os.path.join(paths.REPO, "README.md")) as f:
    text = f.read()
  section = text.split("## Use it from Python", 1)[1]
  return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_the_readme_python_example_runs(tmp_path):
  """The README's example, as written, in a fresh process (Debian's Fashion-MNIST)."""
  code = _readme_example()
  assert "Learner.load" in code and "learner.learn" in code
  assert "images = learner.sample(8, component=1)" in code
  keep = "\nimport numpy\nnumpy.save('trousers.npy', numpy.asarray(images))\n"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=paths.REPO)
  result = subprocess.run(
    [sys.executable, "-c", code + keep],
    cwd=tmp_path,
    capture_output=True,
    text=True,
    timeout=600,
    env=env,
  )
  assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
  lines = [line for line in result.stdout.splitlines() if not line.startswith(("interval", " "))]
  assert "['T-shirt/top', 'Trouser'] 2" in lines, result.stdout[-2000:]
  assert os.path.isfile(tmp_path / "runs" / "notebook" / "export" / "saved_model.pb")
  rows = (tmp_path / "runs" / "notebook" / "metrics.csv").read_text().splitlines()
  assert len(rows) == 4  # the header and three intervals
  # "images = learner.sample(8, component=1)  # ...: trousers": a classifier of all ten
  # Fashion-MNIST classes, trained on real training images, says so.
  predicted = _fashion_classifier()(np.load(tmp_path / "trousers.npy"))
  assert np.mean(predicted == 1) >= 7 / 8, predicted


def _fashion_classifier():
  """A small MLP of the ten Fashion-MNIST classes (10,000 training images, 2 epochs; about
  0.84 test accuracy, Trouser about 0.95): images in [0, 1] -> class ids."""
  train = sources.load_source("fashion_mnist").train
  keras.utils.set_random_seed(0)
  model = keras.Sequential(
    [keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(256, "relu")]
    + [keras.layers.Dense(10)]
  )
  model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(train.images[:10000] / 255.0, train.labels[:10000], epochs=2, verbose=0)
  return lambda x: np.argmax(model.predict(x, verbose=0), -1)
