"""Comparison at the same validation loss, between annealed end points (issue 10's primary view).

A warmup-stable-decay run of each (method, seed) has cooldown branches from several checkpoints of
its stable phase (``launch.branches``); each branch anneals to an end point that ``launch.evaluate``
measures. Annealing lowers the loss a lot, so reading metrics off the stable phase's training curve
compares un-annealed states; end points at several losses let each method be read annealed.

The rule, fixed before any result is seen:

1. An end point is a branch run's ``launch.evaluate`` record at the run's last step
   (``config.train.steps``). Its matching variable is the validation ``eval/loss_macro`` at θ; the
   reported metrics are the test-split and checkpoint measurements of ``reported_keys``.
2. Levels: ``num_levels`` validation losses evenly spaced over the range that every (method, seed)'s
   end points span, both ends included (``nexus.report.matched.common_loss_levels``): from the
   largest of the per-(method, seed) lowest losses to the smallest of their highest ones. Each
   (method, seed) needs at least two end points, and the ranges must overlap.
3. Each metric at a level: linear interpolation in validation loss between the two end points of
   that (method, seed) that bracket it (``nexus.report.matched.interpolate_at_levels``); nothing is
   extrapolated. A macro average interpolates like its parts (same weights), so it stays the mean of
   the interpolated parts.
4. At every level, each method minus the baseline, paired by seed, with 95% Student t intervals
   (``nexus.report.paired``), per held-out source, per downstream family and macro. Every method
   must have the same seeds; every level is reported.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import dataclasses
import json
import math
import os

import numpy as np

from nexus.report import matched
from nexus.report import paired
from nexus.report import runs as runs_lib

MATCH_KEY = "eval/loss_macro"
# launch.evaluate's record is the one with closeness (the trainer's evaluations have none).
MEASURED_KEY = "closeness/mean_sq_dist"
_LOSS_KEYS = ("test/loss_macro", "test/ood_loss_macro")
_LOSS_PREFIX = "test/ood_loss/"
_DOWNSTREAM_METRICS = (
  "accuracy",
  "answer_nll",
  "answer_token_accuracy",
  "completion_nll",
  "completion_token_accuracy",
)
_OTHER_KEYS = ("closeness/mean_sq_dist", "closeness/spread", "test/mean_cosine")
_DOWNSTREAM_MACRO = "held_out_mean"

RunKey = tuple[str, int]


@dataclasses.dataclass(frozen=True)
class EndPoint:
  """One annealed end point: a measured branch run of ``method`` and ``seed``."""

  workdir: str
  method: str
  seed: int
  stable: str
  """The stable run's real path: the run the branch started from (``train.init_from``), or the run
  itself when the end point is a stable run's own annealed end."""
  branch_step: int | None
  """The stable run's step the branch started from (None: not a branch, e.g. the stable run)."""
  step: int
  validation_loss: float
  metrics: dict[str, float]
  """The reported measurements (``reported_keys`` of the record)."""


@dataclasses.dataclass(frozen=True)
class EndPointComparison:
  """The matched levels, each (method, seed)'s interpolated values and the paired differences."""

  levels: np.ndarray
  """Validation-loss levels, highest first."""
  baseline: str
  metrics: list[str]
  end_points: dict[RunKey, list[EndPoint]]
  """Each (method, seed)'s end points, highest validation loss first."""
  values: list[dict[RunKey, dict[str, float]]]
  """Per level: every (method, seed)'s metrics interpolated at it."""
  differences: list[dict[str, dict[str, paired.Interval]]]
  """Per level: ``{method: {metric: Interval}}``, method minus baseline."""


def reported_keys(keys: set[str]) -> list[str]:
  """The reported metrics among ``keys``, in reading order.

  Test losses (per held-out source, held-out macro, in-distribution macro), downstream per family
  and the held-out families' macro, closeness, and the test batches' mean gradient cosine.
  """
  losses = [*sorted(k for k in keys if k.startswith(_LOSS_PREFIX)), *_LOSS_KEYS]
  downstream = []
  for metric in _DOWNSTREAM_METRICS:
    names = sorted(k for k in keys if k.startswith("downstream/") and k.endswith(f"/{metric}"))
    macro = f"downstream/{_DOWNSTREAM_MACRO}/{metric}"
    downstream += [k for k in names if k != macro] + [k for k in names if k == macro]
  return [k for k in [*losses, *downstream, *_OTHER_KEYS] if k in keys]


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def end_point(run: runs_lib.RunRecord) -> EndPoint:
  """The end point of a measured run: its ``launch.evaluate`` record at ``config.train.steps``."""
  with open(os.path.join(run.workdir, "config.json"), encoding="utf-8") as f:
    train = json.load(f).get("train", {})
  measured = [r for r in run.records if MEASURED_KEY in r]
  if not measured:
    raise ValueError(
      f"run {run.workdir!r} has no launch.evaluate measurement; run python -m launch.branches "
      "(or launch.evaluate) on it."
    )
  record = max(measured, key=lambda r: r["step"])
  if record["step"] != train.get("steps"):
    raise ValueError(
      f"run {run.workdir!r} was measured at step {record['step']}, not at its end "
      f"(train.steps={train.get('steps')}); finish it and measure it again."
    )
  if not _number(record.get(MATCH_KEY)):
    raise ValueError(f"run {run.workdir!r}'s measurement lacks a finite {MATCH_KEY!r}.")
  keys = reported_keys({k for k, v in record.items() if _number(v)})
  return EndPoint(
    workdir=run.workdir,
    method=run.optimizer,
    seed=run.seed,
    stable=os.path.realpath(train.get("init_from") or run.workdir),
    branch_step=train.get("init_step"),
    step=record["step"],
    validation_loss=float(record[MATCH_KEY]),
    metrics={k: float(record[k]) for k in keys},
  )


def load_end_points(paths: Sequence[str]) -> list[EndPoint]:
  """End points of run workdirs, or of directories of them (``runs.expand_workdirs``)."""
  return [end_point(runs_lib.load_run(workdir)) for workdir in runs_lib.expand_workdirs(paths)]


def _group(points: Sequence[EndPoint]) -> dict[RunKey, list[EndPoint]]:
  """``{(method, seed): end points, highest validation loss first}``; checks seeds and counts."""
  groups: dict[RunKey, list[EndPoint]] = {}
  for point in points:
    groups.setdefault((point.method, point.seed), []).append(point)
  seeds: dict[str, list[int]] = {}
  for method, seed in sorted(groups):
    seeds.setdefault(method, []).append(seed)
  every = sorted(set().union(*seeds.values())) if seeds else []
  lacking = {m: sorted(set(every) - set(s)) for m, s in seeds.items() if s != every}
  if lacking:
    raise ValueError(
      f"methods lack seeds {lacking} that other methods have (seeds per method: {seeds}); "
      "branch and measure every method on the same seeds."
    )
  if len(every) < 2:
    raise ValueError(f"paired intervals need two or more seeds; got {every}: run more seeds.")
  mixed = {
    key: sorted({str(p.stable) for p in members})
    for key, members in groups.items()
    if len({p.stable for p in members}) > 1
  }
  if mixed:
    raise ValueError(
      f"(method, seed) end points branch from several stable runs {mixed}; compare one stable "
      "run per method and seed."
    )
  few = sorted(key for key, members in groups.items() if len(members) < 2)
  if few:
    raise ValueError(
      f"(method, seed) {few} have fewer than two end points; a level needs two that bracket it: "
      "branch from more stable-phase checkpoints."
    )
  return {
    key: sorted(members, key=lambda p: -p.validation_loss)
    for key, members in sorted(groups.items())
  }


def compare_end_points(
  points: Sequence[EndPoint],
  *,
  num_levels: int = 3,
  baseline: str | None = None,
  **interval_kwargs,
) -> EndPointComparison:
  """The rule of the module docstring on ``points``.

  Args:
    points: every measured end point (``load_end_points``), several per (method, seed).
    num_levels: validation-loss levels, evenly spaced over the range every (method, seed) spans.
    baseline: the method subtracted (None: ``adamw`` if compared, else the first method by name).
    **interval_kwargs: ``confidence``, ``method``, ... of ``nexus.report.paired.interval_of_mean``.
  """
  groups = _group(points)
  methods = sorted({method for method, _ in groups})
  if baseline is None:
    baseline = "adamw" if "adamw" in methods else methods[0]
  if baseline not in methods:
    raise ValueError(f"baseline {baseline!r} is not among the end points' methods {methods}.")
  metrics = list(next(iter(groups.values()))[0].metrics)
  for members in groups.values():
    for point in members:
      if set(point.metrics) != set(metrics):
        raise ValueError(
          f"end point {point.workdir!r} measured {sorted(set(point.metrics) ^ set(metrics))} "
          "unlike the others; measure every run with the same launch.evaluate flags."
        )
  levels = matched.common_loss_levels(
    [[p.validation_loss for p in members] for members in groups.values()], num_levels
  )
  if not len(levels):
    ranges = {
      f"{m}/seed{s}": (round(pts[-1].validation_loss, 4), round(pts[0].validation_loss, 4))
      for (m, s), pts in groups.items()
    }
    raise ValueError(
      f"no validation loss lies between every (method, seed)'s end points (ranges {ranges}); "
      "branch from more checkpoints so that the ranges overlap."
    )
  values: list[dict[RunKey, dict[str, float]]] = [{} for _ in levels]
  for key, members in groups.items():
    losses = [p.validation_loss for p in members]
    for metric in metrics:
      at_levels = matched.interpolate_at_levels(
        losses, [p.metrics[metric] for p in members], levels
      )
      for index, value in enumerate(at_levels):
        values[index].setdefault(key, {})[metric] = float(value)
  differences = [
    paired.paired_table(at_level, baseline=baseline, metrics=metrics, **interval_kwargs)
    for at_level in values
  ]
  return EndPointComparison(levels, baseline, metrics, groups, values, differences)


def _means_table(at_level: Mapping[RunKey, Mapping[str, float]], metrics: Sequence[str]) -> str:
  methods = sorted({method for method, _ in at_level})
  lines = ["| metric | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
  for metric in metrics:
    means = [
      np.mean([v[metric] for (m, _), v in at_level.items() if m == method]) for method in methods
    ]
    lines.append(f"| {metric} | " + " | ".join(f"{x:.4g}" for x in means) + " |")
  return "\n".join(lines)


MIN_SEEDS = 5
"""Seeds the protocol asks for (issue 10): fewer still compare, labelled as a pilot."""


def format_section(comparison: EndPointComparison) -> str:
  """Markdown: the end points, then per level the mean over seeds and the paired differences."""
  lines = [
    "| method | seed | end points: branch step → end step (validation loss) |",
    "|---|---|---|",
  ]
  for (method, seed), members in comparison.end_points.items():
    cells = ", ".join(
      f"{'stable' if p.branch_step is None else p.branch_step} → {p.step} ({p.validation_loss:.4f})"
      for p in members
    )
    lines.append(f"| {method} | {seed} | {cells} |")
  levels = ", ".join(f"{level:.4f}" for level in comparison.levels)
  seeds = len({seed for _, seed in comparison.end_points})
  if seeds < MIN_SEEDS:
    lines.append(
      f"\n**{seeds} seeds: fewer than the protocol's {MIN_SEEDS}**; the intervals are wide and "
      "the comparison is a pilot, not a result."
    )
  parts = [
    "Each method's cooldown branches end annealed at several validation losses "
    f"(`{MATCH_KEY}` at θ). Levels are evenly spaced over the range that every (method, seed)'s "
    "end points span, ends included; each test metric is interpolated linearly in validation loss "
    "between the two end points that bracket a level, then each method minus the baseline is "
    f"paired by seed (the interval's kind is in each table). Levels: {levels}.",
    "\n".join(lines),
  ]
  for index, level in enumerate(comparison.levels):
    parts += [
      f"### Validation loss {level:.4f}",
      "Mean over seeds at the level:",
      _means_table(comparison.values[index], comparison.metrics),
      paired.format_table(comparison.differences[index], baseline=comparison.baseline).rstrip(),
    ]
  return "\n\n".join(parts)


PRIMARY_HEADING = "## Primary view: at the same validation loss, between annealed end points"
SECONDARY_NOTE = (
  "The sections below are the secondary view: the positional runs' training curves matched at the "
  "same training loss (curve matching), where most of the states compared are not annealed."
)


def insert_primary_section(report_path: str, section: str) -> None:
  """Puts ``section`` into a ``launch.compare`` report before its first section, as the primary
  view, and labels what follows (curve matching) as the secondary view."""
  with open(report_path, encoding="utf-8") as f:
    text = f.read()
  head, marker, rest = text.partition("\n\n## ")
  if not marker:
    raise ValueError(
      f"{report_path} has no '## ' section; pass a report written by launch.compare."
    )
  with open(report_path, "w", encoding="utf-8") as f:
    f.write(f"{head}\n\n{PRIMARY_HEADING}\n\n{section}\n\n{SECONDARY_NOTE}\n\n## {rest}")
