"""The report's figures (matplotlib, Agg backend): small PNGs, one per picture.

Each function takes plain numbers and a path, draws one figure and closes it.
Curves are per variant: a mean over seeds with a band of +- one standard
deviation; a variant with a single interval (the batch VAE) is a horizontal
dashed line, its final value, across the x range.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from tf_lifelong import installation

# The `figures` extra; without it, one line that names it.
matplotlib = installation.require("matplotlib", "the experiment report (its figures)")
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

SIZE = (5, 3.5)
TITLE_SIZE = 9
DPI = 80
COLORS = {
  "with_consistency": "tab:blue",
  "without_consistency": "tab:orange",
  "batch_vae": "tab:green",
  "naive": "tab:red",
}


def _save(fig, path: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.tight_layout()
  fig.savefig(path, dpi=DPI)
  plt.close(fig)
  return path


def mean_std(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
  """Per-position mean and (population) std over curves of possibly unequal length.

  Missing positions and None count as NaN and are ignored; a position with no
  value is NaN.
  """
  length = max((len(c) for c in curves), default=0)
  a = np.full((len(curves), length), np.nan)
  for i, c in enumerate(curves):
    a[i, : len(c)] = [np.nan if v is None else v for v in c]
  with np.errstate(all="ignore"):
    present = ~np.isnan(a)
    n = present.sum(axis=0)
    total = np.where(present, a, 0.0).sum(axis=0)
    mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    var = np.where(present, (a - mean) ** 2, 0.0).sum(axis=0) / np.maximum(n, 1)
  return mean, np.where(n > 0, np.sqrt(var), np.nan)


def curves_figure(
  path: str,
  curves: Mapping[str, Sequence[Sequence[float]]],
  title: str,
  ylabel: str,
  xlabel: str = "interval",
) -> str:
  """Mean +- std over seeds per variant; `curves[variant]` is one curve per seed."""
  fig, ax = plt.subplots(figsize=SIZE)
  width = max((len(c) for cs in curves.values() for c in cs), default=1)
  for variant, per_seed in curves.items():
    mean, std = mean_std(per_seed)
    color = COLORS.get(variant)
    if len(mean) == 1 and width > 1:
      ax.axhline(mean[0], ls="--", color=color, label=variant)
      ax.axhspan(mean[0] - std[0], mean[0] + std[0], color=color, alpha=0.15)
      continue
    x = np.arange(len(mean))
    ax.plot(x, mean, marker="o", ms=3, color=color, label=variant)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2)
  ax.set_title(title, fontsize=TITLE_SIZE)
  ax.set(xlabel=xlabel, ylabel=ylabel)
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.legend(fontsize=7)
  return _save(fig, path)


def grad_norm_figure(
  path: str, periods: Mapping[str, Sequence[Sequence[float]]], title: str
) -> str:
  """Gradient norm over evaluation periods, interval after interval (dotted boundaries).

  `periods[variant]` is, per interval, the mean gradient norm of each of its
  evaluation periods (one seed).
  """
  fig, ax = plt.subplots(figsize=SIZE)
  boundaries = set()
  for variant, per_interval in periods.items():
    values = [v for interval in per_interval for v in interval]
    ax.plot(
      np.arange(len(values)),
      values,
      lw=1,
      marker=".",
      ms=3,
      color=COLORS.get(variant),
      label=variant,
    )
    boundaries.update(np.cumsum([len(i) for i in per_interval])[:-1].tolist())
  for b in sorted(boundaries):
    ax.axvline(b - 0.5, color="grey", lw=0.5, ls=":")
  ax.set_title(title, fontsize=TITLE_SIZE)
  ax.set(xlabel="evaluation period (dotted: interval boundaries)", ylabel="gradient norm")
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.set_yscale("log")
  ax.legend(fontsize=7)
  return _save(fig, path)


def examples_figure(
  path: str, real: Sequence[float], synthetic: Sequence[float], title: str
) -> str:
  """Real and synthetic examples per interval (paper fig. 7), stacked bars."""
  fig, ax = plt.subplots(figsize=SIZE)
  x = np.arange(len(real))
  ax.bar(x, real, color="tab:blue", label="real")
  ax.bar(x, synthetic, bottom=real, color="tab:orange", label="synthetic")
  ax.set_title(title, fontsize=TITLE_SIZE)
  ax.set(xlabel="interval", ylabel="examples")
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.legend(fontsize=7)
  return _save(fig, path)


def matrix_figure(
  path: str, matrix: Sequence[Sequence[float | None]], distribution_ids: Sequence[int], title: str
) -> str:
  """Heatmap of R[i][j], the test -ELBO of distribution j after interval i."""
  a = np.asarray([[np.nan if v is None else v for v in row] for row in matrix], float)
  fig, ax = plt.subplots(figsize=SIZE)
  image = ax.imshow(a, aspect="auto", cmap="viridis_r", interpolation="nearest")
  fig.colorbar(image, ax=ax, label="test -ELBO (nats)")
  if len(distribution_ids) <= 20:
    ax.set_xticks(range(len(distribution_ids)), [str(i) for i in distribution_ids], fontsize=7)
  ax.yaxis.set_major_locator(MaxNLocator(integer=True))
  ax.set_title(title, fontsize=TITLE_SIZE)
  ax.set(xlabel="distribution", ylabel="after interval")
  return _save(fig, path)
