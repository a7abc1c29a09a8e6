"""The comparison report: ``report.md`` with tables at matched training loss and at the end, plus PNG plots.

It tests the paper's claim on a researcher's own runs (Chen et al. 2026, arXiv:2604.09258): at the
same training loss, does one optimizer have lower OOD loss, higher downstream accuracy, more aligned
per-source gradients and closer per-source minima? Runs are grouped by optimizer
(``nexus.report.runs``); a group's seeds give mean ± sample standard deviation, and each method's
paired differences from a baseline method, seed by seed, with 95% t intervals
(``nexus.report.paired``). Values at matched loss are interpolated as documented in
``nexus.report.matched``; closeness, usually measured once at the end, appears in the
end-of-training table (and at matched loss only for levels its measurements bracket).
"""

from collections.abc import Sequence
import dataclasses
import math
import os

import numpy as np

from nexus.report import matched
from nexus.report import paired
from nexus.report import plots
from nexus.report import runs as runs_lib

STEP = "step"
_HEADLINE_KEYS = ("eval/ood_loss_macro", "eval/loss_macro")
_GEOMETRY_AND_CLOSENESS_KEYS = (
  "geometry/mean_cosine",
  "closeness/mean_sq_dist",
  "closeness/spread",
)
_EVAL_LOSS_PREFIXES = ("eval/loss", "eval/ood_loss")
# Paired rows: losses macro and per held-out source (validation eval/ and reported test/),
# downstream per family, geometry and closeness.
_PAIRED_PREFIXES = (
  "eval/loss_macro",
  "eval/ood_loss",
  "test/loss_macro",
  "test/ood_loss",
  "downstream/",
  "geometry/mean_cosine",
  "closeness/mean_sq_dist",
  "closeness/spread",
)
# Each accuracy's chance level, as ``launch.evaluate`` logs it (``nexus.measure``): exact match of a
# generated answer, and the teacher-forced answer-token accuracy of a question-blind predictor.
_CHANCE_SUFFIXES = {
  "/accuracy_chance": "/accuracy",
  "/answer_token_chance": "/answer_token_accuracy",
}
_PAIRED_DOWNSTREAM_SUFFIXES = (
  "/accuracy",
  "/answer_nll",
  "/answer_token_accuracy",
  "/completion_nll",
  "/completion_token_accuracy",
)


@dataclasses.dataclass(frozen=True)
class TableRow:
  """One table row: its label (a loss level, or "final"), the optimizer and each column's aggregate."""

  label: str
  optimizer: str
  num_seeds: int
  cells: dict[str, matched.Aggregate]


@dataclasses.dataclass(frozen=True)
class Report:
  """What ``write_report`` wrote and the tables' values."""

  path: str
  plots: list[str]
  levels: np.ndarray
  columns: list[str]
  matched_rows: list[TableRow]
  final_rows: list[TableRow]


def table_keys(runs: Sequence[runs_lib.RunRecord]) -> list[str]:
  """The table's metric columns that at least one run logged, in reading order."""
  logged = set().union(*(run.keys() for run in runs))
  downstream = sorted(
    key for key in logged if key.startswith("downstream/") and key.endswith("/accuracy")
  )
  ordered = list(_HEADLINE_KEYS) + downstream + list(_GEOMETRY_AND_CLOSENESS_KEYS)
  return [key for key in ordered if key in logged]


def _evaluation_losses(
  run: runs_lib.RunRecord, keys: Sequence[str], loss_key: str, window: int
) -> np.ndarray:
  """The monotone training loss at the steps where the run logged any table metric (else at every step)."""
  loss_steps, losses = run.curve(loss_key)
  steps = sorted({int(s) for key in keys for s in run.curve(key)[0]}) or loss_steps
  return matched.loss_at_steps(loss_steps, losses, steps, window=window)


def matched_table(
  groups: plots.Groups,
  keys: Sequence[str],
  levels: Sequence[float] | np.ndarray,
  *,
  loss_key: str,
  window: int,
) -> list[TableRow]:
  """Rows (level, optimizer): the step reaching each level and every metric interpolated there."""
  per_group = {}
  for optimizer, members in groups.items():
    values: dict[str, list[np.ndarray]] = {column: [] for column in [STEP, *keys]}
    for run in members:
      loss_steps, losses = run.curve(loss_key)
      values[STEP].append(
        matched.matched_metric(loss_steps, losses, loss_steps, loss_steps, levels, window=window)
      )
      for key in keys:
        steps, metric = run.curve(key)
        values[key].append(
          matched.matched_metric(loss_steps, losses, steps, metric, levels, window=window)
        )
    per_group[optimizer] = values
  rows = []
  for index, level in enumerate(levels):
    for optimizer, values in per_group.items():
      cells = {
        column: matched.aggregate([seed_values[index] for seed_values in per_seed])
        for column, per_seed in values.items()
      }
      rows.append(TableRow(f"{level:.4g}", optimizer, len(groups[optimizer]), cells))
  return rows


def final_table(groups: plots.Groups, keys: Sequence[str], *, loss_key: str) -> list[TableRow]:
  """Rows per optimizer: each run's last logged step, training loss and metrics, over seeds."""
  rows = []
  for optimizer, members in groups.items():
    cells = {STEP: matched.aggregate([max(int(r["step"]) for r in run.records) for run in members])}
    for key in [loss_key, *keys]:
      last_values = [run.curve(key)[1][-1:] for run in members]
      cells[key] = matched.aggregate(
        [values[0] if len(values) else math.nan for values in last_values]
      )
    rows.append(TableRow("final", optimizer, len(members), cells))
  return rows


def paired_keys(runs: Sequence[runs_lib.RunRecord]) -> list[str]:
  """The paired table's metrics: those of ``_PAIRED_PREFIXES`` that every run logged as a number, sorted."""
  common = set.intersection(*(run.keys() for run in runs))
  keys = [
    key
    for key in common
    if key.startswith(_PAIRED_PREFIXES)
    and (not key.startswith("downstream/") or key.endswith(_PAIRED_DOWNSTREAM_SUFFIXES))
  ]
  return sorted(key for key in keys if all(len(run.curve(key)[0]) for run in runs))


def paired_section(groups: plots.Groups, keys: Sequence[str], baseline: str | None) -> str:
  """Markdown: each method minus ``baseline`` (default: adamw if present, else the first), paired by seed."""
  if baseline is None:
    baseline = "adamw" if "adamw" in groups else next(iter(groups))
  if baseline not in groups:
    raise ValueError(f"baseline {baseline!r} is not among the compared optimizers {list(groups)}.")
  seed_sets = {
    optimizer: sorted(run.seed for run in members) for optimizer, members in groups.items()
  }
  if (
    len(groups) < 2
    or len(set(map(tuple, seed_sets.values()))) != 1
    or len(seed_sets[baseline]) < 2
    or not keys
  ):
    return (
      f"Not computed: it needs two or more optimizers run on the same two or more seeds and metrics that "
      f"every run logged (seeds per optimizer: {seed_sets})."
    )
  measurements = {
    (optimizer, run.seed): {key: float(run.curve(key)[1][-1]) for key in keys}
    for optimizer, members in groups.items()
    for run in members
  }
  table = paired.paired_table(measurements, baseline=baseline, metrics=keys)
  return (
    "Each run's last logged value minus the baseline's with the same seed (same data order and init); "
    "mean over seeds and its 95% Student t interval. An interval that excludes 0 is a difference "
    "resolved by these seeds.\n\n" + paired.format_table(table, baseline=baseline).rstrip("\n")
  )


def _number(value: float) -> str:
  return f"{value:.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


def format_cell(cell: matched.Aggregate, num_seeds: int) -> str:
  """``mean ± std`` (``mean`` for one seed), ``(n=k/N)`` when only k of N seeds have it, ``–`` for none."""
  if cell.count == 0:
    return "–"
  text = _number(cell.mean) if math.isnan(cell.std) else f"{_number(cell.mean)} ± {cell.std:.2g}"
  return text if cell.count == num_seeds else f"{text} (n={cell.count}/{num_seeds})"


def markdown_table(
  rows: Sequence[TableRow], columns: Sequence[str], label_header: str | None
) -> str:
  """A markdown table with an optional label column, then the optimizer, then ``columns``."""
  headers = ([label_header] if label_header else []) + ["optimizer", *columns]
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  for row in rows:
    cells = ([row.label] if label_header else []) + [row.optimizer]
    cells += [format_cell(row.cells[column], row.num_seeds) for column in columns]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _runs_table(groups: plots.Groups, loss_key: str) -> str:
  lines = [
    f"| optimizer | seeds | workdirs | last step | last {loss_key} |",
    "|---|---|---|---|---|",
  ]
  for optimizer, members in groups.items():
    last_steps = ", ".join(str(max(int(r["step"]) for r in run.records)) for run in members)
    last_losses = ", ".join(_number(run.curve(loss_key)[1][-1]) for run in members)
    lines.append(
      f"| {optimizer} | {', '.join(str(run.seed) for run in members)} | "
      f"{', '.join(f'`{run.workdir}`' for run in members)} | {last_steps} | {last_losses} |"
    )
  return "\n".join(lines)


def chance_section(runs: Sequence[runs_lib.RunRecord]) -> str | None:
  """A table of every logged accuracy's chance level (the last value each run logged; a property of
  the task, so one number unless runs measured different problems, then their range); None if no run
  logged one."""
  values: dict[str, list[float]] = {}
  for run in runs:
    for key in run.keys():
      suffix = next((s for s in _CHANCE_SUFFIXES if key.endswith(s)), None)
      if suffix is not None and (value := run.last(key)) is not None:
        values.setdefault(key[: -len(suffix)] + _CHANCE_SUFFIXES[suffix], []).append(float(value))
  if not values:
    return None
  rows = [
    f"| {key} | {_number(min(v))} |"
    if min(v) == max(v)
    else f"| {key} | {_number(min(v))} to {_number(max(v))} |"
    for key, v in sorted(values.items())
  ]
  return "\n".join(["| accuracy | chance level |", "|---|---|", *rows])


def _check_options(runs, loss_key, target_losses, num_levels, window) -> None:
  if not runs:
    raise ValueError("no runs to compare; pass at least one workdir.")
  if not isinstance(num_levels, int) or num_levels < 1:
    raise ValueError(f"num_levels={num_levels!r} must be a positive integer.")
  if not isinstance(window, int) or window < 1:
    raise ValueError(f"window={window!r} must be a positive integer (1: no smoothing).")
  if target_losses is not None and (
    not len(target_losses) or not all(math.isfinite(x) for x in target_losses)
  ):
    raise ValueError(
      f"target_losses={list(target_losses)} must be a non-empty list of finite losses."
    )
  for run in runs:
    if not len(run.curve(loss_key)[0]):
      raise ValueError(f"run {run.workdir!r} logged no {loss_key!r}; choose another --loss_key.")


def write_report(
  runs: Sequence[runs_lib.RunRecord],
  out_dir: str,
  *,
  loss_key: str = "train/loss",
  target_losses: Sequence[float] | None = None,
  num_levels: int = 3,
  window: int = 1,
  baseline: str | None = None,
) -> Report:
  """Writes ``<out_dir>/report.md`` and its PNG plots for ``runs``; returns the paths and table values.

  Args:
    runs: loaded runs (``nexus.report.runs.load_run``); grouped by optimizer, seeds within a group.
    out_dir: created if missing; existing files of the same names are replaced.
    loss_key: the training loss that levels are matched on.
    target_losses: loss levels of the matched table (None: ``num_levels`` levels spanning the range every
      run's evaluations bracket, see ``matched.common_loss_levels``).
    num_levels: levels chosen when ``target_losses`` is None.
    window: trailing-mean window of the training loss before its running minimum (1: none).
    baseline: the optimizer the paired differences subtract (None: adamw if compared, else the first).
  """
  _check_options(runs, loss_key, target_losses, num_levels, window)
  groups = runs_lib.group_by_optimizer(runs)
  os.makedirs(out_dir, exist_ok=True)
  keys = table_keys(runs)
  if target_losses is None:
    levels = matched.common_loss_levels(
      [_evaluation_losses(run, keys, loss_key, window) for run in runs], num_levels
    )
  else:
    levels = np.sort(np.asarray(target_losses, np.float64))[::-1]
  matched_rows = matched_table(groups, keys, levels, loss_key=loss_key, window=window)
  final_rows = final_table(groups, keys, loss_key=loss_key)
  paired_text = paired_section(groups, paired_keys(runs), baseline)

  logged = set().union(*(run.keys() for run in runs))
  eval_loss_keys = sorted(key for key in logged if key.startswith(_EVAL_LOSS_PREFIXES))
  measurement_keys = [key for key in keys if key not in _HEADLINE_KEYS]
  figures = [
    (
      "Loss against steps",
      "loss_vs_step.png",
      lambda path: plots.plot_curves(
        groups, [loss_key, *eval_loss_keys], path, x_axis="step", loss_key=loss_key, window=window
      ),
    ),
    (
      "Evaluation loss against training loss",
      "loss_vs_train_loss.png",
      lambda path: plots.plot_curves(
        groups, eval_loss_keys, path, x_axis="train_loss", loss_key=loss_key, window=window
      ),
    ),
    (
      "Accuracy, gradient cosine and closeness against training loss",
      "measurements_vs_train_loss.png",
      lambda path: plots.plot_curves(
        groups, measurement_keys, path, x_axis="train_loss", loss_key=loss_key, window=window
      ),
    ),
    (
      "Cross-source gradient cosine (last logged, mean over seeds)",
      "cosine_heatmaps.png",
      lambda path: plots.plot_cosine_heatmaps(groups, path),
    ),
  ]
  written = [(title, name) for title, name, draw in figures if draw(os.path.join(out_dir, name))]

  optimizers = " vs ".join(groups)
  matched_section = (
    markdown_table(matched_rows, [STEP, *keys], loss_key)
    if len(levels)
    else "The runs' training losses share no range between their evaluations: no level to match."
  )
  sections = [
    f"# Comparison: {optimizers}",
    f"{len(runs)} run(s); cells are mean ± sample std over a group's seeds, `–` where not logged or not reached.",
    "## Runs",
    _runs_table(groups, loss_key),
    *(
      [
        "## Chance levels",
        "What a question-blind model scores: for exact match (`accuracy`), always giving the most common "
        "reference answer; for `answer_token_accuracy`, predicting each answer token from the answer's "
        "prefix alone. `completion_token_accuracy` has no chance level measured.",
        chance,
      ]
      if (chance := chance_section(runs)) is not None
      else []
    ),
    f"## At matched {'training' if loss_key.startswith('train/') else 'evaluation'} loss",
    (
      f"Each row is a level of `{loss_key}` (trailing mean over {window} logged value(s), then running "
      "minimum). `step` is when the run first reaches it; every metric is interpolated linearly in that loss "
      "between the two evaluations that bracket the level, never extrapolated."
    ),
    matched_section,
    "## At the end of training",
    "Each run's last logged value.",
    markdown_table(final_rows, [STEP, loss_key, *keys], None),
    "## Paired differences at the end of training",
    paired_text,
    "## Plots",
    *[f"### {title}\n\n![{title}]({name})" for title, name in written],
  ]
  path = os.path.join(out_dir, "report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n\n".join(sections) + "\n")
  return Report(
    path=path,
    plots=[os.path.join(out_dir, name) for _, name in written],
    levels=levels,
    columns=[STEP, *keys],
    matched_rows=matched_rows,
    final_rows=final_rows,
  )
