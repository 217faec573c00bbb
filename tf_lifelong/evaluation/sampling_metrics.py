"""End-of-run metrics of a generative model (method.md section 8), standalone.

- Consistent sampling: for each one-hot z_d = j, decode N samples and classify
  them with a classifier trained on the stream's real labelled training data;
  `sampling_score` turns the predicted classes into purity per component and
  class coverage (pure numpy, testable by hand), `consistent_sampling` does
  the decoding and classifying around it.
- `train_classifier`: that classifier, a small Keras MLP fitted on the train
  splits of the stream's scheduled distributions, labelled by distribution id
  (for mnist / fashion_mnist the class; for rotated_mnist digit x angle; for
  the two-domain streams the domain), with its test accuracy.
- `iwae_log_likelihood`: the importance-weighted bound (K = 100) averaged over
  test images, in batches.
- `interpolation_grid`: decodes z_c on a regular grid over [-3, 3]^2 per z_d
  (F = 2 models, paper fig. 5).

Gradient norms and real / synthetic example counts are per-interval fields of
lifelong's metrics rows; nothing here recomputes them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from tf_lifelong.data import transforms

DEFAULT_MIN_SHARE = 0.1
"""A class covers a component when it gets at least this share of its samples."""


# ------------------------------------------------------------- pure scoring
@dataclasses.dataclass(frozen=True)
class SamplingScore:
  """Purity and coverage of the samples decoded from each one-hot z_d.

  Attributes:
    purity: per component j, the fraction of its samples in its majority class.
    majority: per component j, its majority class (a class id).
    class_ids: the classes the classifier knows, in its output order.
    shares: [J, C] fraction of component j's samples predicted as class c.
    min_share: the threshold of `classes_with_share`.
  """

  purity: tuple[float, ...]
  majority: tuple[int, ...]
  class_ids: tuple[int, ...]
  shares: tuple[tuple[float, ...], ...]
  min_share: float = DEFAULT_MIN_SHARE

  @property
  def mean_purity(self) -> float:
    return float(np.mean(self.purity)) if self.purity else math.nan

  @property
  def distinct_majority_classes(self) -> int:
    """How many classes are the majority class of at least one component."""
    return len(set(self.majority))

  @property
  def classes_with_share(self) -> int:
    """How many classes get at least `min_share` of some component's samples."""
    shares = np.asarray(self.shares).reshape(len(self.purity), len(self.class_ids))
    return int(np.sum(np.any(shares >= self.min_share, axis=0)))

  def to_dict(self) -> dict:
    return {
      "purity": list(self.purity),
      "mean_purity": self.mean_purity,
      "majority_class": list(self.majority),
      "distinct_majority_classes": self.distinct_majority_classes,
      "classes_with_share": self.classes_with_share,
      "min_share": self.min_share,
      "num_components": len(self.purity),
      "num_classes": len(self.class_ids),
      "class_ids": list(self.class_ids),
      "shares": [list(s) for s in self.shares],
    }


def sampling_score(
  predictions: np.ndarray, class_ids: Sequence[int], min_share: float = DEFAULT_MIN_SHARE
) -> SamplingScore:
  """Scores the predicted classes of the samples of each component.

  Args:
    predictions: int [J, N], the predicted class id of sample n of component j.
    class_ids: every class id the classifier can predict (the columns of the shares).
    min_share: threshold of `SamplingScore.classes_with_share`.

  Returns:
    The SamplingScore. Ties for the majority go to the smallest class id.
  """
  predictions = np.asarray(predictions)
  if predictions.ndim != 2 or predictions.shape[1] == 0:
    raise ValueError(f"predictions must be [J, N] with N >= 1, got {predictions.shape}")
  class_ids = tuple(int(c) for c in class_ids)
  unknown = set(np.unique(predictions).tolist()) - set(class_ids)
  if unknown:
    raise ValueError(f"predicted classes {sorted(unknown)} are not in class_ids")
  ordered = sorted(class_ids)
  counts = np.stack([(predictions == c).sum(axis=1) for c in ordered], axis=1)  # [J, C]
  shares = counts / predictions.shape[1]
  majority = tuple(ordered[i] for i in np.argmax(counts, axis=1))
  columns = [ordered.index(c) for c in class_ids]
  return SamplingScore(
    purity=tuple(float(s) for s in shares.max(axis=1)),
    majority=majority,
    class_ids=class_ids,
    shares=tuple(tuple(float(v) for v in row[columns]) for row in shares),
    min_share=min_share,
  )


# --------------------------------------------------------------- classifier
@dataclasses.dataclass
class Classifier:
  """A trained image classifier over distribution ids.

  Attributes:
    model: Keras model, images [B, H, W, C] in [0, 1] -> logits [B, C].
    class_ids: the class (distribution) id of each output column.
    test_accuracy: accuracy on the test splits of those distributions.
    meta: further facts kept in classifier.json (classifier_cache.py: key, train_seconds).
  """

  model: object
  class_ids: tuple[int, ...]
  test_accuracy: float
  meta: dict = dataclasses.field(default_factory=dict)

  def predict(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Predicted class ids, int [N], of images in [0, 1]."""
    from tf_lifelong.model import batching  # noqa: PLC0415

    index = batching.batch_map(
      lambda x, _: np.argmax(np.asarray(self.model(x, training=False)), -1), images, batch_size
    )
    return np.asarray(self.class_ids)[index.astype(np.int64)]

  def save(self, folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    self.model.save(os.path.join(folder, "classifier.keras"))
    with open(os.path.join(folder, "classifier.json"), "w") as f:
      json.dump(
        {**self.meta, "class_ids": list(self.class_ids), "test_accuracy": self.test_accuracy}, f
      )

  @classmethod
  def load(cls, folder: str) -> Classifier:
    import keras  # noqa: PLC0415

    with open(os.path.join(folder, "classifier.json")) as f:
      info = json.load(f)
    model = keras.models.load_model(os.path.join(folder, "classifier.keras"))
    ids, accuracy = tuple(info.pop("class_ids")), float(info.pop("test_accuracy"))
    return cls(model, ids, accuracy, info)

  @staticmethod
  def exists(folder: str) -> bool:
    return all(
      os.path.exists(os.path.join(folder, n)) for n in ("classifier.keras", "classifier.json")
    )


def labelled(
  stream, split: str, ids: Sequence[int], limit: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
  """Images (float32 in [0, 1]) and distribution ids of `split` of distributions `ids`.

  `limit` caps the examples per distribution (a seeded random subset).
  """
  rng = np.random.default_rng(seed)
  xs, ys = [], []
  for i in ids:
    images = getattr(stream.distributions[i], split).images
    if limit is not None and len(images) > limit:
      images = images[np.sort(rng.choice(len(images), limit, replace=False))]
    xs.append(images)
    ys.append(np.full(len(images), i, np.int64))
  return transforms.unit_float(np.concatenate(xs)), np.concatenate(ys)


def train_classifier(
  stream,
  ids: Sequence[int] | None = None,
  *,
  epochs: int = 3,
  hidden_units: int = 256,
  max_per_class: int | None = 6000,
  seed: int = 0,
) -> Classifier:
  """Fits a small MLP to tell the stream's distributions apart.

  Args:
    stream: a data.streams.Stream.
    ids: the distributions (classes); default the distinct scheduled ones.
    epochs: passes over the training data (Adam, learning rate 1e-3, batch 128).
    hidden_units: width of the two hidden layers.
    max_per_class: cap on training examples per distribution (speed); None: all.
    seed: seeds the subset, the initialisation and the shuffling.

  Returns:
    The Classifier with its accuracy on the test splits of `ids`.
  """
  import keras  # noqa: PLC0415

  ids = tuple(sorted(set(stream.scheduled_ids if ids is None else ids)))
  x, y = labelled(stream, "train", ids, max_per_class, seed)
  index = {c: k for k, c in enumerate(ids)}
  keras.utils.set_random_seed(seed)
  model = keras.Sequential(
    [
      keras.Input(x.shape[1:]),
      keras.layers.Flatten(),
      keras.layers.Dense(hidden_units, activation="relu"),
      keras.layers.Dense(hidden_units, activation="relu"),
      keras.layers.Dense(len(ids)),
    ]
  )
  model.compile(
    keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  )
  model.fit(x, np.vectorize(index.get)(y), batch_size=128, epochs=epochs, shuffle=True, verbose=0)
  classifier = Classifier(model, ids, math.nan)
  x_test, y_test = labelled(stream, "test", ids)
  classifier.test_accuracy = float(np.mean(classifier.predict(x_test) == y_test))
  return classifier


# ------------------------------------------------------------ model metrics
def component_samples(student, n: int, seed: int = 0) -> np.ndarray:
  """Images [J, n, H, W, C] in [0, 1]: row j decodes z_d = e_j with z_c ~ N(0, I)."""
  return np.stack(
    [
      np.asarray(student.sample(n, component=j, seed=seed + j))
      for j in range(int(student.num_categories))
    ]
  )


def consistent_sampling(
  student,
  predict: Callable[[np.ndarray], np.ndarray],
  class_ids: Sequence[int],
  n: int = 100,
  seed: int = 0,
  min_share: float = DEFAULT_MIN_SHARE,
) -> SamplingScore:
  """Decodes `n` samples per one-hot z_d and scores their predicted classes.

  Args:
    student: a LifelongVAE (`sample(n, component, seed)`, `num_categories`).
    predict: images [M, H, W, C] in [0, 1] -> class ids [M] (e.g. Classifier.predict).
    class_ids: every class id `predict` can return.
    n: samples per component.
    seed: sampling seed (component j uses seed + j).
    min_share: see `sampling_score`.
  """
  samples = component_samples(student, n, seed)
  j = samples.shape[0]
  predictions = np.asarray(predict(samples.reshape(j * n, *samples.shape[2:])))
  return sampling_score(predictions.reshape(j, n), class_ids, min_share)


def iwae_log_likelihood(
  model, images: np.ndarray, k: int = 100, batch_size: int = 50, seed: int = 0
) -> float:
  """Mean importance-weighted lower bound on log p(x) (nats) over `images` in [0, 1].

  Each batch of B images costs K * B decoder rows; batch b uses seed + b.
  """
  from tf_lifelong.model import batching, inference  # noqa: PLC0415

  return batching.batch_mean(
    lambda x, b: inference.iwae_log_likelihood(model, x, k, seed=seed + b),
    np.asarray(images, np.float32),
    batch_size,
  )


def interpolation_grid(student, component: int, points: int = 10, limit: float = 3.0) -> np.ndarray:
  """Decoded images [points, points, H, W, C] for z_c on a grid over [-limit, limit]^2.

  Row r varies z_c[0] (from -limit to limit), column c varies z_c[1]; z_d is
  the one-hot `component`. Needs a model with continuous_dim == 2.
  """
  import tensorflow as tf  # noqa: PLC0415

  if int(student.continuous_dim) != 2:
    raise ValueError(f"interpolation needs continuous_dim 2, got {student.continuous_dim}")
  axis = np.linspace(-limit, limit, points, dtype=np.float32)
  rows, cols = np.meshgrid(axis, axis, indexing="ij")
  z_c = np.stack([rows.ravel(), cols.ravel()], -1)
  z_d = np.zeros([len(z_c), int(student.num_categories)], np.float32)
  z_d[:, component] = 1.0
  logits = student.decoder(tf.constant(np.concatenate([z_d, z_c], -1)), training=False)
  images = np.asarray(tf.sigmoid(logits))
  return images.reshape(points, points, *images.shape[1:])
