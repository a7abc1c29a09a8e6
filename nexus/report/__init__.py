"""Offline reporting: training runs on disk turned into tables, paired statistics, plots and choices.

Nothing here runs a model: it reads what ``launch.train`` and ``launch.evaluate`` wrote
(``metrics.jsonl``, ``config.json``; the measurements themselves are ``nexus.measure``'s job).

- ``RunRecord``, ``load_run``, ``group_by_optimizer``: a run's identity and metric records, by optimizer.
- ``matched_metric``, ``common_loss_levels``, ``loss_at_steps``, ``aggregate``: comparison at matched
  training loss.
- ``paired_table``, ``paired_difference``, ``interval_of_mean``: paired differences by seed with 95%
  intervals.
- ``Report``, ``write_report``: the comparison report of ``launch.compare`` (markdown tables and PNG
  plots; matplotlib is imported only when a plot is drawn).
- ``nexus.report.endpoints``: comparison at the same validation loss between annealed end points
  (cooldown branches of ``launch.branches``).
- ``nexus.report.tuning``: equal-budget sweeps with bracketed optima, selected on validation
  (``launch.sweep``).

Reference: Chen et al., *Nexus: Same Pretraining Loss, Better Downstream Generalization via Common Minima*,
arXiv:2604.09258 (2026).
"""

from nexus.report.comparison import Report
from nexus.report.comparison import write_report
from nexus.report.matched import Aggregate
from nexus.report.matched import aggregate
from nexus.report.matched import common_loss_levels
from nexus.report.matched import interpolate_at_levels
from nexus.report.matched import loss_at_steps
from nexus.report.matched import matched_metric
from nexus.report.matched import monotone_loss_curve
from nexus.report.paired import Interval
from nexus.report.paired import interval_of_mean
from nexus.report.paired import paired_difference
from nexus.report.paired import paired_table
from nexus.report.runs import RunRecord
from nexus.report.runs import group_by_optimizer
from nexus.report.runs import load_run

__all__ = [
  "Aggregate",
  "Interval",
  "Report",
  "RunRecord",
  "aggregate",
  "common_loss_levels",
  "group_by_optimizer",
  "interpolate_at_levels",
  "interval_of_mean",
  "load_run",
  "loss_at_steps",
  "matched_metric",
  "monotone_loss_curve",
  "paired_difference",
  "paired_table",
  "write_report",
]
