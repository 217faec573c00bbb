"""How the detection timeline (timeline.py) is painted: its geometry, colours and rows.

`layout` places the rows (title, the three statistic panels, the decision band and, with
truth, the truth and mistake bands, the axis, the legend and the truth key) and gives
each chunk its pixel columns (`Layout.cell`); the functions below paint one row each
with PIL's ImageDraw. Nothing here reads or writes a file.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PX_PER_CHUNK = 6
MIN_PLOT, MAX_PLOT = 640, 1800
"""The plot's width in pixels: PX_PER_CHUNK per chunk, within these."""
LEFT, RIGHT = 70, 16
PANELS = (("shift", 110), ("return", 80), ("ratio", 60), ("mass", 50))
RATIO_RANGE = (0.5, 2.0)
"""The nearest-sample ratio panel's range (values beyond it are drawn at its edge)."""
BAND, LABEL_ROW = 16, 12
KEY_MAX = 80
"""The truth key names at most this many distributions."""
PALETTE = (
  (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
  (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
  (0, 0, 128), (170, 110, 40), (0, 128, 128), (128, 0, 0), (102, 153, 0),
  (204, 102, 255), (255, 200, 0), (70, 70, 70), (0, 200, 120), (230, 90, 120),
)  # fmt: skip
"""Component j's colour is PALETTE[j % 20]; truth's, by order of arrival, the same."""
STEM = {"same": (150, 150, 150), "new": (25, 50, 110), "return": (20, 150, 60)}
MISTAKE = {"false": (220, 0, 0), "missed": (255, 150, 0), "wrong": (200, 0, 200)}
THRESHOLD, CHANGE, INK = (220, 0, 0), (215, 215, 215), (0, 0, 0)
WHITE = (255, 255, 255)


def component_colour(j: int | None) -> tuple[int, int, int]:
  return (200, 200, 200) if j is None else PALETTE[int(j) % len(PALETTE)]


def pale(colour: tuple[int, int, int]) -> tuple[int, int, int]:
  """A *same* chunk's cell: the colour blended halfway to white."""
  return tuple(int(round(c + 0.55 * (255 - c))) for c in colour)


def font_of(size: int = 11):
  try:
    return ImageFont.load_default(size=size)
  except (TypeError, OSError, ImportError):  # An old Pillow, or no FreeType: the bitmap font.
    return ImageFont.load_default()


def has_truth(decisions: Sequence[dict]) -> bool:
  return any(d.get("truth") is not None for d in decisions)


@dataclasses.dataclass
class Layout:
  """Where things are: the plot's columns and each row's pixel rows [top, bottom)."""

  count: int
  width: int
  """The plot's width; it starts at LEFT."""
  height: int
  rows: dict[str, tuple[int, int]]
  key: list[tuple[object, str]]
  """The truth key's entries (truth id, name), in order of arrival."""

  @property
  def image_width(self) -> int:
    return LEFT + self.width + RIGHT

  def cell(self, i: int) -> tuple[int, int]:
    """The pixel columns [start, end) of the i-th chunk (at least one)."""
    start = LEFT + i * self.width // self.count
    return start, max(start + 1, LEFT + (i + 1) * self.width // self.count)


def layout(decisions: Sequence[dict]) -> Layout:
  """The picture's geometry for these decisions (boundaries.jsonl lines in chunk order)."""
  count = max(1, len(decisions))
  width = int(min(MAX_PLOT, max(MIN_PLOT, PX_PER_CHUNK * count)))
  rows, y = {}, 0

  def row(name, height, gap=0):
    nonlocal y
    rows[name] = (y, y + height)
    y += height + gap

  row("title", 36)
  for name, height in PANELS:
    row(name + "_title", 14)
    row(name, height, gap=6)
  row("labels", 2 * LABEL_ROW)
  row("decision", BAND, gap=2)
  key = []
  if has_truth(decisions):
    row("truth", BAND, gap=2)
    row("mistakes", BAND - 4)
    for d in decisions:
      if d.get("truth") is not None and d.get("truth") not in [k for k, _ in key]:
        key.append((d["truth"], d.get("truth_name") or ""))
  row("axis", 32)
  lay = Layout(count, width, 0, rows, key)
  row("legend", 16 * _flow(legend_items(), lay.image_width)[1], gap=4)
  if any(name for _, name in key):
    row("key", 16 * (1 + _flow(key_items(key), lay.image_width)[1]) + 4)
  lay.height = y + 4
  return lay


def _flow(items: list[tuple[tuple, str]], width: int) -> tuple[list[tuple], int]:
  """Swatches with their text, left to right over `width` pixels and on to the next line:
  [(colour, text, x, line)] and the number of lines."""
  font = font_of()
  probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
  out, x, line = [], LEFT, 0
  for colour, text in items:
    step = 14 + probe.textlength(text, font=font) + 12
    if x + step > width - 4 and x > LEFT:
      x, line = LEFT, line + 1
    out.append((colour, text, x, line))
    x += step
  return out, line + 1


def swatches(pen, top: int, items: list[tuple[tuple, str]], width: int, font) -> None:
  for colour, text, x, line in _flow(items, width)[0]:
    y = top + 16 * line
    pen.rectangle([x, y + 2, x + 10, y + 12], fill=colour, outline=(90, 90, 90))
    pen.text((x + 14, y), text, fill=INK, font=font)


def legend_items() -> list[tuple[tuple, str]]:
  return [
    (STEM["same"], "same"), (STEM["new"], "new"), (STEM["return"], "return (stems)"),
    (pale(PALETTE[0]), "same (pale)"), (PALETTE[0], "nN: new component N"),
    (PALETTE[2], "rJ: return to component J"), (THRESHOLD, "threshold"),
    (CHANGE, "true change"), (MISTAKE["false"], "false shift"),
    (MISTAKE["missed"], "missed change"), (MISTAKE["wrong"], "wrong new/return"),
  ]  # fmt: skip


def key_items(key: list[tuple[object, str]]) -> list[tuple[tuple, str]]:
  """The truth key: each distribution's colour, id and name (the first KEY_MAX)."""
  items = [(component_colour(n), f"{t} {name}".strip()) for n, (t, name) in enumerate(key)]
  if len(items) > KEY_MAX:
    items = [*items[:KEY_MAX], (WHITE, f"... and {len(items) - KEY_MAX} more")]
  return items


def changes(pen: ImageDraw.ImageDraw, lay: Layout, decisions: list[dict]) -> None:
  """Thin grey lines across the panels where the truth changes."""
  truths = [d.get("truth") for d in decisions]
  top, bottom = lay.rows["shift"][0], lay.rows["decision"][0] - 1
  for i in range(1, len(truths)):
    if truths[i] != truths[i - 1] and truths[i] is not None:
      x = lay.cell(i)[0]
      pen.line([(x, top), (x, bottom)], fill=CHANGE)


def panels(pen, lay: Layout, decisions: list[dict], return_mass, font) -> None:
  shift = next((d["threshold"] for d in decisions if d.get("threshold") is not None), None)
  ret = next(
    (d["return_threshold"] for d in decisions if d.get("return_threshold") is not None), None
  )
  near = [d.get("ratio_threshold") for d in decisions]  # its own bound per chunk (its age)
  kinds = [d["decision"] for d in decisions]
  specs = (
    ("shift", "statistic", shift, "log",
     "shift z (log scale): the chunk's change against the interval; above the threshold: "
     "not same"),
    ("return", "return_statistic", ret, "log",
     "return d (sds, log scale): the candidate's profile distance; at most the threshold "
     "(and the ratio's): return"),
    ("ratio", "return_ratio", near, "ratio",
     "return r: the chunk vs the candidate's samples, over its own data's; at most its "
     "bound (red tick) and d: return"),
    ("mass", "return_mass", return_mass or None, "share",
     "return mass: the candidate's share of q(z_d = j | x) (a gate where a threshold shows)"),
  )  # fmt: skip
  for name, field, threshold, kind, title in specs:
    pen.text((LEFT, lay.rows[name + "_title"][0]), title, fill=INK, font=font)
    values = [d.get(field) for d in decisions]
    _panel(pen, lay, name, values, kinds, threshold, kind, font)


def _scale(values, threshold, kind: str):
  """(f, top value, ticks): f maps a value to [0, 1] of the panel's height. `kind`: "log"
  (log10(1 + v) from 0), "share" (0 to 1), "ratio" (RATIO_RANGE, linear)."""
  if kind == "share":
    return (lambda v: min(max(v, 0.0), 1.0)), 1.0, [0.0, 0.5, 1.0]
  if kind == "ratio":
    low, high = RATIO_RANGE
    return (lambda v: min(max((v - low) / (high - low), 0.0), 1.0)), high, [0.5, 1.0, 1.5, 2.0]
  finite = [v for v in values if v is not None and np.isfinite(v)]
  top = max([10.0, 2.0 * (threshold or 0.0), *finite])
  span = np.log10(1.0 + top)
  nice = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]
  return (lambda v: np.log10(1.0 + max(v, 0.0)) / span), top, [t for t in nice if t <= top]


def _panel(pen, lay: Layout, name, values, kinds, threshold, kind: str, font) -> None:
  top, bottom = lay.rows[name]
  left, right = LEFT, LEFT + lay.width
  f, _, ticks = _scale(values, threshold, kind)
  height = bottom - top - 2

  def y(v):
    return bottom - 1 - f(v) * height

  last = None
  for t in ticks:
    if last is not None and last - y(t) < 11:
      continue
    last = y(t)
    pen.line([(left - 3, y(t)), (left, y(t))], fill=INK)
    label = f"{t:g}"
    pen.text((left - 5 - pen.textlength(label, font=font), y(t) - 6), label, fill=INK, font=font)
  for i, v in enumerate(values):
    if v is None or not np.isfinite(v):
      continue
    x0, x1 = lay.cell(i)
    x1 = x1 - 2 if x1 - x0 >= 4 else x1 - 1
    pen.rectangle([x0, y(v), max(x0, x1), bottom - 1], fill=STEM.get(kinds[i], INK))
  if isinstance(threshold, list):  # one per column
    for i, t in enumerate(threshold):
      if t is not None and np.isfinite(t):
        x0, x1 = lay.cell(i)
        pen.line([(x0 - 2, y(t)), (max(x0, x1 - 1) + 2, y(t))], fill=THRESHOLD, width=2)
  elif threshold is not None:
    for x in range(left, right, 8):
      pen.line([(x, y(threshold)), (min(x + 4, right), y(threshold))], fill=THRESHOLD, width=2)
    label = f"threshold {threshold:g}"
    width = pen.textlength(label, font=font)
    at = y(threshold) - 15 if y(threshold) - 15 > top else y(threshold) + 3
    pen.rectangle([right - width - 4, at + 2, right - 1, at + 13], fill=WHITE)
    pen.text((right - width - 2, at), label, fill=THRESHOLD, font=font)
  pen.rectangle([left, top, right, bottom], outline=INK)


def _labels(pen, lay: Layout, items: list[tuple[int, str]], font) -> None:
  """Texts centred over chunk positions in the two label rows, nearest the band first;
  one that would overlap an earlier one in both rows is left out."""
  top, bottom = lay.rows["labels"]
  ends = [-1e9, -1e9]  # the right edge of the last text in each row
  for i, text in items:
    x0, x1 = lay.cell(i)
    width = pen.textlength(text, font=font)
    start = (x0 + x1) / 2 - width / 2
    for r in (0, 1):
      if start > ends[r] + 2:
        ends[r] = start + width
        pen.text((start, bottom - (r + 1) * LABEL_ROW - 1), text, fill=INK, font=font)
        break


def decision_band(pen, lay: Layout, decisions: list[dict], components: list, font) -> None:
  """Each chunk in its interval's component's colour (`components`), pale for same;
  full at a shift, labelled nN / rJ above."""
  top, bottom = lay.rows["decision"]
  shifts = []
  for full in (False, True):  # Shifts over the same chunks, where cells share a pixel.
    for i, d in enumerate(decisions):
      if (d["decision"] != "same") != full:
        continue
      colour = component_colour(components[i])
      x0, x1 = lay.cell(i)
      pen.rectangle([x0, top, x1 - 1, bottom - 1], fill=colour if full else pale(colour))
      if full:
        prefix = "r" if d["decision"] == "return" else "n"
        shifts.append((i, f"{prefix}{'' if d.get('component') is None else d['component']}"))
  _labels(pen, lay, shifts, font)
  pen.text((4, top + 1), "decision", fill=INK, font=font)


def truth_band(pen, lay: Layout, decisions: list[dict], font) -> None:
  """Each stretch of one true distribution in its colour, with its name or id if room."""
  top, bottom = lay.rows["truth"]
  order = {truth: n for n, (truth, _) in enumerate(lay.key)}
  names, start = dict(lay.key), 0
  for truth, stretch in itertools.groupby(d.get("truth") for d in decisions):
    first, start = start, start + len(list(stretch))
    if truth is None:
      continue
    colour = component_colour(order[truth])
    x0, x1 = lay.cell(first)[0], lay.cell(start - 1)[1]
    pen.rectangle([x0, top, x1 - 1, bottom - 1], fill=colour)
    for text in (names.get(truth), str(truth)):
      if text and pen.textlength(text, font=font) <= x1 - x0 - 4:
        pen.text((x0 + 2, top + 1), text, fill=INK if sum(colour) > 380 else WHITE, font=font)
        break
  pen.text((4, top + 1), "truth", fill=INK, font=font)


def mistake_band(pen, lay: Layout, marks: dict[str, list[int]]) -> None:
  top, bottom = lay.rows["mistakes"]
  for kind in MISTAKE:
    for i in marks[kind]:
      x0, x1 = lay.cell(i)
      if x1 - x0 < 3:
        x0, x1 = x0 - 1, x0 + 2
      pen.rectangle([x0, top, x1 - 1, bottom - 1], fill=MISTAKE[kind])
  pen.text((4, top), "mistakes", fill=INK, font=font_of(10))


def axis(pen, lay: Layout, decisions: list[dict], font) -> None:
  top = lay.rows["axis"][0]
  step = next(s for s in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10**9)
              if s * lay.width / lay.count >= 40)  # fmt: skip
  pen.line([(LEFT, top), (LEFT + lay.width, top)], fill=INK)
  for i in range(0, lay.count, step):
    x0, x1 = lay.cell(i)
    x = (x0 + x1 - 1) / 2
    pen.line([(x, top), (x, top + 4)], fill=INK)
    d = decisions[i]
    label = f"{d['chunk']}:{d['start']}" if d.get("start") else str(d["chunk"])
    pen.text((x - pen.textlength(label, font=font) / 2, top + 5), label, fill=INK, font=font)
  pen.text((LEFT + lay.width / 2 - 16, top + 18), "chunk", fill=INK, font=font)
