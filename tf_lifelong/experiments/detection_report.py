"""The detection report: a task-free run (`detect`) against told boundaries (`with_consistency`).

`assess(decisions)` scores one run's boundaries.jsonl against the truth it
records:

- a *transition* is a chunk whose true distribution differs from the previous
  chunk's; a *shift* is a chunk decided `return` or `new`;
- a transition at chunk t is *found* by the first shift s with t <= s <= t + 1
  (within one chunk) that comes before the next transition; its *delay* is
  s - t. Transitions without one are *missed*; shifts that find none are *false*;
- a found transition is *right* when its decision is `new` for a distribution
  never seen before, or `return` to the component whose first chunk had the
  same true distribution (the component that the run's first `new` decision
  for that distribution made);
- `decision_seconds`: the time the decisions took (statistics, references).

The rules are monitor/timeline.py's `score`, which also marks the mistakes in the
detection timeline. `summarize(runs)` pairs each `detect` run with the
`with_consistency` run of the same seed: the figures above, both final test -ELBOs
and both wall times. `copy_decisions` puts each seed's decisions and their timeline
(`boundaries/seed-N.jsonl`, `boundaries/timeline-seed-N.png`) beside the report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence

from tf_lifelong.monitor import timeline
from tf_lifelong.train import task_free

DETECT, GIVEN = "detect", "with_consistency"
DECISIONS = "boundaries"
"""OUT's folder of each seed's decisions (seed-N.jsonl) and their timeline (TIMELINE)."""
TIMELINE = "timeline-seed-{seed}.png"


def read_decisions(workdir: str) -> list[dict]:
  return _read_lines(os.path.join(workdir, task_free.BOUNDARIES))


def _read_lines(path: str) -> list[dict]:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def assess(decisions: Sequence[dict]) -> dict:
  """Transitions found / missed / false, delays and new-return accuracy (module docstring)."""
  marks = timeline.score(decisions)
  delays = [s - t for t, s in marks["found"]]
  found = len(delays)
  right = found - len(marks["wrong"])
  return {
    "chunks": len(decisions),
    "transitions": len(marks["changes"]),
    "found": found,
    "missed": len(marks["missed"]),
    "false": len(marks["false"]),
    "false_chunks": marks["false"],
    "mean_delay": sum(delays) / found if found else None,
    "max_delay": max(delays) if delays else None,
    "decisions_right": right,
    "decision_accuracy": right / found if found else None,
    "wrong_chunks": marks["wrong"],
    "decision_seconds": round(sum(d.get("seconds") or 0.0 for d in decisions), 2),
  }


def copy_decisions(output: str, runs: dict) -> list[str]:
  """Copies each `detect` run's boundaries.jsonl to OUT/boundaries/seed-N.jsonl (beside the
  report, outside the runs/ folder that a repository ignores) and draws its timeline
  there (`draw_timelines`); returns the paths of the copies."""
  paths = []
  for run in runs.get(DETECT, []):
    source = os.path.join(run.workdir, task_free.BOUNDARIES)
    if os.path.exists(source):
      target = os.path.join(output, DECISIONS, f"seed-{run.seed}.jsonl")
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copyfile(source, target)
      paths.append(target)
  draw_timelines(output)
  return paths


def draw_timelines(output: str) -> dict[int, str]:
  """Draws each OUT/boundaries/seed-N.jsonl as OUT/boundaries/timeline-seed-N.png
  (monitor/timeline.py; the --return_mass line from OUT/experiment.json's base_config);
  returns seed -> the picture's path relative to OUT."""
  folder = os.path.join(output, DECISIONS)
  if not os.path.isdir(folder):
    return {}
  path = os.path.join(output, "experiment.json")
  return_mass = None
  if os.path.exists(path):
    with open(path) as f:
      return_mass = (json.load(f).get("base_config") or {}).get("return_mass")
  drawn = {}
  for name in sorted(os.listdir(folder)):
    match = re.fullmatch(r"seed-(\d+)\.jsonl", name)
    if match:
      seed = int(match[1])
      decisions = _read_lines(os.path.join(folder, name))
      timeline.write(folder, decisions, return_mass=return_mass, name=TIMELINE.format(seed=seed))
      drawn[seed] = timeline_path(seed)
  return drawn


def timeline_path(seed: int) -> str:
  """A seed's timeline, relative to OUT."""
  return f"{DECISIONS}/{TIMELINE.format(seed=seed)}"


def summarize(runs: dict) -> list[dict]:
  """One entry per seed with a `detect` run (report.Run lists by variant)."""
  given = {r.seed: r for r in runs.get(GIVEN, [])}
  out = []
  for run in runs.get(DETECT, []):
    entry = {"seed": run.seed, **assess(read_decisions(run.workdir))}
    entry["intervals"] = len(run.rows)
    entry["detect_test_neg_elbo"] = run.rows[-1].get("test_neg_elbo_seen") if run.rows else None
    entry["detect_wall_seconds"] = run.result.get("wall_seconds")
    entry["chunk_train_seconds"] = round(
      sum(r.get("chunk_train_seconds") or 0.0 for r in run.rows), 1
    )
    other = given.get(run.seed)
    entry["given_test_neg_elbo"] = (
      other.rows[-1].get("test_neg_elbo_seen") if other and other.rows else None
    )
    entry["given_wall_seconds"] = other.result.get("wall_seconds") if other else None
    entry["detect_peak_rss_mb"] = run.result.get("peak_rss_mb")
    entry["given_peak_rss_mb"] = other.result.get("peak_rss_mb") if other else None
    if os.path.exists(os.path.join(run.workdir, task_free.BOUNDARIES)):
      entry["timeline"] = timeline_path(run.seed)  # copy_decisions draws it.
    out.append(entry)
  return out


def markdown(entries: Sequence[dict]) -> list[str]:
  """The report's section (lines)."""
  if not entries:
    return []

  def fmt(v, digits=2):
    return "-" if v is None else (f"{v:.{digits}f}" if isinstance(v, float) else str(v))

  lines = [
    "## Task-free detection (`detect`) against told boundaries (`with_consistency`)",
    "",
    "| seed | chunks | transitions | found | missed | false | mean / max delay "
    "| new/return right | intervals | test -ELBO detect | test -ELBO given "
    "| wall s detect / given | decision s | chunk training s | peak RSS MB detect / given |",
    "|---" * 15 + "|",
  ]
  for e in entries:
    accuracy = (
      f"{e['decisions_right']}/{e['found']} ({100 * e['decision_accuracy']:.0f}%)"
      if e["decision_accuracy"] is not None
      else "-"
    )
    lines.append(
      f"| {e['seed']} | {e['chunks']} | {e['transitions']} | {e['found']} | {e['missed']} "
      f"| {e['false']} | {fmt(e['mean_delay'])} / {fmt(e['max_delay'])} | {accuracy} "
      f"| {e['intervals']} | {fmt(e['detect_test_neg_elbo'])} | {fmt(e['given_test_neg_elbo'])} "
      f"| {fmt(e['detect_wall_seconds'], 0)} / {fmt(e['given_wall_seconds'], 0)} "
      f"| {fmt(e['decision_seconds'], 1)} | {fmt(e.get('chunk_train_seconds'), 1)} "
      f"| {fmt(e.get('detect_peak_rss_mb'), 0)} / {fmt(e.get('given_peak_rss_mb'), 0)} |"
    )
  lines += [
    "",
    "Test -ELBO: the final row's, on every distribution seen. A transition is found "
    "when a shift is decided at its chunk or the next; false shifts start an interval "
    "where the distribution did not change; decision s: the time of the decisions "
    "(statistics and references), inside the detect run's wall time, as is chunk training "
    "s: the steps after each chunk joined its interval (part of each interval's step "
    "budget) with their start (the chunk's reseed); peak RSS: the run's process's high-water mark (its own "
    "with --parallel > 1). Wrong decisions "
    "and false shifts by chunk: "
    + "; ".join(
      f"seed {e['seed']}: wrong {e['wrong_chunks'] or 'none'}, false {e['false_chunks'] or 'none'}"
      for e in entries
    )
    + ". Every decision with its statistics: `boundaries/seed-N.jsonl`.",
    "",
  ]
  return lines + timeline_markdown(entries)


def timeline_markdown(entries: Sequence[dict]) -> list[str]:
  """The timelines' section: each seed's picture, linked."""
  pictures = [(e["seed"], e["timeline"]) for e in entries if e.get("timeline")]
  if not pictures:
    return []
  lines = [
    "### Detection timelines",
    "",
    "Per chunk (x): the shift statistic z and, for a chunk that changed, the return "
    "candidate's profile distance d (sds), nearest-sample ratio r and posterior mass, each "
    "against its threshold (red); the decision (pale: same; `nN`: new component N; `rJ`: return to component J), "
    "the truth in order of arrival (the colours agree where the run is right) and the "
    "mistakes: false shifts (red), missed changes (orange), wrong new/return (magenta). "
    "Drawn by tf_lifelong/monitor/timeline.py from `boundaries/seed-N.jsonl`.",
    "",
  ]
  for seed, rel in pictures:
    lines += [f"Seed {seed}:", "", f"![detection timeline, seed {seed}]({rel})", ""]
  return lines
