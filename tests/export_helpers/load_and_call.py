"""Loads a tf_lifelong export with plain TensorFlow and calls every signature.

  python load_and_call.py EXPORT_DIR INPUTS_NPZ OUT_DIR

Imports only tensorflow and numpy; importing tensorflow_probability or
tf_lifelong is blocked (an ImportError), and the script records which of them
ended up in sys.modules. It writes OUT_DIR/outputs.npz (the signatures' outputs)
and OUT_DIR/report.json (signature names, refused inputs, metadata, modules);
tests/test_export.py checks them.
"""

import importlib.abc
import json
import os
import sys

BLOCKED = ("tensorflow_probability", "tf_lifelong")


class _Blocker(importlib.abc.MetaPathFinder):
  """Refuses to import the packages an export must not need."""

  def find_spec(self, fullname, path=None, target=None):
    if fullname.split(".")[0] in BLOCKED:
      raise ImportError(f"{fullname} must not be needed to load a tf_lifelong export")
    return None


sys.meta_path.insert(0, _Blocker())

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def _call(fn, **kwargs):
  """Calls a signature; returns (outputs as numpy, None) or (None, error)."""
  try:
    return {k: v.numpy() for k, v in fn(**kwargs).items()}, None
  except Exception as e:  # noqa: BLE001 - recording whatever TensorFlow raises
    return None, {"type": type(e).__name__, "message": str(e)}


def main(export_dir: str, inputs_npz: str, out_dir: str) -> None:
  """Loads, calls, records."""
  loaded = tf.saved_model.load(export_dir)
  sigs = loaded.signatures
  meta_json = sigs["metadata"](key=tf.constant(""))["json"].numpy().decode("utf-8")
  meta = json.loads(meta_json)
  num_categories = meta["num_categories"]
  x = np.load(inputs_npz)["x"]
  i32 = lambda v: tf.constant(v, tf.int32)  # noqa: E731
  out = {}
  for j in range(num_categories):
    res, err = _call(sigs["sample"], num_samples=i32(50), component=i32(j), seed=i32(j))
    assert err is None, err
    for k, v in res.items():
      out[f"sample{j}_{k}"] = v
  for name, seed in (("uniform", 11), ("uniform_again", 11), ("uniform_other", 12)):
    res, err = _call(sigs["sample"], num_samples=i32(60), component=i32(-1), seed=i32(seed))
    assert err is None, err
    for k, v in res.items():
      out[f"{name}_{k}"] = v
  res, err = _call(sigs["sample"], num_samples=i32(0), component=i32(-1), seed=i32(0))
  assert err is None, err
  out["empty_images"] = res["images"]
  for name in ("encode", "reconstruct", "elbo"):
    res, err = _call(sigs[name], images=tf.constant(x))
    assert err is None, (name, err)
    for k, v in res.items():
      out[f"{name}_{k}"] = v
  out["elbo_again_neg_elbo"] = _call(sigs["elbo"], images=tf.constant(x))[0]["neg_elbo"]
  # The restored tf.functions answer too, not only the signatures.
  out["function_encode_probs"] = loaded.encode(tf.constant(x))["probs"].numpy()

  h, w, c = meta["image_shape"]
  bad_images = {
    "transposed_hw": tf.zeros([2, w, h, c]),
    "wrong_channels": tf.zeros([2, h, w, c + 2]),
    "rank3": tf.zeros([h, w, c]),
    "rank5": tf.zeros([1, 2, h, w, c]),
    "float64": tf.zeros([2, h, w, c], tf.float64),
    "int32": tf.zeros([2, h, w, c], tf.int32),
    "uint8": tf.zeros([2, h, w, c], tf.uint8),
    "above_one": tf.fill([2, h, w, c], 1.5),
    "below_zero": tf.fill([2, h, w, c], -0.5),
    "nan": tf.fill([2, h, w, c], float("nan")),
    "inf": tf.fill([2, h, w, c], float("inf")),
  }
  refused = {}
  for sig in ("encode", "reconstruct", "elbo"):
    for name, images in bad_images.items():
      refused[f"{sig}/{name}"] = _call(sigs[sig], images=images)[1]
  bad_sample = {
    "component_J": (5, num_categories, 0),
    "component_minus2": (5, -2, 0),
    "num_samples_negative": (-1, 0, 0),
  }
  for name, (n, comp, seed) in bad_sample.items():
    refused[f"sample/{name}"] = _call(
      sigs["sample"], num_samples=i32(n), component=i32(comp), seed=i32(seed)
    )[1]
  refused["sample/component_vector"] = _call(
    sigs["sample"], num_samples=i32(5), component=tf.constant([0, 1]), seed=i32(0)
  )[1]

  np.savez(os.path.join(out_dir, "outputs.npz"), **out)
  report = {
    "signatures": sorted(sigs.keys()),
    "outputs": {k: sorted(v.structured_outputs) for k, v in sigs.items()},
    "inputs": {k: sorted(v.structured_input_signature[1]) for k, v in sigs.items()},
    "metadata_json": meta_json,
    "refused": refused,
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
  }
  with open(os.path.join(out_dir, "report.json"), "w") as f:
    json.dump(report, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
