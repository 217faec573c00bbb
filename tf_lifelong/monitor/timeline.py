"""The detection timeline: a task-free run's decisions in one picture.

    image = timeline.draw(decisions)          # a PIL RGB image; decisions: boundaries.jsonl lines
    timeline.write(workdir, decisions)        # W/detection_timeline.png, atomically
    timeline.record(workdir, writer, decisions, step, return_mass=0.95)  # the PNG and TensorBoard

x is time: one column of cells per chunk, in the order decided (its `chunk` number on the
axis); a chunk that was cut where it changes (train/segmenting.py) has a column per segment,
each a decision of its own (`CHUNK:START` on the axis for one that starts inside the
chunk). The picture grows with the chunks (`PX_PER_CHUNK` each) up to `MAX_PLOT` pixels,
so that 10 chunks and 1000 both stay legible. From top to bottom (detection.py's statistics,
the fields of `detection.Decision`):

- **shift z**: `statistic`, the shift test's standard score: the largest Welch |z| of a
  change between the chunk's -ELBO profile and the current interval's held-out share (in
  S_k, in KL_c, or in a difference s_j - s_k), against `threshold` (--shift_threshold, the
  red line): above it the chunk is not *same*. None for a chunk with no open interval.
  Log scale (log10(1 + v)): a change scores tens, the noise about 1.
- **return d**: `return_statistic`, for a chunk that is not *same*: the largest distance, in
  the reference's sds, between the chunk's profile and that of the candidate `best_return`
  (the component the encoder sends most of the chunk to), against `return_threshold`
  (--return_threshold): at most it, with r at most its threshold, is a return. Log scale.
- **return r**: `return_ratio`, the candidate's nearest-sample ratio (train/neighbours.py:
  the chunk's mean distance to the candidate's fresh samples over that of its own held-out
  images when its reference was made), against `ratio_threshold`, its own bound (a red tick
  per chunk: --return_ratio, growing with the reference's age): at most it, with d at most
  its threshold, is a return. Linear, 0.5 to 2.
- **return mass**: `return_mass`, the candidate's share of the chunk's mean posterior
  q(z_d = j | x), against --return_mass where that gates (a line where `draw` is given a
  non-zero one: the decisions do not record it).
  The stems of the four panels are coloured by the chunk's decision (same / new / return).
- **decision**: a cell per chunk in the colour of its interval's component (that of the
  last new / return), pale for *same*, full for *new* (labelled `n3`: new component 3) and
  *return* (`r1`: return to component 1).
- **truth** (where the stream knows it): the true distribution of each chunk, coloured in
  order of first arrival, so that a run right everywhere has its decision band's colours;
  its id or name where there is room, and a key of the names below. Thin grey lines mark
  the true changes across the panels.
- **mistakes** (with truth; detection_report's rules): a *false shift* (decided new or
  return where the truth did not change), a *missed change* (no shift at its chunk or the
  next), a *wrong* decision (a found change decided new for a distribution seen before, or
  not returned to the component made for it).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from tf_lifelong.monitor import timeline_paint as paint
from tf_lifelong.monitor.timeline_paint import has_truth
from tf_lifelong.state import files

FILENAME = "detection_timeline.png"
TAG = "detection_timeline"
"""The TensorBoard image's tag."""


def _as_dicts(decisions: Sequence) -> list[dict]:
  out = [d.to_dict() if hasattr(d, "to_dict") else dict(d) for d in decisions]
  return sorted(out, key=lambda d: (d["chunk"], d.get("start") or 0))


def score(decisions: Sequence[dict]) -> dict[str, list]:
  """The decisions against the truth (detection_report's rules, its module docstring), by
  position in chunk order: `changes` (where the truth changes), `found` ([change, shift]
  pairs), `missed`, `false` (shifts that found no change) and `wrong` (found shifts
  decided wrong). Without truth there is no change: every shift is `false`."""
  decisions = _as_dicts(decisions)
  out = {"changes": [], "found": [], "missed": [], "false": [], "wrong": []}
  truths, n = [d.get("truth") for d in decisions], len(decisions)
  changes = out["changes"] = [c for c in range(1, n) if truths[c] != truths[c - 1]]
  shifts = [c for c in range(1, n) if decisions[c]["decision"] != "same"]
  owner: dict = {}  # component -> the true distribution the run's first `new` for it had
  for d in decisions:
    if d["decision"] == "new" and d.get("component") is not None:
      owner.setdefault(d["component"], d.get("truth"))
  used = set()
  for i, t in enumerate(changes):
    end = changes[i + 1] if i + 1 < len(changes) else n
    match = next((s for s in shifts if t <= s <= t + 1 and s < end and s not in used), None)
    if match is None:
      out["missed"].append(t)
      continue
    used.add(match)
    out["found"].append([t, match])
    d = decisions[match]
    if truths[t] not in truths[:t]:
      right = d["decision"] == "new"
    else:
      right = d["decision"] == "return" and owner.get(d.get("component")) == truths[t]
    if not right:
      out["wrong"].append(match)
  out["false"] = [s for s in shifts if s not in used]
  return out


def interval_components(decisions: Sequence[dict]) -> list[int | None]:
  """Per chunk, the component its interval trains: a new / return decision's, carried over
  the *same* chunks after it (a *same* decision's own `component` is k, the component
  that explains the interval best, which a young interval's need not be)."""
  out, current = [], None
  for d in _as_dicts(decisions):
    if d["decision"] != "same" or current is None:
      current = d.get("component")
    out.append(current)
  return out


def draw(decisions: Sequence[dict], *, return_mass: float | None = None) -> Image.Image:
  """The timeline of these decisions (boundaries.jsonl lines) as an RGB image (module
  docstring); `return_mass`: the --return_mass a return needs, drawn as a line."""
  decisions = _as_dicts(decisions)
  lay = layout(decisions)
  image = Image.new("RGB", (lay.image_width, lay.height), paint.WHITE)
  pen = ImageDraw.Draw(image)
  font = paint.font_of()
  marks = score(decisions)
  for n, line in enumerate(_title(decisions, marks)):
    pen.text((paint.LEFT, 3 + 16 * n), line, fill=paint.INK, font=paint.font_of(13 - 2 * n))
  if decisions:
    paint.changes(pen, lay, decisions)
    paint.panels(pen, lay, decisions, return_mass, font)
    paint.decision_band(pen, lay, decisions, interval_components(decisions), font)
    if "truth" in lay.rows:
      paint.truth_band(pen, lay, decisions, font)
      paint.mistake_band(pen, lay, marks)
    paint.axis(pen, lay, decisions, font)
  paint.swatches(pen, lay.rows["legend"][0], paint.legend_items(), lay.image_width, font)
  if "key" in lay.rows:
    top = lay.rows["key"][0]
    pen.text((paint.LEFT, top), "truth, in order of arrival (id name):", fill=paint.INK, font=font)
    paint.swatches(pen, top + 16, paint.key_items(lay.key), lay.image_width, font)
  return image


def layout(decisions: Sequence[dict]) -> paint.Layout:
  """Where each row and chunk of `draw(decisions)` lies (timeline_paint.Layout)."""
  return paint.layout(_as_dicts(decisions))


def _title(decisions: list[dict], marks: dict) -> list[str]:
  kinds = [d["decision"] for d in decisions]
  lines = [
    f"Detection timeline: {len(decisions)} chunks; {kinds.count('new')} new, "
    f"{kinds.count('return')} return"
  ]
  if has_truth(decisions):
    lines.append(
      f"truth: {len(marks['changes'])} changes, {len(marks['found'])} found, "
      f"{len(marks['missed'])} missed; {len(marks['false'])} false shifts; "
      f"{len(marks['wrong'])} wrong new/return"
    )
  return lines


def png(image: Image.Image) -> bytes:
  buf = io.BytesIO()
  image.save(buf, format="PNG", compress_level=1)
  return buf.getvalue()


def write(
  folder: str, decisions: Sequence[dict], *, return_mass: float | None = None, name=FILENAME
) -> str:
  """Draws the timeline and writes it as FOLDER/NAME (local or URL, atomically); its path."""
  path = files.join(folder, name)
  files.write_bytes(path, png(draw(decisions, return_mass=return_mass)))
  return path


def record(
  workdir: str, writer, decisions: Sequence[dict], step: int, *, return_mass=None
) -> Image.Image:
  """W/detection_timeline.png and the TensorBoard image `detection_timeline` at `step`
  (`writer`: a summaries.SummaryWriter, or None), drawn once; returns the image."""
  image = draw(decisions, return_mass=return_mass)
  files.write_bytes(files.join(workdir, FILENAME), png(image))
  if writer is not None:
    description = (
      "x: chunk; shift z, return d, return r and mass against their thresholds; decisions; truth"
    )
    writer.image(TAG, np.asarray(image), step, description)
  return image
