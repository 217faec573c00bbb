"""Hostile input: one short line on stderr and a non-zero exit, never a traceback.

The command lines are run through bin/train's main in one process
(tests/cli_batch.py: one TensorFlow import for all of them); the table of
docs/reliability.md names the test of each case. Property tests (hypothesis)
check that damaged data files only ever raise DataError, and that the exported
model's signatures refuse every malformed input and accept every good one.
"""

import json
import os
import subprocess
import sys

import hypothesis
import numpy as np
import pytest
from hypothesis import strategies as st

from tests import paths
from tests import train_helpers as th
from tests.data.conftest import write_idx, write_idx_dir, write_image_folder, write_png
from tf_lifelong.data.sources import DataError, load_source

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli_batch.py")


# ------------------------------------------------------------- the inputs
def _mnist_dir(root, damage=None):
  """A tiny MNIST-layout folder under root/mnist, its train images damaged as asked."""
  arrays = write_idx_dir(os.path.join(root, "mnist"))
  images = os.path.join(root, "mnist", "train-images-idx3-ubyte.gz")
  if damage == "corrupt":
    with open(images, "wb") as f:
      f.write(b"\x1f\x8b\x08\x00" + os.urandom(200))
  elif damage == "truncated":
    write_idx(images, np.zeros((500, 4, 3), np.uint8))
    data = open(images, "rb").read()
    with open(images, "wb") as f:
      f.write(data[: len(data) // 2])
  elif damage == "magic":
    write_idx(images, arrays["train"][1])  # a labels file under the images name
  return str(root)


def _folder(root, damage):
  write_image_folder(root, {"a": 4, "b": 4})
  if damage == "unreadable":
    with open(os.path.join(root, "b", "img001.png"), "wb") as f:
      f.write(b"not a png")
  else:
    write_png(os.path.join(root, "b", "zz_big.png"), np.zeros((8, 8), np.uint8))
  return f"folder:{root}"


def _npz(path, damage):
  images, dist = np.zeros((40, 4, 4), np.uint8), np.repeat([0, 1], 20)
  if damage == "lengths":
    dist = dist[:-3]
  elif damage == "nan":
    images = np.full((40, 4, 4), 0.5)
    images[3, 1, 1] = np.nan
  elif damage == "range":
    images = np.full((40, 4, 4), 0.5)
    images[7, 0, 0] = 1.5
  elif damage == "empty_distribution":
    dist = np.concatenate([np.repeat([0, 1], 19), [5, 5]])
  np.savez(path, images=images, distribution=dist)
  return f"npz:{path}"


def _cases(tmp) -> dict[str, tuple[list[str], str]]:
  """name -> (bin/train arguments, words the one error line must hold)."""
  os.makedirs(tmp / "empty")
  blocker = tmp / "a_file"
  blocker.write_text("not a folder")
  tiny = th.config_file(tmp)
  cases = {
    # First: it splits the CPU into two devices (see tests/cli_batch.py).
    "replicas": (
      [
        "--dataset=mnist",
        f"--data_dir={paths.DATA_ROOT}",
        "--strategy=mirrored",
        "--num_cpu_devices=2",
        "--batch_size=33",
      ],
      "batch_size 33 is not divisible by the 2 replicas of the mirrored strategy",
    ),
    "data_dir_missing": (["--dataset=mnist", f"--data_dir={tmp}/nowhere"], "not found"),
    "data_dir_empty": (["--dataset=mnist", f"--data_dir={tmp}/empty"], "--data_dir"),
    "corrupt_gz": (
      ["--dataset=mnist", f"--data_dir={_mnist_dir(tmp / 'c', 'corrupt')}"],
      "is corrupt or truncated",
    ),
    "truncated_gz": (
      ["--dataset=mnist", f"--data_dir={_mnist_dir(tmp / 't', 'truncated')}"],
      "truncated",
    ),
    "wrong_magic": (
      ["--dataset=mnist", f"--data_dir={_mnist_dir(tmp / 'm', 'magic')}"],
      "magic number 2049, expected 2051",
    ),
    "folder_unreadable": (
      [f"--dataset={_folder(tmp / 'fu', 'unreadable')}"],
      "is not a readable image",
    ),
    "folder_mixed_sizes": ([f"--dataset={_folder(tmp / 'fm', 'mixed')}"], "8x8"),
    "npz_lengths": ([f"--dataset={_npz(tmp / 'l.npz', 'lengths')}"], "has 37"),
    "npz_nan": ([f"--dataset={_npz(tmp / 'n.npz', 'nan')}"], "NaN pixels"),
    "npz_range": ([f"--dataset={_npz(tmp / 'r.npz', 'range')}"], "must lie in [0, 1]"),
    "empty_distribution": (
      [f"--dataset={_npz(tmp / 'e.npz', 'empty_distribution')}"],
      "distribution 5 (distribution 5) of npz:",
    ),
    "negative_weight": (["--mi_weight=-0.5"], "mi_weight must not be negative"),
    "unwritable_workdir": ([f"--workdir={blocker}/run"], f"cannot write the workdir {blocker}"),
    "non_finite_loss": (
      [f"--config_file={tiny}", "--order=3", "--learning_rate=1e30", "--threads=0"],
      "interval 0 (distribution 3), step 10 (global step 10): the training loss is nan",
    ),
  }
  for i, (name, (args, words)) in enumerate(cases.items()):
    if not any(a.startswith("--workdir") for a in args):
      args.append(f"--workdir={tmp}/w{i}")
    cases[name] = (args, words)
  return cases


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  tmp = tmp_path_factory.mktemp("bad")
  cases = _cases(tmp)
  commands = [args for args, _ in cases.values()]
  commands.append([*cases["unwritable_workdir"][0], "--verbose"])
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
    [sys.executable, DRIVER],
    input=json.dumps(commands),
    capture_output=True,
    text=True,
    timeout=300,
    env=env,
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout)
  return cases, dict(zip(cases, out)), out[-1], tmp


CASES = (
  "replicas",
  "data_dir_missing",
  "data_dir_empty",
  "corrupt_gz",
  "truncated_gz",
  "wrong_magic",
  "folder_unreadable",
  "folder_mixed_sizes",
  "npz_lengths",
  "npz_nan",
  "npz_range",
  "empty_distribution",
  "negative_weight",
  "unwritable_workdir",
  "non_finite_loss",
)


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_and_a_non_zero_exit(results, name):
  cases, got, _, _ = results
  result, words = got[name], cases[name][1]
  lines = [line for line in result["stderr"].splitlines() if line.strip()]
  assert result["rc"] == 2, (name, result)
  assert len(lines) == 1 and lines[0].startswith("train: error: "), result["stderr"]
  assert words in lines[0], (words, lines[0])
  assert "Traceback" not in result["stderr"] + result["stdout"]


def test_verbose_shows_the_traceback(results):
  _, _, verbose, _ = results
  assert verbose["rc"] != 0 and "Traceback" in verbose["stderr"]
  assert "WorkdirError: cannot write the workdir" in verbose["stderr"]


def test_a_non_finite_loss_keeps_only_good_checkpoints(results):
  _, _, _, tmp = results
  workdir = tmp / f"w{CASES.index('non_finite_loss')}"
  names = sorted(os.listdir(workdir / "checkpoints"))
  assert names == [
    "interval-000-start.data-00000-of-00001",
    "interval-000-start.index",
    "interval-000-start.json",
    "latest.json",
  ]
  assert not (workdir / "metrics.csv").exists()


# ------------------------------------------------------------ properties
@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(
  cut=st.floats(0, 1, exclude_max=True),
  flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=3),
  target=st.sampled_from(["train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
)
def test_damaged_idx_files_raise_data_error_or_read_the_same(tmp_path_factory, cut, flips, target):
  """Truncating a .gz IDX file or flipping its bytes: a one-line DataError naming the
  file, or (when the damage hits nothing that matters, e.g. the gzip time stamp) the
  same arrays; never another exception."""
  root = tmp_path_factory.mktemp("idx")
  arrays = write_idx_dir(root / "mnist", n_train=40, n_test=10)
  path = root / "mnist" / target
  data = bytearray(path.read_bytes())
  for where, xor in flips:
    data[int(where * len(data))] ^= xor
  if cut:
    data = data[: max(1, int(cut * len(data)))]
  path.write_bytes(bytes(data))
  try:
    loaded = load_source("mnist", str(root))
  except DataError as e:
    assert "\n" not in str(e) and str(path) in str(e)
    return
  np.testing.assert_array_equal(loaded.train.images[..., 0], arrays["train"][0])
  np.testing.assert_array_equal(loaded.test.labels, arrays["test"][1])


_NPZ_DEFECTS = (
  "short_ids",
  "nan",
  "inf",
  "above_one",
  "below_zero",
  "above_255",
  "negative_int",
  "rank2",
  "empty",
  "float_ids",
  "negative_id",
  "no_images",  # (an npz of images alone is a stream, data/frames.py)
)


@hypothesis.settings(max_examples=15, deadline=None)
@hypothesis.given(
  defect=st.sampled_from(_NPZ_DEFECTS),
  n=st.integers(1, 12),
  where=st.integers(0, 10_000),
  as_float=st.booleans(),
)
def test_npz_with_one_defect_is_a_data_error(tmp_path_factory, defect, n, where, as_float):
  rng = np.random.default_rng(where)
  images = rng.integers(0, 256, (n, 3, 4)).astype(np.uint8)
  ids = np.zeros(n, np.int64)
  stored = images / 255.0 if as_float else images
  i = where % n
  if defect in ("nan", "inf", "above_one", "below_zero"):
    stored = images / 255.0
    stored[i, 0, 0] = {"nan": np.nan, "inf": np.inf, "above_one": 1.0 + 1e-3, "below_zero": -1e-3}[
      defect
    ]
  elif defect in ("above_255", "negative_int"):
    stored = images.astype(np.int32)
    stored[i, 1, 1] = 256 if defect == "above_255" else -1
  elif defect == "rank2":
    stored = stored.reshape(n, -1)
  elif defect == "empty":
    stored, ids = stored[:0], ids[:0]
  elif defect == "short_ids":
    ids = ids[:-1]
  elif defect == "float_ids":
    ids = ids + 0.5
  elif defect == "negative_id":
    ids[i] = -1
  path = tmp_path_factory.mktemp("npz") / "d.npz"
  arrays = {"images": stored, "distribution": ids}
  if defect == "no_images":
    del arrays["images"]
  np.savez(path, **arrays)
  with pytest.raises(DataError) as info:
    load_source(f"npz:{path}")
  assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  """A tiny exported model (tests/export_helpers/tiny_model.py), loaded back."""
  import importlib.util

  import tensorflow as tf

  from tf_lifelong.serving import export

  spec = importlib.util.spec_from_file_location(
    "tiny_model", os.path.join(os.path.dirname(__file__), "export_helpers", "tiny_model.py")
  )
  tiny = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(tiny)
  encoder, decoder = tiny.build(seed=1)
  path = export.export(
    encoder,
    decoder,
    num_categories=tiny.J,
    continuous_dim=tiny.F,
    image_shape=(tiny.H, tiny.W, tiny.C),
    metadata=None,
    path=str(tmp_path_factory.mktemp("export") / "export"),
  )
  return tf.saved_model.load(path), tiny


@hypothesis.settings(
  max_examples=15,
  deadline=None,
  suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
  shape=st.lists(st.integers(0, 7), min_size=1, max_size=5),
  defect=st.sampled_from([None, "nan", "inf", "above_one", "below_zero"]),
  signature=st.sampled_from(["encode", "reconstruct", "elbo"]),
  seed=st.integers(0, 2**16),
)
def test_export_refuses_exactly_the_bad_images(served, shape, defect, signature, seed):
  import tensorflow as tf

  loaded, tiny = served
  if seed % 2:  # Half of the draws get the right shape, with any batch size.
    shape = [shape[0], tiny.H, tiny.W, tiny.C]
  x = np.random.default_rng(seed).uniform(size=shape).astype(np.float32)
  if defect is not None and x.size:
    x.reshape(-1)[seed % x.size] = {
      "nan": np.nan,
      "inf": np.inf,
      "above_one": 1.5,
      "below_zero": -0.5,
    }[defect]
  good_shape = len(shape) == 4 and shape[1:] == [tiny.H, tiny.W, tiny.C]
  good = good_shape and (defect is None or x.size == 0)
  fn = loaded.signatures[signature]
  if good:
    out = fn(images=tf.constant(x))
    for value in out.values():
      assert value.shape[0] == shape[0] and np.isfinite(value.numpy()).all()
  else:
    with pytest.raises(tf.errors.InvalidArgumentError):
      fn(images=tf.constant(x))


@hypothesis.settings(
  max_examples=15,
  deadline=None,
  suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(num=st.integers(-3, 6), component=st.integers(-3, 5), seed=st.integers(0, 99))
def test_export_sample_refuses_exactly_the_bad_arguments(served, num, component, seed):
  import tensorflow as tf

  loaded, tiny = served
  args = dict(
    num_samples=tf.constant(num), component=tf.constant(component), seed=tf.constant(seed)
  )
  if num >= 0 and -1 <= component < tiny.J:
    images = loaded.signatures["sample"](**args)["images"].numpy()
    assert images.shape == (num, tiny.H, tiny.W, tiny.C)
    assert np.all((images >= 0) & (images <= 1))
  else:
    with pytest.raises(tf.errors.InvalidArgumentError):
      loaded.signatures["sample"](**args)
