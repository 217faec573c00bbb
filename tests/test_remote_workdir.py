"""A workdir on a non-local file system: every file through tf.io.gfile (tf_lifelong/state/files.py).

The run, its kill and resume, and its export, with `--workdir=file:///...`: a
URL, so every read and write of tf_lifelong goes through `tf.io.gfile` as for
`gs://` (os.path does not understand it: a stray `open` or `os.path.exists`
would write into a local folder named `file:` or miss the checkpoint). The
file system behind it is TensorFlow's POSIX one, which persists across
processes, so the run can be killed and resumed. TensorFlow's in-memory
`ram://` file system lives in one process only and cannot rename or walk
folders (seen with TF 2.21), so it cannot hold an export or a resume.
"""

import json
import os

import numpy as np
import tensorflow as tf

from tests import train_helpers as th
from tf_lifelong.state import files


def test_files_route_urls_through_gfile(tmp_path):
  url = f"file://{tmp_path}/a/b.txt"
  files.write_text(url, "hello")
  assert files.exists(url) and files.isfile(url) and not files.isdir(url)
  assert files.read_text(url) == "hello" and (tmp_path / "a" / "b.txt").read_text() == "hello"
  assert files.listdir(f"file://{tmp_path}/a") == ["b.txt"]
  files.move_tree(f"file://{tmp_path}/a", f"file://{tmp_path}/c")
  assert files.read_text(f"file://{tmp_path}/c/b.txt") == "hello"
  files.rmtree(f"file://{tmp_path}/c")
  assert not files.exists(f"file://{tmp_path}/c")
  files.remove(f"file://{tmp_path}/missing")  # not an error
  assert not files.is_url(str(tmp_path)) and files.is_url("gs://bucket/run")


def test_a_run_killed_and_resumed_on_a_url_workdir(tmp_path):
  local = tmp_path / "w"
  url = f"file://{local}"
  config = th.config_file(tmp_path, order=[3, 7])
  killed = th.train(f"--config_file={config}", f"--workdir={url}", kill_at="train:1:20")
  assert killed.returncode == -9, killed.stderr[-2000:]
  assert [r["interval"] for r in th.metrics(local)] == [0]
  resumed = th.train(f"--workdir={url}")
  assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
  assert "resuming from checkpoint interval-001" in resumed.stdout
  rows = th.metrics(local)
  assert [r["interval"] for r in rows] == [0, 1] and all(r["steps"] == 30 for r in rows)
  for name in ("config.json", "invocations.jsonl", "neg_elbo_matrix.json", "metrics.csv"):
    assert (local / name).is_file(), name
  assert sorted(os.listdir(local / "samples")) == ["interval-000.png", "interval-001.png"]
  assert json.loads((local / "checkpoints" / "latest.json").read_text())["finished"]
  # Nothing landed in a local folder named after the scheme.
  assert not os.path.exists("file:") and not os.path.exists(os.path.join(th.paths.REPO, "file:"))
  model = tf.saved_model.load(str(local / "export"))
  images = model.signatures["sample"](
    num_samples=tf.constant(3), component=tf.constant(1), seed=tf.constant(0)
  )["images"]
  assert images.shape == (3, 28, 28, 1) and np.isfinite(images.numpy()).all()
  again = th.train(f"--workdir={url}")
  assert again.returncode == 0 and "holds a finished run (2 intervals" in again.stdout


def test_bin_export_reads_and_writes_urls(tmp_path):
  local = tmp_path / "w"
  config = th.config_file(tmp_path, order=[3], max_steps_per_interval=10)
  assert th.train(f"--config_file={config}", f"--workdir=file://{local}").returncode == 0
  result = th.subprocess.run(
    [
      th.sys.executable,
      os.path.join(th.paths.REPO, "bin", "export"),
      f"--workdir=file://{local}",
      f"--output=file://{tmp_path}/served",
    ],
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == f"file://{tmp_path}/served"
  assert (tmp_path / "served" / "saved_model.pb").is_file()
