"""Return-or-new cases from a told-boundaries run, to calibrate the return test offline
(issue #35 part 4; docs/task_free.md, "Returns among look-alikes and under drift").

    bin/train --workdir=W --dataset=fashion_mnist --order=0,6,2,4,0,2,6,4 \\
        --max_steps_per_interval=2000 --keep_checkpoints=0 --sampling_samples=0 ...
    python docs/results/issue35/return_cases.py W OUT.jsonl      # the cases
    python docs/results/issue35/return_cases.py --sweep OUT.jsonl [...]  # the rules
    python docs/results/issue35/return_cases.py --rescore W OUT.jsonl    # today's ratio

Judge: the model at each interval's end checkpoint c (in a detect run, the teacher while
interval c + 1 is open). References: each component's, made as the learner makes them
(detection.make_reference, with its held-out images) at the end of its latest interval
<= c, on that distribution's *validation* split. Cases: ROWS *training* images of every
distribution of the dataset but the one of interval c + 1 (the open one): a return to its
component if it was seen by interval c, else new. No test image is used. Per case, the
candidate (the component the encoder sends most of the images to, as the learner picks
it) and its statistics: posterior share, profile distance d, nearest-sample ratio r
(neighbours.py, as deciding.py measures it) and its two factors.
"""

import json
import sys

import numpy as np

from tf_lifelong.data import streams
from tf_lifelong.state import checkpoints
from tf_lifelong.train import detection, neighbours

ROWS = 500
MAX_CASES = 12
"""Per judge, at most half seen and half unseen distributions (drawn with a fixed seed)."""


def cases(workdir: str, out_path: str) -> None:
  config = checkpoints.read_config(workdir)
  order = [iv.distribution for iv in streams.build_stream(config).intervals]
  comp, first = {}, {}
  for t, d in enumerate(order):
    if d.id not in comp:
      comp[d.id], first[d.id] = len(comp), t
  dists = streams._distributions(config)
  rng = np.random.default_rng(0)
  refs = {}
  with open(out_path, "w") as out:
    for c in range(len(order) - 1):
      model = checkpoints.restore_student(workdir, checkpoints.checkpoint_name(c))[0]
      j_c, held = comp[order[c].id], order[c].validation.images
      scores = detection.component_scores(model, held, config.seed)
      refs[j_c] = (detection.make_reference(model, scores, j_c, config.seed, images=held), c)
      current = order[c + 1].id
      exclude = comp[current] if first[current] <= c else None
      ids = [d for d in dists if d != current]
      seen = [d for d in ids if first.get(d, 1 << 30) <= c]
      unseen = [d for d in ids if first.get(d, 1 << 30) > c]
      half = MAX_CASES // 2
      pick = list(rng.choice(seen, min(half, len(seen)), replace=False)) if seen else []
      room = MAX_CASES - len(pick)
      pick += list(rng.choice(unseen, min(room, len(unseen)), replace=False)) if unseen else []
      for d in map(int, pick):
        x = dists[d].train.images[:ROWS]
        masses = detection.posterior_masses(model, x)
        options = [j for j in refs if j != exclude and j < len(masses)]
        j = max(options, key=lambda i: float(masses[i]))
        ref, made = refs[j]
        now = detection.sample_profile(model, j, ref.components, config.seed)
        chunk = detection.component_scores(model, x, config.seed + 1)
        then = neighbours.Distances(**ref.neighbour)
        got = neighbours.measure(model, j, x, config.seed, n=then.rows)
        row = {
          "judge": c,
          "name": dists[d].name,
          "truth": comp[d] if first.get(d, 1 << 30) <= c else None,
          "candidate": j,
          "age": c - made,
          "mass": float(masses[j]),
          "d": float(np.max(detection.return_distances(chunk, ref, now))),
          "ratio": neighbours.ratio(got, then),
          "near": got.near / then.near,
          "cover": got.cover / then.cover,
        }
        out.write(json.dumps(row) + "\n")
      print(f"judge {c}: J = {int(model.num_categories)}, {len(pick)} cases", flush=True)


def rescore(workdir: str, path: str) -> None:
  """The cases' ratio columns again with today's neighbours.measure (its distance changed in
  session 18: units of the samples' spread); the cases, their candidate, share and profile
  distance stay as they were (the rule's other half does not depend on the distance)."""
  config = checkpoints.read_config(workdir)
  order = [iv.distribution for iv in streams.build_stream(config).intervals]
  comp = {}
  for d in order:
    comp.setdefault(d.id, len(comp))
  dists = streams._distributions(config)
  by_name = {dists[d].name: d for d in dists}
  rows, refs = [json.loads(line) for line in open(path)], {}
  for c in range(len(order) - 1):
    model = checkpoints.restore_student(workdir, checkpoints.checkpoint_name(c))[0]
    held = order[c].validation.images
    refs[comp[order[c].id]] = neighbours.measure(model, comp[order[c].id], held, config.seed)
    for row in (r for r in rows if r["judge"] == c):
      then = refs[row["candidate"]]
      x = dists[by_name[row["name"]]].train.images[:ROWS]
      got = neighbours.measure(model, row["candidate"], x, config.seed, n=then.rows)
      row.update(ratio=neighbours.ratio(got, then), near=got.near / then.near)
      row.update(cover=got.cover / then.cover)
    print(f"judge {c} rescored", flush=True)
  with open(path, "w") as out:
    out.writelines(json.dumps(r) + "\n" for r in rows)


def right(row, bound, d_max=1.5, key="ratio") -> bool:
  """Is the decision of the rule `ratio <= bound(age) and d <= d_max` right on this case?"""
  returns = row[key] <= bound(row["age"]) and row["d"] <= d_max
  return (row["truth"] is None and not returns) or (returns and row["candidate"] == row["truth"])


def _flat(b):
  return lambda age: b


def _grows(b, g):
  return lambda age: b + g * np.log1p(age)


def sweep(paths: list[str]) -> None:
  """Per file: the returns' largest r and the new cases' smallest (with d <= 1.5) by the
  reference's age; then the share right for flat and growing bounds."""
  data = {p: [json.loads(line) for line in open(p)] for p in paths}
  for p, rows in data.items():
    print(f"{p}: {len(rows)} cases")
    for age in sorted({r["age"] for r in rows}):
      back = [r["ratio"] for r in rows if r["age"] == age and r["truth"] == r["candidate"]]
      new = [r["ratio"] for r in rows if r["age"] == age and r["truth"] is None and r["d"] <= 1.5]
      top = f"{max(back):.3f}" if back else "-"
      low = f"{min(new):.3f}" if new else "-"
      print(f"  age {age:2d}: returns' r at most {top}, new ones' at least {low}")
  rules = [(f"r <= {b}", _flat(b)) for b in (1.08, 1.1, 1.12, 1.14, 1.16, 1.2)]
  rules += [
    (f"r <= {b} + {g} ln(1 + age)", _grows(b, g))
    for b, g in ((1.08, 0.02), (1.08, 0.04), (1.1, 0.02), (1.1, 0.04), (1.12, 0.02), (1.1, 0.12))
  ]
  for name, bound in rules:
    cells = [f"{sum(right(r, bound) for r in rows)}/{len(rows)}" for rows in data.values()]
    print(f"  {name:28s} and d <= 1.5: " + "  ".join(cells))


if __name__ == "__main__":
  if sys.argv[1] == "--sweep":
    sweep(sys.argv[2:])
  elif sys.argv[1] == "--rescore":
    rescore(sys.argv[2], sys.argv[3])
  else:
    cases(sys.argv[1], sys.argv[2])
