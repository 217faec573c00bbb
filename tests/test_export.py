"""Tests of tf_lifelong.serving.export: the standalone serving SavedModel.

A tiny model (H=6, W=5, C=1, J=3, F=2, batch norm with non-trivial moving
statistics) is exported once; a fresh Python process that imports only
tensorflow (tests/export_helpers/load_and_call.py) loads it and calls every
signature, and the outputs are checked here against the parent's own model.
"""

import importlib.util
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tf_lifelong.serving import export

HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_helpers")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")


def _load_tiny_model():
  spec = importlib.util.spec_from_file_location(
    "export_tiny_model", os.path.join(HELPERS, "tiny_model.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


tiny = _load_tiny_model()
H, W, C, J, F = tiny.H, tiny.W, tiny.C, tiny.J, tiny.F
SHAPE = (H, W, C)
USER_METADATA = {
  "distributions_seen": [4, 0, 7],
  "config": {"dataset": "fashion_mnist", "continuous_dim": F, "angles": [30.0, 70.0]},
  "num_categories": J,  # repeating a reserved fact is allowed
}


def _env():
  env = dict(os.environ)
  env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  return env


def _run(args, **kwargs):
  proc = subprocess.run(
    args, capture_output=True, text=True, env=_env(), timeout=120, check=False, **kwargs
  )
  assert proc.returncode == 0, f"{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
  return proc


def _build(seed=0):
  """The tiny model, with batch-norm moving statistics far from (0, 1)."""
  encoder, decoder = tiny.build(seed=seed)
  rng = np.random.default_rng(seed + 100)
  for model in (encoder, decoder):
    for layer in model.layers:
      if "batch_normalization" in layer.name:
        layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape).astype("f4"))
        layer.moving_variance.assign(rng.uniform(0.2, 3.0, size=layer.moving_variance.shape))
  return encoder, decoder


def _export(encoder, decoder, path, metadata=None):
  return export.export(
    encoder,
    decoder,
    num_categories=J,
    continuous_dim=F,
    image_shape=SHAPE,
    metadata=USER_METADATA if metadata is None else metadata,
    path=str(path),
  )


def _decode_mean(decoder, components, z_continuous):
  onehot = tf.one_hot(components, J, dtype=tf.float32)
  z = tf.concat([onehot, tf.constant(z_continuous, tf.float32)], axis=-1)
  return tf.sigmoid(decoder(z, training=False)).numpy()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
  """Exports the tiny model; loads and calls it in a fresh process."""
  root = tmp_path_factory.mktemp("served")
  encoder, decoder = _build()
  path = _export(encoder, decoder, root / "model")
  x = np.random.default_rng(1).uniform(size=(7, *SHAPE)).astype("f4")
  x[0] = 0.0  # the range's edges are valid pixels
  x[1] = 1.0
  np.savez(root / "inputs.npz", x=x)
  _run(
    [sys.executable, os.path.join(HELPERS, "load_and_call.py"), path, root / "inputs.npz", root],
    cwd=root,
  )
  with open(root / "report.json") as f:
    report = json.load(f)
  outputs = dict(np.load(root / "outputs.npz"))
  return {
    "encoder": encoder,
    "decoder": decoder,
    "path": path,
    "x": x,
    "report": report,
    "out": outputs,
  }


def test_loading_process_needs_neither_tfp_nor_tf_lifelong(served):
  # The helper blocks both imports, so loading would have failed had it needed them.
  assert served["report"]["modules"] == []
  assert served["report"]["signatures"] == sorted([*export.SIGNATURES, export.DEFAULT_SIGNATURE])


def test_signature_inputs_and_outputs(served):
  report = served["report"]
  assert report["inputs"] == {
    "sample": ["component", "num_samples", "seed"],
    "encode": ["images"],
    "reconstruct": ["images"],
    "elbo": ["images"],
    "metadata": ["key"],
    "serving_default": ["images"],
  }
  assert report["outputs"] == {
    "sample": ["component", "images", "z_continuous"],
    "encode": ["component", "mean", "probs", "stddev"],
    "reconstruct": ["images"],
    "elbo": ["kl_continuous", "kl_discrete", "neg_elbo", "nll"],
    "metadata": ["json", "value"],
    "serving_default": ["kl_continuous", "kl_discrete", "neg_elbo", "nll"],
  }


@pytest.mark.parametrize("j", range(J))
def test_sample_one_component(served, j):
  out = served["out"]
  images, comp, z = (
    out[f"sample{j}_images"],
    out[f"sample{j}_component"],
    out[f"sample{j}_z_continuous"],
  )
  assert images.shape == (50, H, W, C) and images.dtype == np.float32
  assert comp.shape == (50,) and comp.dtype == np.int32
  np.testing.assert_array_equal(comp, j)
  assert z.shape == (50, F)
  assert np.all((images >= 0) & (images <= 1))
  # The images are the decoder's Bernoulli means at (one_hot(j), z): the component was used.
  np.testing.assert_allclose(images, _decode_mean(served["decoder"], comp, z), rtol=1e-5, atol=1e-6)
  other = _decode_mean(served["decoder"], np.full(50, (j + 1) % J), z)
  assert np.abs(images - other).max() > 1e-3


def test_sample_uniform_over_components(served):
  out = served["out"]
  comp, z, images = out["uniform_component"], out["uniform_z_continuous"], out["uniform_images"]
  assert set(comp.tolist()) == set(range(J))  # P(missing one of 3 in 60) < 1e-10
  assert images.shape == (60, H, W, C)
  np.testing.assert_allclose(images, _decode_mean(served["decoder"], comp, z), rtol=1e-5, atol=1e-6)
  # z_c ~ N(0, I): loose moments over the 60 x 2 draws.
  assert abs(z.mean()) < 0.4 and 0.7 < z.std() < 1.3
  # Stateless: the same seed repeats, another seed differs.
  np.testing.assert_array_equal(out["uniform_again_images"], images)
  np.testing.assert_array_equal(out["uniform_again_component"], comp)
  assert not np.allclose(out["uniform_other_z_continuous"], z)
  assert out["empty_images"].shape == (0, H, W, C)


def test_encode(served):
  out, x = served["out"], served["x"]
  logits, loc, scale = (t.numpy() for t in served["encoder"](x, training=False))
  probs = out["encode_probs"]
  assert probs.shape == (7, J)
  np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(probs, tf.nn.softmax(logits).numpy(), rtol=1e-5, atol=1e-7)
  np.testing.assert_array_equal(out["encode_component"], logits.argmax(-1))
  np.testing.assert_allclose(out["encode_mean"], loc, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["encode_stddev"], scale, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(out["function_encode_probs"], probs)


def test_reconstruct(served):
  out, x = served["out"], served["x"]
  logits, loc, _ = served["encoder"](x, training=False)
  expected = _decode_mean(served["decoder"], np.argmax(logits.numpy(), -1), loc.numpy())
  assert out["reconstruct_images"].shape == (7, H, W, C)
  np.testing.assert_allclose(out["reconstruct_images"], expected, rtol=1e-5, atol=1e-6)


def _numpy_neg_elbo(encoder, decoder, x):
  """The documented formula, in numpy, from the model's outputs."""
  logits, loc, scale = (t.numpy().astype("f8") for t in encoder(x, training=False))
  b = x.shape[0]
  eps = tf.random.stateless_normal([b, F], seed=tf.constant(export.ELBO_SEED, tf.int32)).numpy()
  z_c = loc + scale * eps
  log_p = logits - logits.max(-1, keepdims=True)
  log_p = log_p - np.log(np.exp(log_p).sum(-1, keepdims=True))
  p = np.exp(log_p)
  nll = np.zeros(b)
  xs = x.reshape(b, -1).astype("f8")
  for j in range(J):
    onehot = np.zeros((b, J), "f4")
    onehot[:, j] = 1
    lg = decoder(np.concatenate([onehot, z_c.astype("f4")], -1), training=False)
    lg = lg.numpy().reshape(b, -1).astype("f8")
    nll_j = -(xs * -np.logaddexp(0, -lg) + (1 - xs) * -np.logaddexp(0, lg)).sum(-1)
    nll += p[:, j] * nll_j
  kl_c = 0.5 * (loc**2 + scale**2 - 1 - 2 * np.log(scale)).sum(-1)
  kl_d = (p * log_p).sum(-1) + math.log(J)
  return nll, kl_c, kl_d


def test_elbo_matches_numpy_formula(served):
  out = served["out"]
  nll, kl_c, kl_d = _numpy_neg_elbo(served["encoder"], served["decoder"], served["x"])
  assert out["elbo_neg_elbo"].shape == (7,)
  assert np.all(np.isfinite(out["elbo_neg_elbo"]))
  np.testing.assert_allclose(out["elbo_nll"], nll, rtol=1e-4)
  np.testing.assert_allclose(out["elbo_kl_continuous"], kl_c, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["elbo_kl_discrete"], kl_d, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out["elbo_neg_elbo"], nll + kl_c + kl_d, rtol=1e-4)
  assert np.all(out["elbo_kl_continuous"] >= 0) and np.all(out["elbo_kl_discrete"] >= -1e-6)
  np.testing.assert_array_equal(out["elbo_again_neg_elbo"], out["elbo_neg_elbo"])


def test_elbo_kls_agree_with_tfp(served):
  """The hand-written KLs against TFP's analytic ones (parent process only)."""
  import tensorflow_probability as tfp  # an install requirement: fail, never skip

  tfd = tfp.distributions
  logits, loc, scale = served["encoder"](served["x"], training=False)
  kl_c = tfd.kl_divergence(
    tfd.MultivariateNormalDiag(loc, scale), tfd.MultivariateNormalDiag(tf.zeros_like(loc))
  )
  kl_d = tfd.kl_divergence(tfd.Categorical(logits=logits), tfd.Categorical(logits=tf.zeros([J])))
  np.testing.assert_allclose(served["out"]["elbo_kl_continuous"], kl_c, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(served["out"]["elbo_kl_discrete"], kl_d, rtol=1e-4, atol=1e-5)


BAD_IMAGES = {
  "transposed_hw": "is not compatible with expected shape",
  "wrong_channels": "is not compatible with expected shape",
  "rank3": "is not compatible with expected shape",
  "rank5": "is not compatible with expected shape",
  "float64": "expected to be a float tensor",
  "int32": "expected to be a float tensor",
  "uint8": "expected to be a float tensor",
  "above_one": "pixels must be in [0, 1] (found > 1)",
  "below_zero": "pixels must be in [0, 1] (found < 0)",
  "nan": "images must be finite",
  "inf": "images must be finite",
}


@pytest.mark.parametrize("signature", ["encode", "reconstruct", "elbo"])
def test_bad_images_refused(served, signature):
  refused = served["report"]["refused"]
  for name, message in BAD_IMAGES.items():
    err = refused[f"{signature}/{name}"]
    assert err is not None, f"{signature} accepted {name} images"
    assert message in err["message"], (name, err)


def test_bad_sample_arguments_refused(served):
  refused = served["report"]["refused"]
  for name in ("component_J", "component_minus2"):
    assert "component must be -1 (uniform) or in [0, 3)" in refused[f"sample/{name}"]["message"]
  assert "num_samples must be >= 0" in refused["sample/num_samples_negative"]["message"]
  assert refused["sample/component_vector"] is not None


def test_metadata_round_trips(served):
  from_signature = json.loads(served["report"]["metadata_json"])
  from_asset = export.read_metadata(served["path"])
  assert from_signature == from_asset
  for key, value in USER_METADATA.items():
    assert from_asset[key] == value
  assert from_asset["num_categories"] == J
  assert from_asset["continuous_dim"] == F
  assert from_asset["image_shape"] == list(SHAPE)
  assert from_asset["format"] == export.FORMAT
  assert from_asset["tensorflow_version"] == tf.__version__
  assert os.path.isfile(os.path.join(served["path"], "assets", export.METADATA_ASSET))


def test_saved_model_cli_lists_signatures(served):
  if not os.path.exists(SAVED_MODEL_CLI):  # tensorflow's wheel installs it next to Python
    pytest.fail(f"saved_model_cli is not at {SAVED_MODEL_CLI}: is tensorflow installed here?")
  text = _run([SAVED_MODEL_CLI, "show", "--all", "--dir", served["path"]]).stdout
  for name in export.SIGNATURES:
    assert f"signature_def['{name}']" in text, text
  assert "shape: (-1, 6, 5, 1)" in text
  assert "outputs['neg_elbo']" in text


def test_export_twice_replaces_atomically(tmp_path):
  encoder, decoder = _build(seed=1)
  path = tmp_path / "model"
  _export(encoder, decoder, path, metadata={"run": 1})
  first = export.load(path).signatures["encode"](images=tf.fill([1, *SHAPE], 0.5))["probs"]
  for layer in encoder.layers:  # a different model, so the second export is told apart
    for v in layer.weights:
      v.assign(v + 0.5)
  returned = _export(encoder, decoder, path, metadata={"run": 2})
  assert returned == str(path)
  assert sorted(os.listdir(tmp_path)) == ["model"]  # no .tmp-* or .old-* left behind
  assert export.read_metadata(path)["run"] == 2
  second = export.load(path).signatures["encode"](images=tf.fill([1, *SHAPE], 0.5))["probs"]
  assert not np.allclose(first, second)
  np.testing.assert_allclose(
    second, tf.nn.softmax(encoder(tf.fill([1, *SHAPE], 0.5), training=False)[0]), rtol=1e-5
  )


class _RaisingDecoder(tf.Module):
  def __call__(self, z, training=False):
    raise RuntimeError("decoder exploded")


def _broken(kind):
  encoder, decoder = _build(seed=2)
  if kind == "decoder_wrong_shape":
    import keras

    z = keras.Input((J + F,))
    decoder = keras.Model(z, keras.layers.Dense(H * W * C)(z))  # flat, not [B,H,W,C]
  elif kind == "decoder_raises":
    decoder = _RaisingDecoder()
  elif kind == "encoder_wrong_categories":
    encoder, _ = tiny.build(seed=2, num_categories=J + 1)
  return encoder, decoder


@pytest.mark.parametrize(
  "kind", ["decoder_wrong_shape", "decoder_raises", "encoder_wrong_categories"]
)
def test_failed_export_keeps_previous(tmp_path, kind):
  encoder, decoder = _build(seed=1)
  path = tmp_path / "model"
  _export(encoder, decoder, path, metadata={"run": "good"})
  with open(path / "saved_model.pb", "rb") as f:
    good_pb = f.read()
  bad_encoder, bad_decoder = _broken(kind)
  with pytest.raises((ValueError, RuntimeError)):
    _export(bad_encoder, bad_decoder, path, metadata={"run": "bad"})
  assert sorted(os.listdir(tmp_path)) == ["model"]
  assert export.read_metadata(path)["run"] == "good"
  with open(path / "saved_model.pb", "rb") as f:
    assert f.read() == good_pb
  probs = export.load(path).signatures["encode"](images=tf.zeros([2, *SHAPE]))["probs"]
  np.testing.assert_allclose(tf.reduce_sum(probs, -1), 1.0, rtol=1e-6)
  # Into a fresh path, a failed export leaves nothing at all.
  with pytest.raises((ValueError, RuntimeError)):
    _export(bad_encoder, bad_decoder, tmp_path / "fresh")
  assert sorted(os.listdir(tmp_path)) == ["model"]


def test_failure_during_save_keeps_previous(tmp_path, monkeypatch):
  """A failure after the temporary directory is written (here in save) cleans up."""
  encoder, decoder = _build(seed=1)
  path = tmp_path / "model"
  _export(encoder, decoder, path, metadata={"run": "good"})

  def broken_save(module, target, signatures=None):
    os.makedirs(os.path.join(target, "variables"))
    with open(os.path.join(target, "saved_model.pb"), "wb") as f:
      f.write(b"partial")
    raise OSError("disk full")

  monkeypatch.setattr(export.tf.saved_model, "save", broken_save)
  with pytest.raises(OSError, match="disk full"):
    _export(encoder, decoder, path, metadata={"run": "bad"})
  assert sorted(os.listdir(tmp_path)) == ["model"]
  assert export.read_metadata(path)["run"] == "good"


def test_bad_arguments_rejected(tmp_path):
  encoder, decoder = _build(seed=1)
  with pytest.raises(ValueError, match="contradicts"):
    _export(encoder, decoder, tmp_path / "a", metadata={"num_categories": J + 1})
  with pytest.raises(ValueError, match="JSON serialisable"):
    _export(encoder, decoder, tmp_path / "b", metadata={"x": object()})
  with pytest.raises(ValueError, match="JSON serialisable"):
    _export(encoder, decoder, tmp_path / "c", metadata={"x": float("nan")})
  with pytest.raises(ValueError, match="image_shape"):
    export.export(
      encoder, decoder, num_categories=J, continuous_dim=F, image_shape=(H, W),
      metadata=None, path=str(tmp_path / "d"),
    )  # fmt: skip
  assert os.listdir(tmp_path) == []
  with pytest.raises(FileNotFoundError, match="not a tf_lifelong export"):
    export.read_metadata(tmp_path)


def test_export_under_mirrored_strategy(tmp_path):
  """Variables made under a 2-replica MirroredStrategy export inside and outside its scope."""
  env = _env()
  env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
  proc = subprocess.run(
    [sys.executable, os.path.join(HELPERS, "strategy_export.py"), str(tmp_path)],
    capture_output=True, text=True, env=env, timeout=120, check=False,
  )  # fmt: skip
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "MirroredVariable" in proc.stdout
  ref = np.load(tmp_path / "reference.npz")
  for where in ("inside", "outside"):
    sigs = export.load(tmp_path / where).signatures
    enc = sigs["encode"](images=tf.constant(ref["x"]))
    np.testing.assert_allclose(enc["probs"], tf.nn.softmax(ref["logits"]), rtol=1e-5)
    np.testing.assert_allclose(enc["mean"], ref["loc"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(enc["stddev"], ref["scale"], rtol=1e-5, atol=1e-7)
    assert np.all(np.isfinite(sigs["elbo"](images=tf.constant(ref["x"]))["neg_elbo"]))
    assert export.read_metadata(tmp_path / where)["strategy"] == "mirrored"


def _rest_bodies(*path):
  """The JSON bodies of the `curl ... :predict -d '{...}'` calls in a doc of the repo."""
  with open(os.path.join(REPO, *path)) as f:
    text = f.read()
  return re.findall(r":predict\s*\\?\s*-d '(\{.*?\})'", text, flags=re.S)


def _doc_requests():
  """The REST bodies of docs/serving.md, with the tiny model's image shape for the elided pixels."""
  bodies = _rest_bodies("docs", "serving.md")
  assert len(bodies) == 3
  assert [json.loads(b) for b in _rest_bodies("README.md")] == [json.loads(bodies[0])]
  requests = []
  for i, body in enumerate(bodies):
    # The docs elide the 28 x 28 pixels; the tiny model takes its own image shape.
    request = json.loads(re.sub(r"\[\[\[\[0\.0\], \.\.\.28 x 28 pixels\.\.\. \]\]\]", "null", body))
    images = np.random.default_rng(3 + i).uniform(size=(2, *SHAPE)).astype("f4").tolist()
    if "instances" in request:
      request["instances"] = images
    elif request["inputs"].get("images", 0) is None:
      request["inputs"]["images"] = images
    requests.append(request)
  return requests


def test_rest_request_bodies_of_the_docs_fit_the_signatures(served):
  """What TF Serving's REST API does with the docs' request bodies (columnar `inputs`,
  row-format `instances`): each named input becomes a tensor of the signature's dtype
  and must fit its shape. The server itself is not run here (no Docker, no
  tensorflow-model-server package); the session loader's run of the same bodies is
  in test_session_loader_answers_the_rest_bodies_of_the_docs."""
  requests = _doc_requests()
  names = [r.get("signature_name", export.DEFAULT_SIGNATURE) for r in requests]
  assert names == ["sample", "encode", export.DEFAULT_SIGNATURE]
  model = tf.saved_model.load(served["path"])
  for body in requests:
    signature = model.signatures[body.get("signature_name", export.DEFAULT_SIGNATURE)]
    specs = signature.structured_input_signature[1]
    inputs = body["inputs"] if "inputs" in body else {"images": body["instances"]}
    assert set(inputs) == set(specs), body
    tensors = {}
    for name, value in inputs.items():
      tensors[name] = tf.constant(value, dtype=specs[name].dtype)
      assert specs[name].shape.is_compatible_with(tensors[name].shape), name
    outputs = signature(**tensors)
    json.dumps({k: v.numpy().tolist() for k, v in outputs.items()})  # a REST response
    if "instances" in body:
      assert outputs["neg_elbo"].shape == (2,)
    elif body["signature_name"] == "encode":
      assert outputs["probs"].shape == (2, J)


@pytest.fixture(scope="module")
def session_served(served, tmp_path_factory):
  """The same export, loaded by the session loader (saved_model_cli's and TF Serving's path)."""
  root = tmp_path_factory.mktemp("session")
  with open(root / "requests.json", "w") as f:
    json.dump(_doc_requests(), f)
  np.savez(root / "inputs.npz", x=served["x"])
  _run(
    [
      sys.executable,
      os.path.join(HELPERS, "session_call.py"),
      served["path"],
      root / "inputs.npz",
      root / "requests.json",
      root,
    ],
    cwd=root,
  )
  with open(root / "session_report.json") as f:
    report = json.load(f)
  return {"report": report, "out": dict(np.load(root / "session_outputs.npz"))}


def test_session_loader_runs_every_signature_like_tf_saved_model_load(served, session_served):
  report, out = session_served["report"], session_served["out"]
  assert report["modules"] == []
  assert report["signatures"] == sorted([*export.SIGNATURES, export.DEFAULT_SIGNATURE])
  keys = [f"sample{j}_{k}" for j in range(J) for k in ("images", "component", "z_continuous")]
  keys += [f"uniform_{k}" for k in ("images", "component", "z_continuous")]
  keys += [f"encode_{k}" for k in ("probs", "component", "mean", "stddev")]
  keys += ["reconstruct_images"] + [f"elbo_{k}" for k in ("neg_elbo", "nll", "kl_continuous")]
  keys += ["elbo_kl_discrete"]
  for key in keys:
    np.testing.assert_allclose(out[key], served["out"][key], rtol=1e-5, atol=1e-6, err_msg=key)
  # The default signature is `elbo`.
  for k in ("neg_elbo", "nll", "kl_continuous", "kl_discrete"):
    np.testing.assert_array_equal(out[f"serving_default_{k}"], out[f"elbo_{k}"])


def test_session_loader_reads_the_metadata_by_key(served, session_served):
  report = session_served["report"]
  assert report["metadata"] == export.read_metadata(served["path"])
  assert report["metadata"]["default_signature"] == "elbo"
  assert json.loads(report["metadata_num_categories"]) == J
  assert "unknown metadata key" in report["unknown_key_error"]


def test_session_loader_answers_the_rest_bodies_of_the_docs(served, session_served):
  rest = session_served["report"]["rest"]
  assert [r["signature"] for r in rest] == ["sample", "encode", export.DEFAULT_SIGNATURE]
  sample, encode, default = (r["outputs"] for r in rest)
  assert np.asarray(sample["images"]).shape == (4, *SHAPE)
  assert sample["component"] == [1, 1, 1, 1]
  assert np.asarray(encode["probs"]).shape == (2, J)
  # The row-format body without a signature name is scored by `elbo`, as in-process.
  images = _doc_requests()[2]["instances"]
  expected = export.load(served["path"]).signatures["elbo"](images=tf.constant(images))
  np.testing.assert_allclose(default["neg_elbo"], expected["neg_elbo"], rtol=1e-5)


def test_saved_model_cli_run_calls_every_signature(served, tmp_path):
  """The real `saved_model_cli run` command on every signature, and on the default one."""
  if not os.path.exists(SAVED_MODEL_CLI):
    pytest.fail(f"saved_model_cli is not installed next to {sys.executable}")
  np.save(tmp_path / "x.npy", served["x"])
  images = ["--inputs", f"images={tmp_path / 'x.npy'}"]
  calls = {
    "sample": ["--signature_def", "sample", "--input_exprs", "num_samples=4;component=1;seed=0"],
    "encode": ["--signature_def", "encode", *images],
    "reconstruct": ["--signature_def", "reconstruct", *images],
    "elbo": ["--signature_def", "elbo", *images],
    "metadata": ["--signature_def", "metadata", "--input_exprs", "key='num_categories'"],
    "default": ["--signature_def", export.DEFAULT_SIGNATURE, *images],
  }
  procs = {}
  for name, args in calls.items():
    outdir = tmp_path / name
    cmd = [SAVED_MODEL_CLI, "run", "--dir", served["path"], "--tag_set", "serve"]
    cmd += [*args, "--outdir", str(outdir)]
    procs[name] = subprocess.Popen(
      cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
  for name, proc in procs.items():
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"{name}:\n{stdout[-2000:]}\n{stderr[-3000:]}"
  out = served["out"]
  np.testing.assert_allclose(
    np.load(tmp_path / "encode" / "probs.npy"), out["encode_probs"], rtol=1e-5
  )
  np.testing.assert_allclose(
    np.load(tmp_path / "reconstruct" / "images.npy"), out["reconstruct_images"], rtol=1e-5
  )
  for where in ("elbo", "default"):
    np.testing.assert_allclose(
      np.load(tmp_path / where / "neg_elbo.npy"), out["elbo_neg_elbo"], rtol=1e-5
    )
  assert np.load(tmp_path / "sample" / "images.npy").shape == (4, *SHAPE)
  assert json.loads(np.load(tmp_path / "metadata" / "value.npy").item()) == J
