"""TensorBoard as a user meets it: the real server reads back a run's summaries.

A tiny dry run (real MNIST digits 3 then 7) writes W/tensorboard; the installed
`tensorboard` server is started on 127.0.0.1 with `--load_fast=false`, and the
scalar and image series are read through its HTTP data API:

- /data/plugin/scalars/tags and /data/plugin/scalars/scalars?run=.&tag=...
  ([[wall_time, step, value], ...]);
- /data/plugin/images/images?run=.&tag=samples ([{wall_time, step, query}]),
  then /data/plugin/images/individualImage?<query> (the PNG).

The server is always stopped; every wait is bounded. The same run's latest
checkpoint is also restored and compared with the run's own export.
"""

import contextlib
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import paths
from tf_lifelong import config as config_lib
from tf_lifelong.state import checkpoints
from tf_lifelong.train import context, lifelong

TINY = dict(
  dataset="mnist",
  data_dir=paths.DATA_ROOT,
  batch_size=32,
  hidden_units=64,
  continuous_dim=4,
  eval_every=20,
  max_steps_per_interval=60,
  patience=2,
  eval_examples=200,
  validation_synthetic_examples=200,
  seed=3,
)
START_TIMEOUT_S = 90
HTTP_TIMEOUT_S = 10
# No proxy for 127.0.0.1, whatever the environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _tensorboard_binary() -> str:
  beside = os.path.join(os.path.dirname(sys.executable), "tensorboard")
  found = beside if os.path.exists(beside) else shutil.which("tensorboard")
  if found is None:
    pytest.fail("the tensorboard program is not installed (pip install tensorboard)")
  return found


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _get(base: str, route: str, **query) -> bytes:
  url = f"{base}{route}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
  with _OPENER.open(url, timeout=HTTP_TIMEOUT_S) as response:
    return response.read()


def _get_json(base: str, route: str, **query):
  return json.loads(_get(base, route, **query))


@contextlib.contextmanager
def tensorboard_server(logdir: str, log_path: str):
  """Starts `tensorboard` on a free port of 127.0.0.1; yields its base URL; stops it."""
  port = _free_port()
  with open(log_path, "w") as log:
    proc = subprocess.Popen(
      [
        _tensorboard_binary(),
        "--logdir",
        logdir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--load_fast=false",
        "--reload_interval",
        "1",
      ],
      stdout=log,
      stderr=subprocess.STDOUT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
  base = f"http://127.0.0.1:{port}"
  try:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
      if proc.poll() is not None:
        pytest.fail(f"tensorboard exited with {proc.returncode}:\n{_tail(log_path)}")
      with contextlib.suppress(OSError, ValueError):
        # Answers once the server is up and the run's events are loaded.
        if "." in _get_json(base, "/data/plugin/scalars/tags"):
          break
      if time.monotonic() > deadline:
        pytest.fail(
          f"tensorboard did not serve the run within {START_TIMEOUT_S} s:\n{_tail(log_path)}"
        )
      time.sleep(0.5)
    yield base
  finally:
    proc.terminate()
    try:
      proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
      proc.kill()
      proc.wait(timeout=15)


def _tail(path: str, lines: int = 30) -> str:
  with open(path) as f:
    return "".join(f.readlines()[-lines:])


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  config = config_lib.Config(order=(3, 7), **TINY)
  with open(os.devnull, "w") as out:
    rows = lifelong.run(config, workdir, out=out)
  return workdir, rows


@pytest.fixture(scope="module")
def served(dry_run, tmp_path_factory):
  workdir, rows = dry_run
  log = str(tmp_path_factory.mktemp("tb") / "tensorboard.log")
  with tensorboard_server(os.path.join(workdir, "tensorboard"), log) as base:
    yield base, rows


def _scalars(base: str, tag: str) -> list[list[float]]:
  return _get_json(base, "/data/plugin/scalars/scalars", run=".", tag=tag)


def test_scalar_tags_are_listed(served):
  base, _ = served
  tags = _get_json(base, "/data/plugin/scalars/tags")["."]
  for name in (
    "train/loss",
    "train/neg_elbo",
    "train/consistency",
    "train/mutual_information",
    "train/temperature",
    "train/validation_neg_elbo",
    "interval/test_neg_elbo_seen",
    "interval/test_neg_elbo_full",
    "interval/consistency",
  ):
    assert name in tags, (name, sorted(tags))


def test_train_loss_series(served):
  base, rows = served
  series = _scalars(base, "train/loss")
  steps = [int(step) for _, step, _ in series]
  assert len(steps) >= 2 * len(rows)  # at least two evaluations per interval
  assert steps == sorted(set(steps))  # global steps: increasing across intervals
  assert 0 < steps[0] and steps[-1] == sum(r["steps"] for r in rows)
  assert all(math.isfinite(value) for _, _, value in series)


def test_interval_scalars_match_the_metrics_rows(served):
  base, rows = served
  series = _scalars(base, "interval/test_neg_elbo_seen")
  assert [int(step) for _, step, _ in series] == [r["interval"] for r in rows]
  for (_, _, value), row in zip(series, rows):
    assert value == pytest.approx(row["test_neg_elbo_seen"], rel=1e-6)
  # No consistency without a teacher: only the second interval has the scalar.
  assert [int(step) for _, step, _ in _scalars(base, "interval/consistency")] == [1]


def test_sample_grids_are_served_as_pngs(served):
  base, rows = served
  assert "samples" in _get_json(base, "/data/plugin/images/tags")["."]
  entries = _get_json(base, "/data/plugin/images/images", run=".", tag="samples")
  assert [e["step"] for e in entries] == [r["interval"] for r in rows]
  for entry, row in zip(entries, rows):
    png = _get(base, "/data/plugin/images/individualImage?" + entry["query"])
    image = np.asarray(Image.open(io.BytesIO(png)))
    # One row of 28x28 tiles per category, GRID_COLUMNS columns, 1 pixel padding.
    j = row["num_categories"]
    assert image.shape[:2] == (j * 29 + 1, context.GRID_COLUMNS * 29 + 1)
    assert 0 < image.std()  # not a blank picture


def test_unknown_tag_is_refused(served):
  base, _ = served
  with pytest.raises(urllib.error.HTTPError) as e:
    _get(base, "/data/plugin/images/images", run=".", tag="no_such_tag")
  assert e.value.code in (400, 404)


def test_latest_checkpoint_restores_the_exported_model(dry_run):
  workdir, rows = dry_run
  student, config, state = checkpoints.restore_student(workdir)
  assert state["seen"] == [3, 7] and state["interval"] == len(rows) - 1
  assert state["global_step"] == sum(r["steps"] for r in rows)
  assert state["distribution_names"] == {"3": "digit 3", "7": "digit 7"}
  assert (student.num_categories, student.teacher.num_categories, student.num_seen) == (2, 1, 1)
  assert config.order == (3, 7)
  loaded = tf.saved_model.load(os.path.join(workdir, "export"))
  x = np.random.default_rng(0).uniform(size=(5, 28, 28, 1)).astype(np.float32)
  served_out = loaded.signatures["encode"](images=tf.constant(x))
  logits, loc, scale = student.encode(x)
  # Graph and eager kernels may round differently; other weights would differ by far more.
  close = dict(rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(served_out["probs"].numpy(), tf.nn.softmax(logits).numpy(), **close)
  np.testing.assert_allclose(served_out["mean"].numpy(), loc.numpy(), **close)
  np.testing.assert_allclose(served_out["stddev"].numpy(), scale.numpy(), **close)
