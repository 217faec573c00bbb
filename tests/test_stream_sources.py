"""Time-ordered, unlabelled sources end to end (#35 part 1): each through bin/train and
through a Learner, the truth of a labelled npz only written beside the decisions, and
what a stream cannot honour refused in one line (exit 2).

The stream: tests/synthetic.py's bars, 120 of distribution 3 then 120 of 7, in time
order, as an npz of `images` alone, an .npy, or a folder of PNG frames; chunks of 60.
"""

import json
import math
import os

import numpy as np
import pytest

from tests import synthetic, train_helpers
from tests.data.conftest import write_png
from tf_lifelong import Learner
from tf_lifelong import config as config_lib
from tf_lifelong.data import frames
from tf_lifelong.train import lifelong

TINY = dict(
  boundaries="detect",
  chunk_size=60,
  chunk_steps=10,
  batch_size=32,
  hidden_units=32,
  continuous_dim=4,
  eval_every=10,
  max_steps_per_interval=40,
  patience=2,
  eval_examples=50,
  validation_synthetic_examples=50,
  sampling_samples=0,
  seed=3,
  threads=1,
)


IN_PROCESS = dict(TINY, threads=0)
"""TINY for a Learner in the test's own process: TensorFlow may have started there already
(pytest-xdist), so the thread count is left as it is."""


def _flags(**overrides) -> list[str]:
  return [f"--{k}={v}" for k, v in {**TINY, **overrides}.items()]


@pytest.fixture(scope="module")
def bars():
  """240 images in time order (120 of distribution 3, then 120 of 7) and their truth."""
  images, ids = synthetic.images()
  keep = np.concatenate([np.flatnonzero(ids == 3), np.flatnonzero(ids == 7)])
  return images[keep], ids[keep]


def _source(folder, kind: str, images) -> str:
  """`images` written as an npz of `images` alone, an .npy or a folder of frames."""
  os.makedirs(folder, exist_ok=True)
  if kind == "npz":
    np.savez(os.path.join(folder, "day.npz"), images=images)
    return f"npz:{folder}/day.npz"
  if kind == "npy":
    np.save(os.path.join(folder, "day.npy"), images)
    return f"npy:{folder}/day.npy"
  os.makedirs(os.path.join(folder, "day"))
  for i, image in enumerate(images):
    write_png(os.path.join(folder, "day", f"f{i}.png"), image[..., 0])
  return f"folder:{folder}/day"


def _decisions(workdir) -> list[dict]:
  with open(os.path.join(workdir, "boundaries.jsonl")) as f:
    return [json.loads(line) for line in f]


# ------------------------------------------------------------------ bin/train
@pytest.mark.parametrize("kind", ["npz", "npy", "folder"])
def test_bin_train_detects_on_each_unlabelled_stream(tmp_path, bars, kind):
  source = _source(str(tmp_path), kind, bars[0])
  workdir = str(tmp_path / "w")
  done = train_helpers.train(f"--dataset={source}", *_flags(), f"--workdir={workdir}")
  assert done.returncode == 0, done.stderr[-2000:]
  assert "a stream of 240 images, 4 chunks of about 60 examples" in done.stdout
  decisions = _decisions(workdir)
  assert [d["chunk"] for d in decisions] == [0, 1, 2, 3]
  assert decisions[0]["decision"] == "new" and all(d["truth"] is None for d in decisions)
  rows = train_helpers.metrics(workdir)
  # The intervals tile the chunks; each row is measured on held-out images of the components.
  assert [r["first_chunk"] for r in rows][0] == 0 and rows[-1]["last_chunk"] == 3
  assert all(a["last_chunk"] + 1 == b["first_chunk"] for a, b in zip(rows, rows[1:]))
  assert all(math.isfinite(r["test_neg_elbo_seen"]) for r in rows)
  assert sorted(os.listdir(os.path.join(workdir, "heldout"))) == [
    f"distribution-{r['distribution']}.npy" for r in rows if r["is_new"]
  ]
  assert "held-out chunk images (the stream has no test split)" in done.stdout
  header = next(line for line in done.stdout.splitlines() if line.startswith("interval  "))
  assert "decision" in header.split() and "truth" not in header.split()


def test_bin_train_with_told_boundaries_learns_a_stream_as_one_interval(tmp_path, bars):
  source = _source(str(tmp_path), "npy", bars[0])
  workdir = str(tmp_path / "w")
  done = train_helpers.train(
    f"--dataset={source}", *_flags(boundaries="given"), f"--workdir={workdir}"
  )
  assert done.returncode == 0, done.stderr[-2000:]
  (row,) = train_helpers.metrics(workdir)
  assert (row["name"], row["is_new"], row["num_categories"]) == ("day", True, 1)
  assert not os.path.exists(os.path.join(workdir, "boundaries.jsonl"))


# ------------------------------------------------------------------ Learner
@pytest.mark.parametrize("kind", ["npz", "npy", "folder"])
def test_a_learner_observes_each_stream_a_chunk_at_a_time(tmp_path, bars, kind):
  source = frames.open_frames(_source(str(tmp_path), kind, bars[0]))
  learner = Learner(config_lib.Config(**IN_PROCESS), str(tmp_path / "w"), out=open(os.devnull, "w"))
  decided = [learner.observe(c.images).chunk for c in frames.Chunks(source, 60).from_chunk(0)]
  assert decided == [0, 1, 2, 3] and source.rows_read == 240
  learner.finish()
  assert learner.history[-1]["last_chunk"] == 3
  assert all(math.isfinite(r["test_neg_elbo_seen"]) for r in learner.history)
  # The same source as one interval.
  one = Learner(config_lib.Config(**IN_PROCESS), str(tmp_path / "one"), out=open(os.devnull, "w"))
  row = one.learn(source.name, name="day")
  assert (row["steps"] > 0, one.num_categories) == (True, 1)


def test_the_truth_of_a_labelled_npz_is_written_down_never_used(tmp_path, bars):
  """The same images with and without `distribution`: the same decisions, statistics
  and intervals; only the truth fields differ."""
  images, ids = bars
  np.savez(tmp_path / "labelled.npz", images=images, distribution=ids)
  np.savez(tmp_path / "plain.npz", images=images)
  runs = {}
  for name in ("labelled", "plain"):
    config = config_lib.Config(dataset=f"npz:{tmp_path}/{name}.npz", **IN_PROCESS)
    assert frames.reads_as_stream(config)  # detect, no --order: a stream in row order
    rows = lifelong.run(config, str(tmp_path / name), out=open(os.devnull, "w"))
    runs[name] = (_decisions(tmp_path / name), rows)
  (labelled, labelled_rows), (plain, plain_rows) = runs["labelled"], runs["plain"]
  assert [d["truth"] for d in labelled] == [3, 3, 7, 7]
  assert [d["truth_name"] for d in labelled][:1] == ["distribution 3"]
  assert all(d["truth"] is None for d in plain)
  keys = ("chunk", "decision", "component", "statistic", "return_statistic", "best_return")
  assert [[d[k] for k in keys] for d in labelled] == [[d[k] for k in keys] for d in plain]
  spans = [
    [(r["first_chunk"], r["last_chunk"], r["steps"]) for r in rs]
    for rs in (labelled_rows, plain_rows)
  ]
  assert spans[0] == spans[1]
  assert [r["truth"] for r in labelled_rows][0] == 3


# ------------------------------------------------------------------ one-line errors
def _refused(*args) -> list[str]:
  out = train_helpers.run_tool("train", *args)
  assert (out.returncode, len(out.lines)) == (2, 1), out.lines
  return out.lines[0]


def test_what_an_unlabelled_stream_cannot_honour_is_one_line_before_tensorflow(tmp_path, bars):
  source = _source(str(tmp_path), "npz", bars[0])
  w = f"--workdir={tmp_path}/w"
  for flag in ("--order=0,0", "--num_intervals=2"):
    out = train_helpers.run_tool("train", f"--dataset={source}", flag, w)
    name = flag[2:].split("=")[0]
    assert (out.returncode, out.tensorflow) == (2, False)
    assert out.lines == [
      f"train: error: --{name} cannot be honoured on {source}: it has no distributions to "
      "schedule (one stream in time order: no `distribution` array, no sub-folders); drop "
      f"--{name} (with --boundaries=detect the learner finds the changes itself)"
    ]
  os.mkdir(tmp_path / "empty")
  np.savez(tmp_path / "ids.npz", distribution=np.zeros(5, int))
  np.save(tmp_path / "few.npy", bars[0][:20])
  cases = {
    f"folder:{tmp_path}/empty": "holds no PNG or JPEG images and no sub-folders: an empty source",
    f"npz:{tmp_path}/ids.npz": "has no array 'images' (it has: distribution)",
    f"npy:{tmp_path}/few.npy": "holds 20 images, fewer than --batch_size (32)",
  }
  for dataset, words in cases.items():
    out = train_helpers.run_tool("train", f"--dataset={dataset}", *_flags(), w)
    assert (out.returncode, out.tensorflow, len(out.lines)) == (2, False, 1), out.lines
    assert out.lines[0].startswith("train: error: ") and words in out.lines[0]
  multi = train_helpers.run_tool(
    "train", f"--dataset={source}", *_flags(), "--strategy=multi_worker", w
  )
  assert (multi.returncode, multi.tensorflow, len(multi.lines)) == (2, False, 1)
  assert "cannot be honoured with strategy=multi_worker" in multi.lines[0]


def test_a_frame_of_another_size_half_way_is_one_line_naming_it(tmp_path, bars):
  source = _source(str(tmp_path), "folder", bars[0])
  bad = write_png(os.path.join(source[len("folder:") :], "f130.png"), np.zeros((20, 20), np.uint8))
  line = _refused(f"--dataset={source}", *_flags(), f"--workdir={tmp_path}/w")
  assert line.startswith(f"train: error: {bad} (frame 130) is 20x20 grey but ")
  decisions = _decisions(tmp_path / "w")
  assert [d["chunk"] for d in decisions] == [0, 1]  # chunk 2 (frames 120..179) was never decided
