"""On-device measurements of the paper's claim on any model given as pure functions of (params, batch).

What the trainer (``nexus.train.evaluation``) and ``launch.evaluate``
(``nexus.train.checkpoint_eval``) call on parameters; reading finished runs and reporting on them is
``nexus.report``'s job.

- ``make_per_source_loss``: per-source, micro/macro and held-out (OOD) validation loss.
- ``make_gradient_geometry`` / ``gradient_geometry``: per-source gradient cosines, norms, conflicts
  and the closeness bound's sums.
- ``make_sgd_closeness`` / ``make_closeness``: closeness of per-source minima by fine-tuning on each
  source alone (full-batch SGD to a fixed relative loss drop; or any optimizer for a fixed number of
  steps).
- ``Task``, ``math_task``, ``evaluate_task(s)``, ``chance_level``: downstream exact-match accuracy
  with a caller's generator, beside its chance level.
- ``ForcedTask``, ``math_forced_task``, ``make_teacher_forced``: answer likelihood and token
  accuracy under teacher forcing (downstream signal without generation).
- ``stack_source_batches``: per-source batches stacked ``[S, N, ...]`` for the vmapped measurements.

Reference: Chen et al., *Nexus: Same Pretraining Loss, Better Downstream Generalization via Common
Minima*, arXiv:2604.09258 (2026).
"""

from nexus.measure.batches import stack_source_batches
from nexus.measure.closeness import Closeness
from nexus.measure.closeness import closeness_metrics
from nexus.measure.closeness import finetune_closeness
from nexus.measure.closeness import make_closeness
from nexus.measure.closeness import make_sgd_closeness
from nexus.measure.closeness import sgd_closeness
from nexus.measure.downstream import Task
from nexus.measure.downstream import chance_level
from nexus.measure.downstream import evaluate_task
from nexus.measure.downstream import evaluate_tasks
from nexus.measure.downstream import exact_match_answer
from nexus.measure.downstream import math_task
from nexus.measure.geometry import GradientGeometry
from nexus.measure.geometry import geometry_from_gram
from nexus.measure.geometry import geometry_metrics
from nexus.measure.geometry import gradient_geometry
from nexus.measure.geometry import make_gradient_geometry
from nexus.measure.geometry import mean_source_gradients
from nexus.measure.per_source_loss import make_per_source_loss
from nexus.measure.teacher_forced import ForcedTask
from nexus.measure.teacher_forced import make_teacher_forced
from nexus.measure.teacher_forced import math_forced_task

__all__ = [
  "Closeness",
  "ForcedTask",
  "GradientGeometry",
  "Task",
  "chance_level",
  "closeness_metrics",
  "evaluate_task",
  "evaluate_tasks",
  "exact_match_answer",
  "finetune_closeness",
  "geometry_from_gram",
  "geometry_metrics",
  "gradient_geometry",
  "make_closeness",
  "make_gradient_geometry",
  "make_per_source_loss",
  "make_sgd_closeness",
  "make_teacher_forced",
  "math_forced_task",
  "math_task",
  "mean_source_gradients",
  "sgd_closeness",
  "stack_source_batches",
]
