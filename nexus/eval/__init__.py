"""Measurements of the paper's claim on any model given as pure functions of (params, batch).

- ``make_per_source_loss``: per-source, micro/macro and held-out (OOD) validation loss.
- ``make_gradient_geometry`` / ``gradient_geometry``: per-source gradient cosines, norms, conflicts and
  the closeness bound's sums.
- ``make_sgd_closeness`` / ``make_closeness``: closeness of per-source minima by fine-tuning on each source
  alone (full-batch SGD to a fixed relative loss drop; or any optimizer for a fixed number of steps).
- ``Task``, ``math_task``, ``evaluate_task(s)``, ``chance_level``: downstream exact-match accuracy with a
  caller's generator, beside its chance level.
- ``ForcedTask``, ``math_forced_task``, ``make_teacher_forced``: answer likelihood and token accuracy under
  teacher forcing (downstream signal without generation).
- ``matched_metric``, ``common_loss_levels``, ``aggregate``: comparison at matched training loss.
- ``load_run``, ``group_by_optimizer``, ``write_report``: the comparison report of ``launch.compare``.
- ``paired_table``, ``paired_difference``, ``interval_of_mean``: paired differences by seed with 95% intervals.
- ``nexus.eval.tuning``: equal-budget sweeps with bracketed optima, selected on validation (``launch.sweep``).

Reference: Chen et al., *Nexus: Same Pretraining Loss, Better Downstream Generalization via Common Minima*,
arXiv:2604.09258 (2026).
"""

from nexus.eval.batches import stack_source_batches
from nexus.eval.closeness import Closeness
from nexus.eval.closeness import closeness_metrics
from nexus.eval.closeness import finetune_closeness
from nexus.eval.closeness import make_closeness
from nexus.eval.closeness import make_sgd_closeness
from nexus.eval.closeness import sgd_closeness
from nexus.eval.downstream import Task
from nexus.eval.downstream import chance_level
from nexus.eval.downstream import evaluate_task
from nexus.eval.downstream import evaluate_tasks
from nexus.eval.downstream import exact_match_answer
from nexus.eval.downstream import math_task
from nexus.eval.geometry import GradientGeometry
from nexus.eval.geometry import geometry_from_gram
from nexus.eval.geometry import geometry_metrics
from nexus.eval.geometry import gradient_geometry
from nexus.eval.geometry import make_gradient_geometry
from nexus.eval.geometry import mean_source_gradients
from nexus.eval.matched import Aggregate
from nexus.eval.matched import aggregate
from nexus.eval.matched import common_loss_levels
from nexus.eval.matched import interpolate_at_levels
from nexus.eval.matched import loss_at_steps
from nexus.eval.matched import matched_metric
from nexus.eval.matched import monotone_loss_curve
from nexus.eval.paired import Interval
from nexus.eval.paired import interval_of_mean
from nexus.eval.paired import paired_difference
from nexus.eval.paired import paired_table
from nexus.eval.per_source_loss import make_per_source_loss
from nexus.eval.report import Report
from nexus.eval.report import write_report
from nexus.eval.runs import Run
from nexus.eval.runs import group_by_optimizer
from nexus.eval.runs import load_run
from nexus.eval.teacher_forced import ForcedTask
from nexus.eval.teacher_forced import make_teacher_forced
from nexus.eval.teacher_forced import math_forced_task

__all__ = [
  "Aggregate",
  "Closeness",
  "ForcedTask",
  "GradientGeometry",
  "Interval",
  "Report",
  "Run",
  "Task",
  "aggregate",
  "chance_level",
  "closeness_metrics",
  "common_loss_levels",
  "evaluate_task",
  "evaluate_tasks",
  "exact_match_answer",
  "finetune_closeness",
  "geometry_from_gram",
  "geometry_metrics",
  "gradient_geometry",
  "group_by_optimizer",
  "interpolate_at_levels",
  "interval_of_mean",
  "load_run",
  "loss_at_steps",
  "make_closeness",
  "make_gradient_geometry",
  "make_per_source_loss",
  "make_sgd_closeness",
  "make_teacher_forced",
  "matched_metric",
  "paired_difference",
  "paired_table",
  "math_forced_task",
  "math_task",
  "mean_source_gradients",
  "monotone_loss_curve",
  "sgd_closeness",
  "stack_source_batches",
  "write_report",
]
