"""PNG plots of a comparison: metric curves against steps or training loss, and cosine-matrix heatmaps.

Figures are built with ``matplotlib.figure.Figure`` and saved with the Agg canvas, so no pyplot
state or display is involved. One colour per optimizer group; seeds of a group share it. matplotlib
is imported when the first figure is made, so importing ``nexus.report`` (e.g. for ``launch.sweep``)
does not load it.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import math

import numpy as np

from nexus.report import matched
from nexus.report import runs as runs_lib

Groups = Mapping[str, Sequence[runs_lib.RunRecord]]


def _grid(num_panels: int, panel_size: tuple[float, float] = (4.2, 3.2)):
  from matplotlib import figure as figure_lib  # pylint: disable=g-import-not-at-top

  columns = min(3, num_panels)
  rows = math.ceil(num_panels / columns)
  fig = figure_lib.Figure(
    figsize=(panel_size[0] * columns, panel_size[1] * rows), layout="constrained"
  )
  axes = fig.subplots(rows, columns, squeeze=False).ravel()
  for unused in axes[num_panels:]:
    unused.set_visible(False)
  return fig, axes


def _x_values(
  run: runs_lib.RunRecord, steps: np.ndarray, x_axis: str, loss_key: str, window: int
) -> np.ndarray:
  if x_axis == "step":
    return steps.astype(np.float64)
  loss_steps, losses = run.curve(loss_key)
  if not len(loss_steps):
    return np.full(len(steps), np.nan)
  return matched.loss_at_steps(loss_steps, losses, steps, window=window)


def plot_curves(
  groups: Groups, keys: Sequence[str], path: str, *, x_axis: str, loss_key: str, window: int = 1
) -> bool:
  """One panel per metric key, one line per run, against ``x_axis`` ("step" or "train_loss").

  Against training loss, x is the monotone (smoothed, running-minimum) training loss of ``nexus.report.matched``
  and the axis is reversed so training progresses left to right. Returns False (and writes nothing) when
  no run has any of ``keys``.
  """
  if x_axis not in ("step", "train_loss"):
    raise ValueError(f"x_axis={x_axis!r} must be 'step' or 'train_loss'.")
  if not keys:
    return False
  fig, axes = _grid(len(keys))
  plotted = False
  for color_index, (optimizer, members) in enumerate(groups.items()):
    color = f"C{color_index % 10}"
    for seed_index, run in enumerate(members):
      for axis, key in zip(axes, keys):
        steps, values = run.curve(key)
        x = _x_values(run, steps, x_axis, loss_key, window)
        known = np.isfinite(x)
        if not np.any(known):
          continue
        axis.plot(
          x[known],
          values[known],
          color=color,
          marker="." if known.sum() < 30 else None,
          label=optimizer if seed_index == 0 else None,
        )
        plotted = True
  if not plotted:
    return False
  for axis, key in zip(axes, keys):
    axis.set_title(key, fontsize=9)
    axis.set_xlabel("step" if x_axis == "step" else f"{loss_key} (monotone)")
    axis.grid(alpha=0.3)
    if x_axis == "train_loss":
      axis.invert_xaxis()
    if axis.get_legend_handles_labels()[0]:
      axis.legend(fontsize=8)
  fig.savefig(path, dpi=100)
  return True


def _group_cosine(
  members: Sequence[runs_lib.RunRecord],
) -> tuple[list[str], np.ndarray, int, int] | None:
  """The seed-mean of each run's last logged cosine matrix: (sources, matrix, last step, seeds used)."""
  matrices, sources, steps = [], None, []
  for run in members:
    matrix = run.last("geometry/cosine_matrix")
    if matrix is None:
      continue
    matrix = np.asarray(matrix, np.float64)
    names = run.last("geometry/sources") or [str(i) for i in range(len(matrix))]
    if sources is None:
      sources = list(names)
    if list(names) != sources or matrix.shape != (len(sources), len(sources)):
      continue
    matrices.append(matrix)
    steps.append(
      max(int(r["step"]) for r in run.records if r.get("geometry/cosine_matrix") is not None)
    )
  if not matrices or sources is None:
    return None
  return sources, np.mean(matrices, axis=0), max(steps), len(matrices)


def plot_cosine_heatmaps(groups: Groups, path: str) -> bool:
  """One heatmap per optimizer: the seed-mean of the last logged cross-source cosine matrix.

  Seeds whose source list differs from the group's first are left out. Returns False (and writes
  nothing) when no run logged a cosine matrix.
  """
  panels = [
    (optimizer, found)
    for optimizer, members in groups.items()
    if (found := _group_cosine(members)) is not None
  ]
  if not panels:
    return False
  fig, axes = _grid(len(panels), panel_size=(4.6, 4.0))
  for axis, (optimizer, (sources, matrix, step, num_seeds)) in zip(axes, panels):
    image = axis.imshow(matrix, vmin=-1.0, vmax=1.0, cmap="RdBu_r")
    axis.set_xticks(range(len(sources)), sources, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(sources)), sources, fontsize=8)
    for (row, column), value in np.ndenumerate(matrix):
      axis.text(
        column,
        row,
        f"{value:.2f}",
        ha="center",
        va="center",
        fontsize=7,
        color="white" if abs(value) > 0.6 else "black",
      )
    axis.set_title(f"{optimizer}: step {step}, {num_seeds} seed(s)", fontsize=9)
    fig.colorbar(image, ax=axis, shrink=0.8)
  fig.savefig(path, dpi=100)
  return True
