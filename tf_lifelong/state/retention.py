"""Checkpoint retention: which checkpoints of a workdir stay on disk.

Two rules, applied by the learner after each checkpoint it writes
(train/persistence.py):

- transient checkpoints (`interval-XXX-start`, `interval-XXX-step-NNNNNN`,
  `interval-XXX-chunk-NNNNNN`, see checkpoints.py) are superseded by the next
  checkpoint: `remove_superseded` removes all but the newest, with whatever an
  interrupted write of one left behind;
- `end` checkpoints (`interval-XXX`) stay, one per interval, unless the run
  keeps only the newest few (`keep_checkpoints`): `keep_latest`. The one
  `latest.json` names always stays, since a resume needs it.

Removal is never fatal: a file that is already gone is not an error.
"""

from __future__ import annotations

import os
import re

from tf_lifelong.state import checkpoints, files

_TRANSIENT = re.compile(r"^(interval-\d+-(?:start|step-\d+|chunk-\d+))(?:\.|_temp|$)")
_END = re.compile(r"^(interval-\d+)(?:\.|_temp|$)")


def remove_superseded(workdir: str, keep: str) -> None:
  """Removes the files of every transient (start/step) checkpoint but `keep`.

  Also removes what an interrupted write of one left behind (files without a
  record, TensorFlow's `_temp` folders). The `end` checkpoints stay.
  """
  _remove_matching(checkpoints.folder(workdir), _TRANSIENT, lambda name: name != keep)


def keep_latest(workdir: str, count: int) -> None:
  """Removes the `end` checkpoints but the newest `count` (0: keeps them all).

  The newest is the one `latest.json` names, which a resume needs: it always
  stays. Transient checkpoints are `remove_superseded`'s business.
  """
  if count <= 0:
    return
  base = checkpoints.folder(workdir)
  ends = sorted(n for n in checkpoints.available(workdir) if _END.match(n + "."))
  doomed = set(ends[:-count])
  try:
    latest = checkpoints.read_state(workdir)["checkpoint"]
  except checkpoints.CheckpointError:
    return
  doomed.discard(latest)
  _remove_matching(base, _END, doomed.__contains__)


def _remove_matching(base: str, pattern: re.Pattern, doomed) -> None:
  """Removes the entries of `base` whose `pattern` group 1 is `doomed` (never fatal)."""
  try:
    names = files.listdir(base)
  except (OSError, files.not_found()):
    return
  for entry in names:
    match = pattern.match(entry)
    if match is None or not doomed(match.group(1)):
      continue
    path = os.path.join(base, entry)
    if files.isdir(path):
      files.rmtree(path)
    else:
      files.remove(path)  # Gone already: not an error.
