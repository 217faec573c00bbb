"""End-of-run metrics against hand-computed cases, with fake models and classifiers."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tf_lifelong.data.sources import Split
from tf_lifelong.data.streams import Distribution, Interval, Stream
from tf_lifelong.evaluation import sampling_metrics as sm
from tf_lifelong.experiments import extras


# --------------------------------------------------------------- scoring
def test_sampling_score_by_hand():
  # Component 0: three 1s and a 2; component 1: two 2s and two 0s (a tie, 0 wins).
  score = sm.sampling_score(
    np.array([[1, 1, 1, 2], [2, 2, 0, 0]]), class_ids=(2, 0, 1), min_share=0.3
  )
  assert score.purity == (0.75, 0.5)
  assert score.majority == (1, 0)
  assert score.mean_purity == pytest.approx(0.625)
  assert score.distinct_majority_classes == 2
  # Shares in class_ids order (2, 0, 1).
  assert score.shares == ((0.25, 0.0, 0.75), (0.5, 0.5, 0.0))
  # Class 2 reaches 0.3 only in component 1; 0 and 1 in one component each.
  assert score.classes_with_share == 3
  assert (
    sm.sampling_score(
      np.array([[1, 1, 1, 2], [2, 2, 0, 0]]), (2, 0, 1), min_share=0.6
    ).classes_with_share
    == 1
  )
  d = score.to_dict()
  assert d["num_components"] == 2 and d["num_classes"] == 3 and d["majority_class"] == [1, 0]


def test_sampling_score_collapsed_components_cover_one_class():
  score = sm.sampling_score(np.full((4, 10), 7), class_ids=range(10))
  assert score.purity == (1.0,) * 4
  assert score.distinct_majority_classes == 1 and score.classes_with_share == 1


def test_sampling_score_rejects_bad_input():
  with pytest.raises(ValueError, match="not in class_ids"):
    sm.sampling_score(np.array([[0, 5]]), class_ids=(0, 1))
  with pytest.raises(ValueError, match=r"\[J, N\]"):
    sm.sampling_score(np.array([0, 1]), class_ids=(0, 1))


# ------------------------------------------------------------ fake models
class FakeStudent:
  """Decoder logits = 10 * (z_c[0] + index of z_d) on every pixel of 2x2x1 images;
  encoder: uniform z_d, q(z_c|x) = N(0, I) = the prior."""

  continuous_dim = 2
  num_categories = 3

  def sample(self, n, component=None, seed=None):
    value = {0: 0.1, 1: 0.5, 2: 0.9}[component]
    return tf.fill([n, 2, 2, 1], value)

  def encoder(self, x, training=False):
    b = tf.shape(x)[0]
    return (tf.zeros([b, self.num_categories]), tf.zeros([b, 2]), tf.ones([b, 2]))

  def decoder(self, z, training=False):
    shift = tf.cast(tf.argmax(z[:, : self.num_categories], -1), tf.float32)
    value = 10.0 * (z[:, self.num_categories] + shift)
    return tf.tile(value[:, None, None, None], [1, 2, 2, 1])


class ConstantDecoder(FakeStudent):
  def decoder(self, z, training=False):
    return tf.zeros([tf.shape(z)[0], 2, 2, 1])


def test_consistent_sampling_with_a_fake_classifier():
  # Pixel 0.1 -> class 4, 0.5 -> class 4, 0.9 -> class 8: two components share class 4.
  def predict(images):
    return np.where(images.reshape(len(images), -1).mean(-1) > 0.7, 8, 4)

  score = sm.consistent_sampling(FakeStudent(), predict, class_ids=(4, 8), n=5)
  assert score.purity == (1.0, 1.0, 1.0)
  assert score.majority == (4, 4, 8)
  assert score.distinct_majority_classes == 2


def test_iwae_equals_log_likelihood_when_posterior_is_prior():
  # q(z|x) = p(z) and p(x|z) = Bernoulli(0.5) per pixel: every weight is p(x|z) = 0.5^4
  # for any target in [0, 1], so the bound is exact: 4 log 0.5.
  x = np.random.default_rng(0).uniform(size=(7, 2, 2, 1)).astype(np.float32)
  value = sm.iwae_log_likelihood(ConstantDecoder(), x, k=5, batch_size=3)
  assert value == pytest.approx(4 * math.log(0.5), abs=1e-5)
  assert math.isnan(sm.iwae_log_likelihood(ConstantDecoder(), x[:0], k=5))


def test_interpolation_grid_walks_z_c_over_the_square():
  grid = sm.interpolation_grid(FakeStudent(), component=1, points=4, limit=3.0)
  assert grid.shape == (4, 4, 2, 2, 1)
  expected = 1 / (1 + np.exp(-10.0 * (np.linspace(-3, 3, 4) + 1)))  # rows vary z_c[0]
  np.testing.assert_allclose(grid[:, 2, 0, 0, 0], expected, rtol=1e-5)
  np.testing.assert_allclose(grid[1, :, 0, 0, 0], expected[1], rtol=1e-5)  # not z_c[1]
  student = FakeStudent()
  student.continuous_dim = 3
  with pytest.raises(ValueError, match="continuous_dim 2"):
    sm.interpolation_grid(student, 0)


# ------------------------------------------------------------ classifier
def _split(value, n, label):
  images = np.full((n, 4, 4, 1), value, np.uint8)
  images[:, 0, 0, 0] = np.arange(n) % 50  # a little variety
  return Split(images, np.full(n, label, np.int64))


def _stream():
  dists = {
    i: Distribution(i, f"d{i}", _split(v, 60, i), _split(v, 5, i), _split(v, 20, i))
    for i, v in ((3, 10), (7, 240))
  }
  return Stream(
    "fake", (4, 4, 1), dists, (Interval(0, dists[3], True), Interval(1, dists[7], True))
  )


def test_classifier_separates_distributions_and_round_trips(tmp_path):
  stream = _stream()
  classifier = sm.train_classifier(stream, epochs=40, hidden_units=8, seed=1)
  assert classifier.class_ids == (3, 7)
  assert classifier.test_accuracy == 1.0
  images = np.stack([np.full((4, 4, 1), 0.05), np.full((4, 4, 1), 0.95)]).astype(np.float32)
  assert classifier.predict(images).tolist() == [3, 7]
  classifier.save(str(tmp_path))
  assert sm.Classifier.exists(str(tmp_path))
  back = sm.Classifier.load(str(tmp_path))
  assert back.class_ids == (3, 7) and back.test_accuracy == 1.0
  assert back.predict(images).tolist() == [3, 7]


def test_labelled_caps_per_distribution():
  x, y = sm.labelled(_stream(), "train", (3, 7), limit=10)
  assert x.shape == (20, 4, 4, 1) and x.dtype == np.float32 and x.max() <= 1.0
  assert sorted(np.unique(y, return_counts=True)[1]) == [10, 10]


def test_full_test_images_splits_the_cap_evenly():
  stream = _stream()
  assert extras.full_test_images(stream, None).shape[0] == 40
  images = extras.full_test_images(stream, 10)
  assert images.shape[0] == 10
  np.testing.assert_allclose(images[:5, 1, 1, 0], 10 / 255)
  np.testing.assert_allclose(images[5:, 1, 1, 0], 240 / 255)
