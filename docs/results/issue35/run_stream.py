"""Runs bin/train --boundaries=detect on a target stream; records wall, peak RSS (ru_maxrss of
the child), and scores the decisions against the truth per row."""
import json, os, subprocess, sys, time, resource
import numpy as np
name, workdir, truth_path, *parts = sys.argv[1:]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
COMMON = ["--boundaries=detect", "--threads=1", "--max_steps_per_interval=2000", "--sampling_samples=0"]
out = {"stream": name, "parts": []}
for i, data in enumerate(parts):
  cmd = [sys.executable, "bin/train", f"--workdir={workdir}", f"--dataset=npz:{data}"] + COMMON
  if i: cmd.append("--continue")
  start = time.monotonic()
  p = subprocess.Popen(cmd, cwd=ROOT, stdout=open(f"{workdir}.log{i}", "w"), stderr=subprocess.STDOUT)
  _, status, usage = os.wait4(p.pid, 0)
  out["parts"].append({"command": " ".join(cmd[1:]), "status": status, "wall_s": round(time.monotonic() - start, 1),
                       "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)})
truth = np.load(truth_path) if truth_path.endswith(".npy") else np.load(truth_path)["distribution"]
decisions = [json.loads(l) for l in open(os.path.join(workdir, "boundaries.jsonl"))]
chunk = 1000
# Global rows of each decision; a change = a decision other than same (or a gradual same is same).
changes_true = [i for i in range(1, len(truth)) if truth[i] != truth[i - 1]]
found_at = [d["chunk"] * chunk + d.get("start", 0) for d in decisions if d["decision"] != "same" and d["chunk"] + d.get("start", 0) > 0]
out["true_changes"] = changes_true
out["decided_changes"] = found_at
out["decisions"] = [(d["chunk"], d.get("start", 0), d["decision"], d["component"], d.get("truth"), d.get("gradual")) for d in decisions if d["decision"] != "same" or d.get("gradual")]
out["decision_seconds"] = round(sum(d.get("seconds") or 0 for d in decisions), 1)
json.dump(out, open(f"{workdir}.json", "w"), indent=1)
print(json.dumps(out, indent=1))
