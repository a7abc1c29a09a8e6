"""Comparison at matched training loss: every metric read off where each run reaches the same training loss.

The paper compares optimizers at the same pretraining loss, not only at the same step (Chen et al.
2026, arXiv:2604.09258). Training loss is logged every few steps and the other metrics (OOD loss,
accuracy, cosine, closeness) at evaluation steps, so a metric at a loss level ℓ is interpolated:

1. Training-loss curve. The logged losses are averaged over a trailing window of ``window`` values
   (1: none) and then replaced by their running minimum (cummin): the best loss reached so far. This
   makes loss a non-increasing function of step, so "the step where the run reaches ℓ" is well defined;
   upward noise is ignored and downward noise is kept (a small optimistic bias, the same for every run;
   the trailing window reduces it).
2. Loss at an evaluation step: the curve of step 1, interpolated linearly in step between logged
   steps (NaN outside the logged range).
3. Metric at ℓ: linear interpolation *in loss* between the two consecutive evaluations that bracket
   ℓ, taking the first evaluation whose loss is ≤ ℓ (so on a plateau, the first time the run reaches
   ℓ). Levels above the first evaluation's loss or below the last one's are NaN: nothing is
   extrapolated.

Across seeds, ``aggregate`` gives mean ± sample standard deviation of the seeds that reached the
level.
"""

from collections.abc import Sequence
import dataclasses
import math

import numpy as np
from numpy.typing import ArrayLike


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
  array = np.asarray(values, np.float64)
  if array.ndim != 1:
    raise ValueError(f"{name} must be one-dimensional; got shape {array.shape}.")
  return array


def _check_steps(steps: np.ndarray, name: str) -> None:
  if np.any(np.diff(steps) <= 0):
    raise ValueError(f"{name} must be strictly increasing; sort them and drop duplicate steps.")


def monotone_loss_curve(losses: ArrayLike, *, window: int = 1) -> np.ndarray:
  """Trailing mean over ``window`` logged losses, then the running minimum (a non-increasing curve)."""
  if not isinstance(window, int) or window < 1:
    raise ValueError(f"window={window!r} must be a positive integer (1: no smoothing).")
  logged = _as_1d(losses, "losses")
  if not np.all(np.isfinite(logged)):
    raise ValueError(
      "losses must be finite; drop the steps whose loss was not logged or not finite."
    )
  cumulative = np.concatenate([[0.0], np.cumsum(logged)])
  ends = np.arange(1, len(logged) + 1)
  starts = np.maximum(ends - window, 0)
  smoothed = (cumulative[ends] - cumulative[starts]) / (ends - starts)
  return np.minimum.accumulate(smoothed)


def loss_at_steps(
  loss_steps: ArrayLike,
  losses: ArrayLike,
  query_steps: ArrayLike,
  *,
  window: int = 1,
) -> np.ndarray:
  """The monotone training loss at ``query_steps`` (linear in step between logged steps; NaN outside)."""
  steps, queries = _as_1d(loss_steps, "loss_steps"), _as_1d(query_steps, "query_steps")
  logged = _as_1d(losses, "losses")
  if len(steps) != len(logged) or not len(steps):
    raise ValueError(
      f"loss_steps ({len(steps)}) and losses ({len(logged)}) must be equally long and non-empty."
    )
  _check_steps(steps, "loss_steps")
  curve = monotone_loss_curve(logged, window=window)
  return np.interp(queries, steps, curve, left=np.nan, right=np.nan)


def interpolate_at_levels(
  eval_losses: ArrayLike, values: ArrayLike, levels: ArrayLike
) -> np.ndarray:
  """Each level's metric value, linear in loss between the evaluations bracketing it (NaN if none do).

  Args:
    eval_losses: the non-increasing training loss at each evaluation (NaN entries are skipped).
    values: the metric at each evaluation (NaN entries are skipped).
    levels: training-loss levels to read the metric at.
  """
  loss, value, targets = (
    _as_1d(eval_losses, "eval_losses"),
    _as_1d(values, "values"),
    _as_1d(levels, "levels"),
  )
  if len(loss) != len(value):
    raise ValueError(f"eval_losses ({len(loss)}) and values ({len(value)}) must be equally long.")
  known = np.isfinite(loss) & np.isfinite(value)
  loss, value = loss[known], value[known]
  if np.any(np.diff(loss) > 0):
    raise ValueError(
      "eval_losses must be non-increasing; pass the monotone curve of loss_at_steps."
    )
  result = np.full(len(targets), np.nan)
  for index, level in enumerate(targets):
    reached = np.flatnonzero(loss <= level)
    if not len(reached):
      continue
    first = reached[0]
    if first == 0:
      if loss[0] == level:
        result[index] = value[0]
      continue
    weight = (loss[first - 1] - level) / (loss[first - 1] - loss[first])
    result[index] = value[first - 1] + weight * (value[first] - value[first - 1])
  return result


def matched_metric(
  loss_steps: ArrayLike,
  losses: ArrayLike,
  metric_steps: ArrayLike,
  metric_values: ArrayLike,
  levels: ArrayLike,
  *,
  window: int = 1,
) -> np.ndarray:
  """One run's metric at each training-loss level (steps 1-3 of the module docstring)."""
  steps = _as_1d(metric_steps, "metric_steps")
  _check_steps(steps, "metric_steps")
  eval_losses = loss_at_steps(loss_steps, losses, steps, window=window)
  return interpolate_at_levels(eval_losses, metric_values, levels)


def common_loss_levels(eval_losses_per_run: Sequence[ArrayLike], num_levels: int) -> np.ndarray:
  """``num_levels`` loss levels, highest first, that every run's evaluations bracket.

  The range runs from the lowest loss every run reaches (the largest of the runs' final losses) up to
  the smallest of the runs' first-evaluation losses, evenly spaced; with one level it is the lowest.
  Empty when the runs' ranges do not overlap.
  """
  if not isinstance(num_levels, int) or num_levels < 1:
    raise ValueError(f"num_levels={num_levels!r} must be a positive integer.")
  ranges = []
  for run_losses in eval_losses_per_run:
    losses = _as_1d(run_losses, "eval losses")
    losses = losses[np.isfinite(losses)]
    if not len(losses):
      return np.zeros(0)
    ranges.append((losses.min(), losses.max()))
  if not ranges:
    raise ValueError("common_loss_levels needs at least one run's evaluation losses.")
  lowest, highest = max(low for low, _ in ranges), min(high for _, high in ranges)
  if lowest > highest:
    return np.zeros(0)
  return np.linspace(lowest, highest, num_levels)[::-1]


@dataclasses.dataclass(frozen=True)
class Aggregate:
  """A metric over seeds: mean, sample standard deviation (NaN below two seeds) and seed count."""

  mean: float
  std: float
  count: int


def aggregate(values: Sequence[float]) -> Aggregate:
  """Mean ± sample standard deviation of the finite values (seeds that reached the level)."""
  finite = np.asarray(values, np.float64)
  finite = finite[np.isfinite(finite)]
  if not len(finite):
    return Aggregate(math.nan, math.nan, 0)
  std = float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan
  return Aggregate(float(np.mean(finite)), std, len(finite))
