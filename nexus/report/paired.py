"""Paired differences by seed with 95% intervals: how a method differs from a baseline, run for run.

Runs of different methods with the same seed share the model init and the data order, so their
measurements move together: a seed that is easy for AdamW is easy for Nexus. Comparing unpaired
means ± std over seeds leaves that shared variation in the error bars; the paired difference
d_s = x_{method, s} − x_{baseline, s} removes it, and its mean over seeds is the effect.

Two intervals for the mean of d over n seeds:

- ``"t"`` (the default): mean(d) ± t_{n−1, (1+c)/2} · sd(d)/√n, Student's t interval. It is exact
  when the d_s are normal and stays close to its level for mildly skewed d; it needs only n ≥ 2.
- ``"bootstrap"``: the percentile interval of the mean over resamples of the n differences with
  replacement (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 13). It drops the
  normal assumption but, with the 5 or so seeds a study affords, it is too narrow: the resampled
  means spread like sd(d)·√((n−1)/n)/√n with normal rather than t tails, so a nominal 95% covers
  about 85% at n = 5 (``tests/report/test_paired.py`` measures this). Use it as a check when there
  are many seeds.

A macro average over several metrics (held-out sources, downstream families) is formed per run first
and then differenced, so it is paired too and equals the mean of the per-metric differences.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import math
from typing import NamedTuple

import numpy as np
from scipy import stats

METHODS = ("t", "bootstrap")


class Interval(NamedTuple):
  """A paired difference (method − baseline) over seeds with its confidence interval."""

  mean: float
  """Mean over seeds of the per-seed difference."""
  low: float
  """Lower end of the interval."""
  high: float
  """Upper end of the interval."""
  num_pairs: int
  """Number of seeds paired."""
  method: str
  """``"t"`` or ``"bootstrap"``."""
  confidence: float
  """The nominal coverage, e.g. 0.95."""


def _check(confidence: float, method: str) -> None:
  if not 0 < confidence < 1:
    raise ValueError(f"confidence={confidence!r} must be in (0, 1), e.g. 0.95.")
  if method not in METHODS:
    raise ValueError(f"method={method!r} must be one of {METHODS}.")


def interval_of_mean(
  differences: Sequence[float],
  *,
  confidence: float = 0.95,
  method: str = "t",
  num_resamples: int = 10_000,
  seed: int = 0,
) -> Interval:
  """The ``confidence`` interval of the mean of ``differences`` (one per seed) by ``method``.

  Args:
    differences: the per-seed differences d_s (at least two, all finite).
    confidence: the interval's nominal coverage.
    method: ``"t"`` (Student's t) or ``"bootstrap"`` (percentile bootstrap, ``num_resamples`` resamples
      drawn with ``numpy.random.default_rng(seed)``, so the same inputs give the same interval).
  """
  _check(confidence, method)
  d = np.asarray(differences, np.float64)
  if d.ndim != 1 or d.size < 2 or not np.all(np.isfinite(d)):
    raise ValueError(
      f"need at least two finite per-seed differences for an interval; got {d.tolist()}."
    )
  n, mean = d.size, float(np.mean(d))
  if method == "t":
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * np.std(d, ddof=1) / math.sqrt(n))
    return Interval(mean, mean - half, mean + half, n, method, confidence)
  if not isinstance(num_resamples, int) or num_resamples < 1:
    raise ValueError(f"num_resamples={num_resamples!r} must be a positive integer.")
  rng = np.random.default_rng(seed)
  means = d[rng.integers(0, n, size=(num_resamples, n))].mean(axis=1)
  tail = (1 - confidence) / 2
  low, high = np.quantile(means, [tail, 1 - tail])
  return Interval(mean, float(low), float(high), n, method, confidence)


def paired_difference(
  values: Mapping[int, float], baseline: Mapping[int, float], **kwargs
) -> Interval:
  """The interval of mean_s (values[s] − baseline[s]) over seeds s; both must have the same seeds.

  ``kwargs`` go to ``interval_of_mean``. Unequal seed sets are an error rather than a silent
  intersection, so that no seed is dropped after looking at the results.
  """
  if set(values) != set(baseline):
    raise ValueError(
      f"paired seeds differ: {sorted(values)} vs baseline {sorted(baseline)}; run every method "
      "on the same seeds."
    )
  seeds = sorted(values)
  return interval_of_mean([values[s] - baseline[s] for s in seeds], **kwargs)


def add_macros(
  measurements: Mapping[tuple[str, int], Mapping[str, float]], macros: Mapping[str, Sequence[str]]
) -> dict[tuple[str, int], dict[str, float]]:
  """A copy of ``measurements`` with each macro ``name -> [metric, ...]`` added as the per-run mean.

  A run lacking one of a macro's metrics is an error (a macro over a subset would not be comparable).
  """
  out = {}
  for run, metrics in measurements.items():
    out[run] = dict(metrics)
    for name, keys in macros.items():
      if not keys:
        raise ValueError(f"macro {name!r} lists no metrics; give it at least one.")
      missing = [key for key in keys if key not in metrics]
      if missing:
        raise ValueError(
          f"run {run} lacks {missing} needed by macro {name!r}; measure every run the same way."
        )
      out[run][name] = float(np.mean([metrics[key] for key in keys]))
  return out


def paired_table(
  measurements: Mapping[tuple[str, int], Mapping[str, float]],
  *,
  baseline: str,
  metrics: Sequence[str],
  macros: Mapping[str, Sequence[str]] | None = None,
  **kwargs,
) -> dict[str, dict[str, Interval]]:
  """``{method: {metric: Interval}}``: every other method minus ``baseline``, paired by seed.

  Args:
    measurements: ``{(method, seed): {metric: value}}``, e.g. final or matched-loss values per run.
    baseline: the method subtracted (e.g. ``"adamw"``).
    metrics: the metrics compared (per held-out source, per downstream family, ...), in table order.
    macros: ``{name: [metric, ...]}``: macro averages formed per run, appended after ``metrics``.
    **kwargs: ``confidence``, ``method``, ``num_resamples``, ``seed`` of ``interval_of_mean``.
  """
  macros = dict(macros or {})
  measurements = add_macros(measurements, macros)
  by_method: dict[str, dict[int, Mapping[str, float]]] = {}
  for (method, seed), values in measurements.items():
    by_method.setdefault(method, {})[seed] = values
  if baseline not in by_method:
    raise ValueError(f"baseline {baseline!r} has no runs; methods measured: {sorted(by_method)}.")
  table: dict[str, dict[str, Interval]] = {}
  for method, runs in by_method.items():
    if method == baseline:
      continue
    table[method] = {}
    for metric in [*metrics, *macros]:
      missing = [
        (m, s)
        for m, group in ((method, runs), (baseline, by_method[baseline]))
        for s, values in group.items()
        if metric not in values
      ]
      if missing:
        raise ValueError(
          f"metric {metric!r} is missing from runs {missing}; measure every run the same way."
        )
      table[method][metric] = paired_difference(
        {s: v[metric] for s, v in runs.items()},
        {s: v[metric] for s, v in by_method[baseline].items()},
        **kwargs,
      )
  return table


def reading(interval: Interval) -> str:
  """What an interval of a difference supports: a sign when it excludes 0, else no detected effect."""
  if interval.high < 0:
    return "lower"
  if interval.low > 0:
    return "higher"
  return "no detected difference"


def format_table(table: Mapping[str, Mapping[str, Interval]], *, baseline: str) -> str:
  """A markdown table of ``paired_table``'s output: one row per (method, metric), with its reading."""
  lines = [
    f"| method − {baseline} | metric | mean difference | interval | seeds | kind | reading |",
    "|---|---|---|---|---|---|---|",
  ]
  for method, rows in table.items():
    for metric, iv in rows.items():
      lines.append(
        f"| {method} | {metric} | {iv.mean:+.4f} | [{iv.low:+.4f}, {iv.high:+.4f}] | {iv.num_pairs} | "
        f"{100 * iv.confidence:g}% {iv.method} | {reading(iv)} |"
      )
  return "\n".join(lines) + "\n"
