"""Interleaved timing: every variant runs once per round, so machine noise hits all of them alike.

Shared by the model benchmarks (ablations, peer comparison, GPU script). Needs only JAX.
"""

from collections.abc import Callable
import statistics
import time
from typing import Any

import jax


def interleaved_times(
  runners: dict[str, Callable[[], Any]], repeats: int
) -> dict[str, list[float]]:
  """Wall seconds of each runner per round, over ``repeats`` rounds (results are blocked on).

  Each runner is a no-argument callable that performs one step (keeping its own state) and returns
  something to block on. Call each runner at least once beforehand so that compilation is excluded.
  """
  times = {name: [] for name in runners}
  for _ in range(repeats):
    for name, run in runners.items():
      start = time.perf_counter()
      jax.block_until_ready(run())
      times[name].append(time.perf_counter() - start)
  return times


def median_ratios(times: dict[str, list[float]], baseline: str) -> dict[str, float]:
  """Median over rounds of each variant's time / the baseline's time in the same round."""
  return {
    name: statistics.median(t / b for t, b in zip(series, times[baseline]))
    for name, series in times.items()
  }
