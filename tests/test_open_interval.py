"""The open task-free interval in bounded memory (train/open_interval.py, `--interval_buffer`).

A snapshot round trip and a record from before the reservoirs (its chunk files) on
hand-made arrays; then a learner fed a long stretch of one MNIST digit: the open
interval never holds more than `interval_buffer` examples, W/detect/ holds one snapshot
of fixed size, and a learner reopened half-way gives the uninterrupted run's reservoir
and decisions exactly.
"""

import os

import numpy as np
import pytest

from tests import paths
from tf_lifelong import Learner
from tf_lifelong import config as config_lib
from tf_lifelong.data import sources
from tf_lifelong.train import chunk_files, open_interval
from tf_lifelong.train.open_interval import OpenInterval

BOUND = config_lib.Config(
  boundaries="detect",
  interval_buffer=500,
  chunk_size=200,
  chunk_steps=20,
  batch_size=64,
  hidden_units=64,
  continuous_dim=4,
  eval_every=20,
  checkpoint_every=20,
  max_steps_per_interval=2000,
  patience=1,
  validation_synthetic_examples=100,
  sampling_samples=0,
  threads=0,
  seed=3,
)
"""Chunks of 200 ones, a checkpoint after each chunk, at most 500 examples kept."""
CHUNKS = 12


def _interval(**kw):
  interval = OpenInterval(index=2, ident=5, component=1, decision="new", first_chunk=4, **kw)
  interval.make_buffers(capacity=50, validation_fraction=0.2, seed=7)
  return interval


def _pieces(count, rows=30):
  rng = np.random.default_rng(0)
  return [rng.integers(0, 255, size=(rows, 3, 2, 1), dtype=np.uint8) for _ in range(count)]


def test_the_reservoirs_split_the_bound_and_their_snapshot_restores_them(tmp_path):
  interval = _interval()
  assert (interval.train.capacity, interval.held.capacity) == (40, 10)
  for c, piece in enumerate(_pieces(5), start=4):
    interval.add((c, 0), piece[:24], piece[24:])
    interval.chunks.append(c)
  assert (len(interval.train), len(interval.held)) == (40, 10)
  assert (interval.train.seen, interval.held.seen) == (120, 30)
  open_interval.persist(str(tmp_path), interval, chief=True)
  assert interval.snapshot == "interval-002-000005.npz"
  back = open_interval.reopen(str(tmp_path), interval.meta(), BOUND)
  for which in ("train", "held"):
    np.testing.assert_array_equal(back.split(which).images, interval.split(which).images)
    assert getattr(back, which).seen == getattr(interval, which).seen
  # Only the snapshots some record names stay.
  open_interval.prune(str(tmp_path), [{"detect": {"open": interval.meta(), "last": None}}])
  assert os.listdir(tmp_path / "detect") == ["interval-002-000005.npz"]
  open_interval.prune(str(tmp_path), [{"phase": "end"}])
  assert os.listdir(tmp_path / "detect") == []


def test_a_record_from_before_the_reservoirs_reads_its_chunk_files(tmp_path):
  pieces = _pieces(3, rows=10)
  for c, piece in enumerate(pieces):
    chunk_files.write(str(tmp_path), c, piece[:8], piece[8:], start=5 * (c == 2))
  meta = _interval().meta()
  meta.update(chunks=[1, 2], starts=[0, 5], carried=[0], snapshot=None)
  back = open_interval.reopen(str(tmp_path), meta, BOUND)  # bound 500: nothing dropped
  np.testing.assert_array_equal(back.split("train").images, np.concatenate([p[:8] for p in pieces]))
  np.testing.assert_array_equal(back.split("held").images, np.concatenate([p[8:] for p in pieces]))
  os.remove(chunk_files.path(str(tmp_path), 2, 5))
  with pytest.raises(sources.DataError, match="chunk file .* is unreadable"):
    open_interval.reopen(str(tmp_path), meta, BOUND)


def test_interval_buffer_too_small_to_train_on_is_one_config_error():
  with pytest.raises(config_lib.ConfigError, match="interval_buffer .* at least batch_size"):
    BOUND.replace_checked(interval_buffer=70)  # 63 training examples < 64


@pytest.fixture(scope="module")
def ones():
  train = sources.load_source("mnist", paths.DATA_ROOT).train
  images = train.images[train.labels == 1]
  return [images[i * 200 : (i + 1) * 200] for i in range(CHUNKS)]


def _snapshots(workdir):
  folder = os.path.join(workdir, chunk_files.CHUNKS)
  return {n: os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)}


def test_an_endless_stretch_stays_within_the_bound_and_resumes_exactly(ones, tmp_path):
  devnull = open(os.devnull, "w")
  whole = Learner(BOUND, str(tmp_path / "whole"), out=devnull)
  fed, sizes = 0, []
  for chunk in ones:
    whole.observe(chunk)
    fed += len(chunk)
    interval = whole._task_free.open
    kept = len(interval.train) + len(interval.held)
    assert kept <= BOUND.interval_buffer
    if interval.first_chunk == 0:  # One digit: it should stay one interval.
      assert interval.train.seen + interval.held.seen == fed
    snapshots = _snapshots(str(tmp_path / "whole"))
    assert len(snapshots) == 1, snapshots  # the latest checkpoint's; older ones pruned
    sizes.append(max(snapshots.values()))
  assert whole.num_categories == 1
  # Full from chunk 3 on (600 > 500): the snapshot stays the same size, within the bound.
  assert max(sizes[3:]) - min(sizes[3:]) < 1024, sizes
  assert max(sizes) < BOUND.interval_buffer * 28 * 28 + 4096
  reference = whole._task_free.open
  whole.close()

  half = Learner(BOUND, str(tmp_path / "half"), out=devnull)
  for chunk in ones[:7]:
    half.observe(chunk)
  half.close()  # as if killed: reopened from its latest (chunk 6) checkpoint
  again = Learner.load(str(tmp_path / "half"), out=devnull)
  assert again.chunks_observed == 7
  for chunk in ones[7:]:
    again.observe(chunk)
  resumed = again._task_free.open
  for which in ("train", "held"):
    np.testing.assert_array_equal(resumed.split(which).images, reference.split(which).images)

  def key(learner):
    return [(d["chunk"], d["start"], d["decision"], d["component"]) for d in learner.decisions]

  assert key(again) == key(whole)
  again.close()
