"""The detection timeline (monitor/timeline.py): geometry, colours, marks, files, reports."""

import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from tests import paths
from tf_lifelong.monitor import timeline
from tf_lifelong.monitor import timeline_paint as paint


def _d(chunk, decision, component, truth=None, statistic=1.0, **more):
  d = {
    "chunk": chunk,
    "decision": decision,
    "component": component,
    "statistic": None if chunk == 0 else statistic,
    "threshold": None if chunk == 0 else 5.0,
    "return_statistic": None,
    "return_threshold": 1.5,
    "return_mass": None,
    "truth": truth,
    "truth_name": None if truth is None else f"digit {truth}",
  }
  return {**d, **more}


def _stream(n, truth=True, every=10):
  """n chunks; every `every`-th a new component (truth: its own digit)."""
  out = []
  for c in range(n):
    k = c // every
    shift = c % every == 0
    out.append(
      _d(
        c,
        "new" if shift else "same",
        k if shift else 0,  # a same decision's component is k, not the interval's
        truth=k % 7 if truth else None,
        statistic=40.0 if shift else 1.0,
        return_statistic=3.0 if shift and c else None,
        return_mass=0.5 if shift and c else None,
      )
    )
  return out


def _middle(lay, row):
  top, bottom = lay.rows[row]
  return (top + bottom) // 2


def _colour(image, x, y):
  return tuple(int(v) for v in np.asarray(image)[y, x])


def test_the_picture_grows_with_the_chunks_up_to_a_cap():
  widths = {n: timeline.draw(_stream(n)).width for n in (10, 50, 200, 250, 1000, 3000)}
  floor = paint.LEFT + paint.MIN_PLOT + paint.RIGHT
  cap = paint.LEFT + paint.MAX_PLOT + paint.RIGHT
  assert widths[10] == widths[50] == floor
  assert floor < widths[200] < widths[250] < cap
  assert widths[1000] == widths[3000] == cap
  lay = timeline.layout(_stream(1000))
  assert all(lay.cell(i)[1] > lay.cell(i)[0] for i in range(1000))  # a column per chunk


def test_a_shift_has_its_component_colour_and_same_the_pale_interval_colour():
  decisions = _stream(30)
  image, lay = timeline.draw(decisions), timeline.layout(decisions)
  y = _middle(lay, "decision")
  for i, colour in ((10, paint.component_colour(1)), (20, paint.component_colour(2))):
    x0, x1 = lay.cell(i)
    assert _colour(image, (x0 + x1) // 2, y) == colour
  # Chunk 15 says component 0 (its k) but trains component 1's interval: pale component 1.
  x0, x1 = lay.cell(15)
  assert _colour(image, (x0 + x1) // 2, y) == paint.pale(paint.component_colour(1))
  assert timeline.interval_components(decisions)[15] == 1


def test_the_truth_band_is_there_only_with_truth():
  with_truth, without = _stream(30), _stream(30, truth=False)
  lay = timeline.layout(with_truth)
  assert "truth" in lay.rows and "mistakes" in lay.rows and "key" in lay.rows
  image = timeline.draw(with_truth)
  x0, x1 = lay.cell(25)  # truth 2, the third to arrive
  assert _colour(image, x0 + 1, _middle(lay, "truth")) == paint.component_colour(2)
  bare = timeline.layout(without)
  assert not {"truth", "mistakes", "key"} & set(bare.rows)
  assert timeline.draw(without).height == bare.height < lay.height


def test_mistakes_are_marked_where_they_are():
  decisions = [
    _d(0, "new", 0, truth=3),
    _d(1, "new", 1, truth=3),  # false shift
    _d(2, "same", 1, truth=3),
    _d(3, "same", 1, truth=7),  # missed: no shift at 3 or 4
    _d(4, "same", 1, truth=7),
    _d(5, "new", 2, truth=7),  # two chunks late: a false shift, not a find
    _d(6, "new", 3, truth=3),  # found, but new for a distribution seen before: wrong
    _d(7, "same", 3, truth=3),
  ]
  marks = timeline.score(decisions)
  assert (marks["false"], marks["missed"], marks["wrong"]) == ([1, 5], [3], [6])
  assert (marks["changes"], marks["found"]) == ([3, 6], [[6, 6]])
  image, lay = timeline.draw(decisions), timeline.layout(decisions)
  y = _middle(lay, "mistakes")
  for i, kind in ((1, "false"), (3, "missed"), (5, "false"), (6, "wrong")):
    x0, x1 = lay.cell(i)
    assert _colour(image, (x0 + x1) // 2, y) == paint.MISTAKE[kind], kind
  for i in (0, 2, 4, 7):
    x0, x1 = lay.cell(i)
    assert _colour(image, (x0 + x1) // 2, y) == paint.WHITE


def test_statistics_stand_against_their_threshold_lines():
  decisions = _stream(30)
  lay = timeline.layout(decisions)

  def reds(image, row):
    top, bottom = lay.rows[row]
    pixels = np.asarray(image)[top:bottom, paint.LEFT : paint.LEFT + lay.width]
    return int(np.all(pixels == paint.THRESHOLD, axis=-1).sum())

  plain, with_mass = timeline.draw(decisions), timeline.draw(decisions, return_mass=0.95)
  assert reds(plain, "shift") > 0 and reds(plain, "return") > 0
  assert reds(plain, "mass") == 0 < reds(with_mass, "mass")  # the line only where known
  # A shift's stem (z = 40) reaches above the line (z = 5); a same chunk's (z = 1) stays below.
  image, top = np.asarray(plain), lay.rows["shift"][0]

  def column(i):
    return image[top : lay.rows["shift"][1], (lay.cell(i)[0] + lay.cell(i)[1]) // 2]

  new, same = paint.STEM["new"], paint.STEM["same"]
  panel = image[top : lay.rows["shift"][1], paint.LEFT : paint.LEFT + lay.width]
  line = int(np.argmax(np.all(panel == paint.THRESHOLD, axis=-1).any(axis=1)))
  assert line > 2
  assert np.all(column(10) == new, axis=-1)[: line - 2].any()
  assert not np.all(column(5) == same, axis=-1)[: line - 2].any()


def test_write_gives_a_png_atomically(tmp_path):
  path = timeline.write(str(tmp_path), _stream(40), return_mass=0.95)
  assert path == str(tmp_path / timeline.FILENAME)
  with Image.open(path) as image:
    assert image.format == "PNG" and image.mode == "RGB"
    assert image.size == timeline.draw(_stream(40)).size
  assert os.listdir(tmp_path) == [timeline.FILENAME]  # no temporary left behind
  assert timeline.draw([]).size[0] > 0  # no decisions yet: a frame, no error


def test_record_writes_the_file_and_a_tensorboard_image(tmp_path):
  from tensorboard.backend.event_processing import event_accumulator

  from tf_lifelong.monitor import summaries

  writer = summaries.SummaryWriter(str(tmp_path / "tensorboard"))
  image = timeline.record(str(tmp_path), writer, _stream(20), step=3)
  writer.close()
  assert (tmp_path / timeline.FILENAME).exists()
  acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  acc.Reload()
  (event,) = acc.Tensors(timeline.TAG)
  width, height = (int(v) for v in event.tensor_proto.string_val[:2])
  assert (event.step, width, height) == (3, image.width, image.height)


def test_committed_runs_keep_their_report_figures():
  # Each committed detect report's summary.json was scored before the rules moved to
  # timeline.score: the same transitions, found, missed, false and wrong chunks.
  from tf_lifelong.experiments import detection_report

  folders = sorted(glob.glob(os.path.join(paths.REPO, "docs/results/detect_*")))
  if not folders:
    pytest.skip("no committed detect runs here (a Bazel sandbox holds none)")
  keys = ("transitions", "found", "missed", "false_chunks", "wrong_chunks", "decisions_right")
  for folder in folders:
    with open(os.path.join(folder, "summary.json")) as f:
      entries = json.load(f)["detection"]
    for entry in entries:
      name = os.path.join(folder, "boundaries", f"seed-{entry['seed']}.jsonl")
      with open(name) as f:
        decisions = [json.loads(line) for line in f if line.strip()]
      assessed = detection_report.assess(decisions)
      assert {k: assessed[k] for k in keys} == {k: entry[k] for k in keys}, name
      assert timeline.draw(decisions).width <= paint.LEFT + paint.MAX_PLOT + paint.RIGHT


def test_a_detect_report_shows_the_timeline(tmp_path):
  from tf_lifelong.experiments import detection_report, layout, report
  from tf_lifelong.state import artifacts

  output = str(tmp_path)
  experiment = {
    "preset": "mnist_sequential",
    "seeds": [0],
    "variants": ["detect"],
    "base_config": {"return_mass": 0.95},
  }
  artifacts.write_json(os.path.join(output, layout.EXPERIMENT), experiment)
  workdir = layout.run_dir(output, "detect", 0)
  artifacts.write_metrics(workdir, [{"interval": 0, "test_neg_elbo_seen": 100.0}])
  artifacts.write_json_lines(os.path.join(workdir, "boundaries.jsonl"), _stream(30))
  result = {"variant": "detect", "seed": 0, "config": {}, "wall_seconds": 1.0, "command": "c"}
  artifacts.write_json(os.path.join(workdir, layout.RESULT), result)
  summary = report.build_report(output)
  rel = "boundaries/timeline-seed-0.png"
  assert summary["detection"][0]["timeline"] == rel
  with Image.open(os.path.join(output, rel)) as image:
    assert image.format == "PNG"
    assert image.size == timeline.draw(_stream(30)).size
  text = open(os.path.join(output, "report.md")).read()
  assert f"![detection timeline, seed 0]({rel})" in text
  assert detection_report.draw_timelines(output) == {0: rel}
