"""The experiment's report: summary.json, report.md and figures/ in OUT.

    summary = build_report("results/mnist_sequential")

Reads `OUT/experiment.json` and each run folder `OUT/runs/<variant>/seed-<n>/`
(layout.py: metrics.jsonl, neg_elbo_matrix.json, samples/,
result.json, extras/). Missing or unfinished runs are listed, not fatal.
Statistics over seeds are the mean and the population standard deviation
(0 for one seed); NaN values are left out and absent values are null.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Sequence

import numpy as np

from tf_lifelong.evaluation import metrics
from tf_lifelong.experiments import detection_report, figures, layout, presets
from tf_lifelong.state import artifacts

FIGURES = "figures"
SAMPLING_KEYS = ("sampling_own_share", "self_consistency", "real_on_component")
"""The per-interval sampling scores of the rows (evaluation/sampling_scores.py) the report shows."""
LIFELONG = ("with_consistency", "without_consistency", "naive")
"""Variants with one interval per scheduled distribution (the batch VAE has one)."""


@dataclasses.dataclass
class Run:
  """One finished run as the report reads it."""

  variant: str
  seed: int
  workdir: str
  rows: list[dict]
  result: dict
  matrix: dict | None

  @property
  def extras(self) -> dict:
    return self.result.get("extras") or {}


def load_runs(
  output: str, seeds: Sequence[int], variants: Sequence[str]
) -> tuple[dict[str, list[Run]], list[str]]:
  """The finished runs per variant (seed order), and the names of the missing ones."""
  runs, missing = {}, []
  for variant in variants:
    runs[variant] = []
    for seed in seeds:
      workdir = layout.run_dir(output, variant, seed)
      result = layout.read_result(workdir)
      if result is None:
        missing.append(f"{variant}/seed-{seed}")
        continue
      path = os.path.join(workdir, "neg_elbo_matrix.json")
      matrix = None
      if os.path.exists(path):
        with open(path) as f:
          matrix = json.load(f)
      runs[variant].append(
        Run(variant, seed, workdir, artifacts.read_metrics(workdir), result, matrix)
      )
  return runs, missing


def stats(values: Sequence[float | None]) -> dict:
  """{mean, std, n, values} over the finite values (mean, std null when none)."""
  clean = [None if v is None or not math.isfinite(v) else float(v) for v in values]
  finite = [v for v in clean if v is not None]
  if not finite:
    return {"mean": None, "std": None, "n": 0, "values": clean}
  return {
    "mean": float(np.mean(finite)),
    "std": float(np.std(finite)),
    "n": len(finite),
    "values": clean,
  }


def _final(runs: list[Run], key: str) -> dict:
  return stats([r.rows[-1].get(key) if r.rows else None for r in runs])


def _transfer(run: Run) -> tuple[dict, float]:
  m = run.matrix
  if not m or not m["rows"] or run.variant == detection_report.DETECT:
    # A task-free run's rows are its detected intervals, keyed by the learner's own
    # ids, not one per scheduled distribution: forgetting is not defined on them.
    return {}, math.nan
  matrix = metrics.ElboMatrix(
    m["distribution_ids"],
    learned=list(m["learned"]),
    rows=[[math.nan if v is None else v for v in row] for row in m["rows"]],
  )
  return matrix.forgetting(), matrix.backward_transfer()


def _per_interval(runs: list[Run], key: str) -> list[dict]:
  """stats over seeds of `key` after each interval (the longest run's intervals)."""
  width = max((len(r.rows) for r in runs), default=0)
  return [
    stats([r.rows[i].get(key) if i < len(r.rows) else None for r in runs]) for i in range(width)
  ]


def _sampling(runs: list[Run]) -> dict:
  scores = [r.extras.get("consistent_sampling") for r in runs]
  scores = [s for s in scores if s]
  if not scores:
    return {}
  first = scores[0]
  return {
    "mean_purity": stats([s["mean_purity"] for s in scores]),
    "distinct_majority_classes": stats([s["distinct_majority_classes"] for s in scores]),
    "classes_with_share": stats([s["classes_with_share"] for s in scores]),
    "min_share": first["min_share"],
    "num_components": first["num_components"],
    "num_classes": first["num_classes"],
    "classifier_test_accuracy": first["classifier_test_accuracy"],
    "per_seed": scores,
  }


def summarize(record: dict, runs: dict[str, list[Run]], missing: list[str]) -> dict:
  """The summary.json dict (see the module docstring)."""
  out = {
    "preset": record["preset"],
    "seeds": record["seeds"],
    "variants": record["variants"],
    "missing_runs": missing,
  }
  for key, name in (
    ("test_neg_elbo_full", "final_test_neg_elbo"),
    ("test_neg_elbo_seen", "final_test_neg_elbo_seen"),
    ("consistency", "final_consistency"),
    ("sampling_own_share", "final_sampling_own_share"),
    ("self_consistency", "final_self_consistency"),
  ):
    out[name] = {v: _final(rs, key) for v, rs in runs.items()}
  out["sampling_per_interval"] = {
    v: {key: _per_interval(rs, key) for key in SAMPLING_KEYS} for v, rs in runs.items()
  }
  out["iwae_log_likelihood"] = {
    v: {
      **stats([r.extras.get("iwae_log_likelihood") for r in rs]),
      "k": rs[0].extras.get("iwae_k") if rs else None,
      "examples": rs[0].extras.get("iwae_examples") if rs else None,
    }
    for v, rs in runs.items()
  }
  out["consistent_sampling"] = {v: _sampling(rs) for v, rs in runs.items()}
  out["classifier_test_accuracy"] = next(
    (c["classifier_test_accuracy"] for c in out["consistent_sampling"].values() if c), None
  )
  out["backward_transfer"] = {v: stats([_transfer(r)[1] for r in rs]) for v, rs in runs.items()}
  out["mean_forgetting"] = {
    v: stats(
      [float(np.mean(list(f.values()))) if f else None for f in (_transfer(r)[0] for r in rs)]
    )
    for v, rs in runs.items()
  }
  out["run_wall_seconds"] = {
    v: stats([r.result.get("wall_seconds") for r in rs]) for v, rs in runs.items()
  }
  invocations = record.get("invocations", [])
  out["commands"] = {
    "experiment": [i["command"] for i in invocations],
    "runs": {
      f"{r.variant}/seed-{r.seed}": r.result.get("command") for rs in runs.values() for r in rs
    },
  }
  out["wall_seconds"] = round(sum(i.get("wall_seconds", 0.0) for i in invocations), 1)
  out["detection"] = detection_report.summarize(runs)
  return out


def build_report(output: str) -> dict:
  """Writes OUT/summary.json, OUT/report.md and OUT/figures/; returns the summary."""
  with open(os.path.join(output, layout.EXPERIMENT)) as f:
    record = json.load(f)
  runs, missing = load_runs(output, record["seeds"], record["variants"])
  summary = summarize(record, runs, missing)
  summary["figures"] = make_figures(output, record["preset"], runs)
  detection_report.copy_decisions(output, runs)
  artifacts.write_json(os.path.join(output, "summary.json"), _finite(summary))
  artifacts.write_text(os.path.join(output, "report.md"), markdown(summary))
  return summary


def _finite(value):
  """`value` with every non-finite float replaced by None (strict JSON)."""
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def make_figures(output: str, preset: str, runs: dict[str, list[Run]]) -> dict[str, str]:
  """Draws and copies the figures into OUT/figures; returns name -> path relative to OUT."""
  folder = os.path.join(output, FIGURES)
  shutil.rmtree(folder, ignore_errors=True)
  done = {}

  def path(name):
    done[name.removesuffix(".png")] = os.path.join(FIGURES, name)
    return os.path.join(folder, name)

  present = {v: rs for v, rs in runs.items() if rs}
  if not present:
    return done
  for key, label in (("test_neg_elbo_seen", "seen"), ("test_neg_elbo_full", "full")):
    curves = {v: [[r.get(key) for r in run.rows] for run in rs] for v, rs in present.items()}
    figures.curves_figure(
      path(f"neg_elbo_{label}.png"),
      curves,
      f"{preset}: test -ELBO ({label} test set)",
      "-ELBO (nats)",
    )
  _sampling_curves(present, preset, path)
  lifelong = {v: rs for v, rs in present.items() if v in LIFELONG}
  if lifelong:
    curves = {
      v: [[r.get("consistency") for r in run.rows] for run in rs] for v, rs in lifelong.items()
    }
    figures.curves_figure(
      path("consistency.png"), curves, f"{preset}: posterior consistency", "consistency"
    )
    figures.grad_norm_figure(
      path("grad_norms.png"),
      {v: [r.get("grad_norms") or [] for r in rs[0].rows] for v, rs in lifelong.items()},
      f"{preset}: gradient norm (seed {next(iter(lifelong.values()))[0].seed})",
    )
    first = next(iter(lifelong.values()))
    real = figures.mean_std([[r.get("real_examples") for r in run.rows] for run in first])[0]
    synthetic = figures.mean_std(
      [[r.get("synthetic_examples") for r in run.rows] for run in first]
    )[0]
    figures.examples_figure(
      path("examples.png"),
      real,
      synthetic,
      f"{preset}: real vs synthetic examples ({first[0].variant})",
    )
  for v, rs in present.items():
    run = rs[0]
    if run.matrix and v in LIFELONG:
      figures.matrix_figure(
        path(f"neg_elbo_matrix_{v}.png"),
        run.matrix["rows"],
        run.matrix["distribution_ids"],
        f"R matrix, {v} (seed {run.seed})",
      )
    _copy_pictures(run, v, path)
  return done


def _sampling_curves(present: dict[str, list[Run]], preset: str, path) -> None:
  """The own share and self-consistency after every interval, where the rows have them."""
  for key, label in (("sampling_own_share", "own share"), ("self_consistency", "self-consistency")):
    curves = {v: [[r.get(key) for r in run.rows] for run in rs] for v, rs in present.items()}
    if any(x is not None for cs in curves.values() for c in cs for x in c):
      figures.curves_figure(
        path(f"{key}.png"), curves, f"{preset}: consistent sampling, {label}", label
      )


def _copy_pictures(run: Run, variant: str, path) -> None:
  samples = os.path.join(run.workdir, "samples")
  if os.path.isdir(samples) and os.listdir(samples):
    last = sorted(n for n in os.listdir(samples) if n.endswith(".png"))[-1]
    shutil.copyfile(os.path.join(samples, last), path(f"samples_{variant}.png"))
  for name, rel in (run.extras.get("pictures") or {}).items():
    source = os.path.join(run.workdir, rel)
    if os.path.exists(source):
      shutil.copyfile(source, path(f"{name}_{variant}.png"))


def _fmt(s: dict | None, digits: int = 2) -> str:
  if not s or s.get("mean") is None:
    return "-"
  return f"{s['mean']:.{digits}f} +- {s['std']:.{digits}f}"


def markdown(summary: dict) -> str:
  """report.md: a table of final numbers per variant, then the figures and commands."""
  preset = presets.PRESETS.get(summary["preset"])
  lines = [f"# {summary['preset']}", ""]
  if preset:
    lines += [f"{preset.description}; paper section {preset.paper}.", ""]
  lines += [
    f"Seeds: {', '.join(map(str, summary['seeds']))}. Mean +- std over seeds. "
    f"Wall time: {summary['wall_seconds']:.0f} s.",
    "",
  ]
  if summary["missing_runs"]:
    lines += [f"Missing runs: {', '.join(summary['missing_runs'])}.", ""]
  lines += [
    "| variant | test -ELBO (full) | test -ELBO (seen) | consistency | IWAE log p(x) "
    "| purity | distinct classes | own share | self-consistency | backward transfer |",
    "|---" * 10 + "|",
  ]
  for v in summary["variants"]:
    cs = summary["consistent_sampling"].get(v) or {}
    lines.append(
      f"| {v} | {_fmt(summary['final_test_neg_elbo'][v])} "
      f"| {_fmt(summary['final_test_neg_elbo_seen'][v])} "
      f"| {_fmt(summary['final_consistency'][v], 3)} "
      f"| {_fmt(summary['iwae_log_likelihood'][v])} | {_fmt(cs.get('mean_purity'), 3)} "
      f"| {_fmt(cs.get('distinct_majority_classes'), 1)} "
      f"| {_fmt(summary['final_sampling_own_share'][v], 3)} "
      f"| {_fmt(summary['final_self_consistency'][v], 3)} "
      f"| {_fmt(summary['backward_transfer'][v])} |"
    )
  accuracy = summary["classifier_test_accuracy"]
  if accuracy is not None:
    lines += [
      "",
      f"Consistent sampling: each one-hot z_d decoded and classified by an MLP "
      f"trained on the stream's real training data (test accuracy {accuracy:.4f}); "
      "purity = share of a component's samples in its majority class; distinct "
      "classes = distinct majority classes over the components.",
    ]
  lines += [""] + detection_report.markdown(summary.get("detection") or [])
  lines += sampling_markdown(summary)
  lines += ["## Figures", ""]
  lines += [
    f"### {name}\n\n![{name}]({rel})\n"
    for name, rel in summary["figures"].items()
    if not name.startswith("samples_")
  ]
  lines += ["## Commands", "", "```"] + summary["commands"]["experiment"] + ["```", ""]
  lines += ["Each run again alone:", "", "```"]
  lines += list(summary["commands"]["runs"].values()) + ["```", ""]
  return "\n".join(lines)


def sampling_markdown(summary: dict) -> list[str]:
  """report.md's sections on consistent sampling: the own share after every interval
  (mean over seeds, self-consistency in brackets) and each variant's final sample grid."""
  per = summary.get("sampling_per_interval") or {}
  variants = [
    v
    for v in summary["variants"]
    if any(st["n"] for st in per.get(v, {}).get("self_consistency", []))
  ]
  lines = []
  if variants:
    lines += [
      "## Consistent sampling after every interval",
      "",
      "Own share: the share of component j's samples that the classifier puts in j's own "
      "distribution, mean over j (docs/outputs.md, `sampling_own_share`); in brackets the "
      "label-free self-consistency (`self_consistency`). Mean over seeds.",
      "",
      "| interval | " + " | ".join(variants) + " |",
      "|---" * (len(variants) + 1) + "|",
    ]
    width = max(len(per[v]["self_consistency"]) for v in variants)
    for i in range(width):
      cells = []
      for v in variants:
        own, self_ = (
          per[v][k][i] if i < len(per[v][k]) else None
          for k in ("sampling_own_share", "self_consistency")
        )
        cells.append(f"{_mean(own)} ({_mean(self_)})")
      lines.append(f"| {i} | " + " | ".join(cells) + " |")
    lines.append("")
  grids = [
    (v, summary["figures"][f"samples_{v}"])
    for v in summary["variants"]
    if f"samples_{v}" in summary["figures"]
  ]
  if grids:
    lines += [
      "## Sample grids",
      "",
      "The last interval's samples of each variant (its first seed): row j decodes the "
      "one-hot z_d = j; the left margin names the distribution row j should draw.",
      "",
    ]
    lines += [f"### {v}\n\n![samples {v}]({rel})\n" for v, rel in grids]
  return lines


def _mean(s: dict | None) -> str:
  return "-" if not s or s.get("mean") is None else f"{s['mean']:.3f}"
