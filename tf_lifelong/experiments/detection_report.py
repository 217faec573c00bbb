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

`summarize(runs)` pairs each `detect` run with the `with_consistency` run of
the same seed: the figures above, both final test -ELBOs and both wall times.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence

from tf_lifelong.train import task_free

DETECT, GIVEN = "detect", "with_consistency"


def read_decisions(workdir: str) -> list[dict]:
  path = os.path.join(workdir, task_free.BOUNDARIES)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def assess(decisions: Sequence[dict]) -> dict:
  """Transitions found / missed / false, delays and new-return accuracy (module docstring)."""
  decisions = sorted(decisions, key=lambda d: d["chunk"])
  truths = [d["truth"] for d in decisions]
  n = len(decisions)
  transitions = [c for c in range(1, n) if truths[c] != truths[c - 1]]
  shifts = [c for c in range(1, n) if decisions[c]["decision"] != "same"]
  owner: dict[int, object] = {}  # component -> the true distribution it was made for
  for d in decisions:
    if d["decision"] == "new" and d["component"] is not None:
      owner.setdefault(d["component"], d["truth"])
  used, delays, right, wrong = set(), [], 0, []
  for i, t in enumerate(transitions):
    end = transitions[i + 1] if i + 1 < len(transitions) else n
    match = next((s for s in shifts if t <= s <= t + 1 and s < end and s not in used), None)
    if match is None:
      continue
    used.add(match)
    delays.append(match - t)
    d = decisions[match]
    first_time = truths[t] not in truths[:t]
    ok = (
      d["decision"] == "new"
      if first_time
      else d["decision"] == "return" and owner.get(d["component"]) == truths[t]
    )
    right += ok
    if not ok:
      wrong.append(match)
  found = len(delays)
  return {
    "chunks": n,
    "transitions": len(transitions),
    "found": found,
    "missed": len(transitions) - found,
    "false": len([s for s in shifts if s not in used]),
    "false_chunks": [s for s in shifts if s not in used],
    "mean_delay": sum(delays) / found if found else None,
    "max_delay": max(delays) if delays else None,
    "decisions_right": right,
    "decision_accuracy": right / found if found else None,
    "wrong_chunks": wrong,
    "decision_seconds": round(sum(d.get("seconds") or 0.0 for d in decisions), 2),
  }


def copy_decisions(output: str, runs: dict) -> list[str]:
  """Copies each `detect` run's boundaries.jsonl to OUT/boundaries/seed-N.jsonl (beside the
  report, outside the runs/ folder that a repository ignores); returns the paths."""
  paths = []
  for run in runs.get(DETECT, []):
    source = os.path.join(run.workdir, task_free.BOUNDARIES)
    if os.path.exists(source):
      target = os.path.join(output, "boundaries", f"seed-{run.seed}.jsonl")
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copyfile(source, target)
      paths.append(target)
  return paths


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
    "| wall s detect / given | decision s | chunk training s |",
    "|---" * 14 + "|",
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
      f"| {fmt(e['decision_seconds'], 1)} | {fmt(e.get('chunk_train_seconds'), 1)} |"
    )
  lines += [
    "",
    "Test -ELBO: the final row's, on every distribution seen. A transition is found "
    "when a shift is decided at its chunk or the next; false shifts start an interval "
    "where the distribution did not change; decision s: the time of the decisions "
    "(statistics and references), inside the detect run's wall time, as is chunk training "
    "s: the steps after each chunk joined its interval (part of each interval's step "
    "budget) with their fit calls. Wrong decisions "
    "and false shifts by chunk: "
    + "; ".join(
      f"seed {e['seed']}: wrong {e['wrong_chunks'] or 'none'}, false {e['false_chunks'] or 'none'}"
      for e in entries
    )
    + ". Every decision with its statistics: `boundaries/seed-N.jsonl`.",
    "",
  ]
  return lines
