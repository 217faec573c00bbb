"""Using a learner's model: evaluation on given data, samples, codes, reconstructions and the
serving export. A part of `Learner` (train/learner.py)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import tensorflow as tf

from tf_lifelong import runtime
from tf_lifelong.data import inputs, transforms
from tf_lifelong.evaluation import evaluate
from tf_lifelong.model import batching, inference
from tf_lifelong.state import checkpoints
from tf_lifelong.train import milestones, training
from tf_lifelong.train.context import _scratch


class ModelAccess:
  """What a user asks of the learner's model: evaluate, sample, encode, reconstruct, export."""

  def _need_student(self):
    if self.ctx.student is None:
      raise ValueError("the learner has learned nothing yet: call learn(data) first")
    return self.ctx.student

  def check_shape(self, shape) -> None:
    """Raises DataError unless images of `shape` ([H, W, C]) fit the model (if there is one)."""
    student = self.ctx.student
    if student is not None and tuple(shape) != tuple(student.image_shape):
      raise inputs.DataError(
        f"data: images are {list(shape)} but this model takes {list(student.image_shape)}"
      )

  def _images(self, images: Any) -> np.ndarray:
    self._need_student()
    split, _, _ = inputs.as_split(images, "images", self.config.data_dir, self.config.download)
    self.check_shape(split.images.shape[1:])
    return transforms.unit_float(split.images)

  def evaluate(self, data: Any, *, iwae_samples: int = 0) -> dict:
    """Scores `data` (same kinds as `learn`): -ELBO with hard z_d, optional IWAE, components.

    Returns:
      {"neg_elbo": mean nats per image, "iwae": mean IWAE bound on log p(x)
      with `iwae_samples` samples (absent for 0), "components": the count of
      images whose posterior argmax is each component [J], "num_images": N}.
    """
    student, x = self._need_student(), self._images(data)
    out = {
      "neg_elbo": batching.batch_mean(
        lambda b, _: inference.neg_elbo(student, b), x, training.EVAL_BATCH
      ),
      "num_images": len(x),
    }
    if iwae_samples:
      out["iwae"] = batching.batch_mean(
        lambda b, _: inference.iwae_log_likelihood(student, b, iwae_samples, seed=self.config.seed),
        x,
        max(1, 2000 // iwae_samples),
      )
    argmax = evaluate.per_example(lambda b: inference.posterior_argmax(student, b), x)
    out["components"] = np.bincount(argmax, minlength=self.num_categories).tolist()
    return out

  def sample(self, n: int, component: int | None = None, seed: int | None = None) -> np.ndarray:
    """n images float32 [n, H, W, C] in [0, 1] (Bernoulli means); component None: uniform."""
    student = self._need_student()
    if component is not None and not 0 <= component < self.num_categories:
      raise ValueError(f"component must be in [0, {self.num_categories}), got {component}")
    return np.asarray(student.sample(int(n), component=component, seed=seed))

  def encode(self, images: Any) -> dict:
    """Posterior summaries: probs [N, J], component [N], mean [N, F], stddev [N, F]."""
    student, x = self._need_student(), self._images(images)
    logits, loc, scale = student.encoder(tf.convert_to_tensor(x), training=False)
    return {
      "probs": tf.nn.softmax(logits, -1).numpy(),
      "component": tf.argmax(logits, -1).numpy(),
      "mean": loc.numpy(),
      "stddev": scale.numpy(),
    }

  def reconstruct(self, images: Any) -> np.ndarray:
    """Reconstructions [N, H, W, C] in [0, 1] (z_d = argmax, z_c = posterior mean)."""
    student, x = self._need_student(), self._images(images)
    return np.asarray(inference.reconstruct(student, tf.convert_to_tensor(x)))

  def export(self, path: str | None = None) -> str | None:
    """Writes the serving SavedModel (docs/serving.md) to `path` (default workdir/export).

    Into the workdir it writes as the workdir's writer: a closed learner takes the lock
    for the write, then frees it; a read-only one is refused. Elsewhere it needs no lock.

    Returns its absolute path (None on a non-chief worker, which writes nothing).

    Raises:
      RunError: a read-only learner's export into its workdir, another writer holding
        the workdir, a full disk (one line; nothing else is written, the learner goes on).
    """
    from tf_lifelong.serving import export  # noqa: PLC0415

    student = self._need_student()
    state = self._state("end")
    metadata = checkpoints.export_metadata(self.config, {**state, "checkpoint": None})

    index = self.ctx.interval.index if self.ctx.interval else len(self.ctx.rows) - 1

    def write(folder: str, target: str | None) -> str:
      return export.export(
        student.encoder,
        student.decoder,
        num_categories=int(student.num_categories),
        continuous_dim=self.config.continuous_dim,
        image_shape=tuple(student.image_shape),
        metadata=metadata,
        path=target or os.path.join(folder, "export"),
        written=lambda: milestones.reached("export", index),
      )

    if not runtime.is_chief(self._strategy):
      # A non-chief worker takes part in the saving's collectives and keeps nothing (not
      # ctx.chief, which is False for a read-only learner too: that one exports as told).
      with _scratch() as scratch:
        write(scratch, None)
      return None
    with self._writing(path or os.path.join(self.workdir, "export")):
      return write(self.workdir, path)
