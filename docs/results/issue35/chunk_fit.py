"""Where a detect run's chunk training time goes (docs/task_free.md, "A fit per chunk").

    python docs/results/issue35/chunk_fit.py W      # W: a new workdir

Feeds 5 chunks of 1000 MNIST 3s to a detect Learner (every chunk trained: 100 steps, ten
calls of Keras' step function of 10 steps each) and prints, per chunk, the seconds of each
call and the step function's tracing count; then the making of a chunk's tf.data pipeline
and its first batch alone; and the step function's calls on one plain iterator before and
after `runtime.reseed` (what task_free.py does before each chunk's steps: it calls
tf.random.set_seed, which clears TensorFlow's kernel caches).
"""

import sys
import time

from keras.src.backend.tensorflow import trainer as tf_trainer

from tf_lifelong import Learner, config, runtime
from tf_lifelong.data import sources, splits
from tf_lifelong.train import training

calls = []
_make = tf_trainer.TensorFlowTrainer.make_train_function


def _timed_make(self, force=False):
  _make(self, force)
  if not getattr(self.train_function, "timed", False):
    inner = self.train_function

    def timed(iterator):
      start = time.perf_counter()
      out = inner(iterator)
      calls.append(time.perf_counter() - start)
      return out

    timed.timed, timed.inner = True, inner
    self.train_function = timed
  return self.train_function


def _tracing_count(function) -> int | None:
  for cell in function.inner.__closure__ or ():
    if hasattr(cell.cell_contents, "experimental_get_tracing_count"):
      return cell.cell_contents.experimental_get_tracing_count()
  return None


def main(workdir: str) -> None:
  tf_trainer.TensorFlowTrainer.make_train_function = _timed_make
  train = sources.load_source("mnist", "../shared/data").train
  x = train.images[train.labels == 3][:5000]
  cfg = config.Config(
    boundaries="detect", threads=1, max_steps_per_interval=2000, sampling_samples=0
  )
  learner = Learner(cfg, workdir)
  for i in range(5):
    first = len(calls)
    learner.observe(x[i * 1000 : (i + 1) * 1000])
    count = _tracing_count(learner.ctx.student.train_function)
    print(f"chunk {i}: calls {[round(c, 3) for c in calls[first:]]}, tracing count {count}")
  for n in (2000, 5000):
    split = splits.Split(train.images[:n], train.labels[:n])
    start = time.perf_counter()
    next(iter(training._real_batches(split, 128, 7)))
    print(f"{n} images: pipeline and first batch {time.perf_counter() - start:.3f} s")
  student = learner.ctx.student
  iterator = iter(training._real_batches(split, student.real_batch_size(128), 7))
  for when in ("before", "after"):
    if when == "after":
      runtime.reseed(0, 1)
    first = len(calls)
    for _ in range(4):
      student.train_function(iterator)
    print(f"one iterator, {when} a reseed: calls {[round(c, 3) for c in calls[first:]]}")


if __name__ == "__main__":
  main(sys.argv[1])
