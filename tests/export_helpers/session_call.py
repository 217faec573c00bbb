"""Loads a tf_lifelong export with TensorFlow's session loader and calls every signature.

  python session_call.py EXPORT_DIR INPUTS_NPZ REQUESTS_JSON OUT_DIR

The loader is `tf.compat.v1.saved_model.loader.load` in a graph session: the
code path of `saved_model_cli run`, and the one that TF Serving's C++
`LoadSavedModel` matches (it restores the variables through the MetaGraph's
saver, not through the object graph). Each signature is run as
`saved_model_cli run` runs it: its SignatureDef's tensor names are fed and
fetched. REQUESTS_JSON is a list of TF Serving REST bodies (`signature_name`
optional: `serving_default`; columnar `inputs` or row-format `instances`);
each is converted as TF Serving converts it and run.

Imports only tensorflow and numpy (tensorflow_probability and tf_lifelong are
blocked). Writes OUT_DIR/session_outputs.npz and OUT_DIR/session_report.json.
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

v1 = tf.compat.v1


def _run(sess, signature_def, inputs):
  """Feeds `inputs` (name -> numpy) to a SignatureDef; returns name -> numpy outputs."""
  feeds = {}
  for name, value in inputs.items():
    info = signature_def.inputs[name]
    feeds[info.name] = np.asarray(value, dtype=tf.dtypes.as_dtype(info.dtype).as_numpy_dtype)
  names = sorted(signature_def.outputs)
  values = sess.run([signature_def.outputs[n].name for n in names], feed_dict=feeds)
  return dict(zip(names, values))


def _rest_inputs(body, signature_def):
  """TF Serving's REST conversion: columnar `inputs` as they are, `instances` stacked."""
  if "inputs" in body:
    inputs = body["inputs"]
    if not isinstance(inputs, dict):  # A single unnamed input.
      (name,) = signature_def.inputs
      inputs = {name: inputs}
    return inputs
  rows = body["instances"]
  if isinstance(rows[0], dict):
    return {k: [row[k] for row in rows] for k in rows[0]}
  (name,) = signature_def.inputs
  return {name: rows}


def main(export_dir, inputs_npz, requests_json, out_dir):
  """Loads, calls, records."""
  x = np.load(inputs_npz)["x"]
  with open(requests_json) as f:
    requests = json.load(f)
  out, report = {}, {"rest": []}
  with v1.Session(graph=tf.Graph()) as sess:
    meta_graph = v1.saved_model.loader.load(sess, ["serve"], export_dir)
    sigs = meta_graph.signature_def
    report["signatures"] = sorted(name for name in sigs if not name.startswith("__"))
    meta = json.loads(_run(sess, sigs["metadata"], {"key": ""})["json"].decode("utf-8"))
    report["metadata"] = meta
    report["metadata_num_categories"] = _run(sess, sigs["metadata"], {"key": "num_categories"})[
      "value"
    ].decode("utf-8")
    try:
      _run(sess, sigs["metadata"], {"key": "no such key"})
      report["unknown_key_error"] = None
    except tf.errors.InvalidArgumentError as e:
      report["unknown_key_error"] = e.message
    for j in range(meta["num_categories"]):
      res = _run(sess, sigs["sample"], {"num_samples": 50, "component": j, "seed": j})
      out.update({f"sample{j}_{k}": v for k, v in res.items()})
    res = _run(sess, sigs["sample"], {"num_samples": 60, "component": -1, "seed": 11})
    out.update({f"uniform_{k}": v for k, v in res.items()})
    for name in ("encode", "reconstruct", "elbo", "serving_default"):
      out.update({f"{name}_{k}": v for k, v in _run(sess, sigs[name], {"images": x}).items()})
    for body in requests:
      name = body.get("signature_name", "serving_default")
      res = _run(sess, sigs[name], _rest_inputs(body, sigs[name]))
      report["rest"].append({"signature": name, "outputs": {k: v.tolist() for k, v in res.items()}})
  report["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
  np.savez(os.path.join(out_dir, "session_outputs.npz"), **out)
  with open(os.path.join(out_dir, "session_report.json"), "w") as f:
    json.dump(report, f)


if __name__ == "__main__":
  main(*sys.argv[1:])
