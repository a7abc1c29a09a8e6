r"""Measures a run's latest checkpoint: per-source/OOD loss, gradient geometry, closeness, downstream.

  python -m launch.evaluate --workdir=runs/tiny [--split=test] [--closeness_relative_drop=0.05] \
      [--closeness_learning_rate=0.1] [--closeness_max_steps=100] [--downstream_problems=500]

Appends the measurements to ``<workdir>/metrics.jsonl`` at the checkpoint's step (for
launch.compare) and prints them.
"""

from absl import app
from absl import flags

_WORKDIR = flags.DEFINE_string(
  "workdir", None, "A run directory made by launch.train.", required=True
)
_SPLIT = flags.DEFINE_enum(
  "split", "test", ["validation", "test"], "Split of the reported numbers."
)
_CLOSENESS_LR = flags.DEFINE_float(
  "closeness_learning_rate", 0.1, "SGD learning rate of the closeness fine-tuning."
)
_CLOSENESS_DROP = flags.DEFINE_float(
  "closeness_relative_drop",
  0.05,
  "Fine-tune each source until its loss has dropped by this fraction.",
)
_CLOSENESS_MAX_STEPS = flags.DEFINE_integer(
  "closeness_max_steps", 100, "Step budget per source for closeness."
)
_CLOSENESS_BATCHES = flags.DEFINE_integer(
  "closeness_batches", 2, "Training-split batches per source for closeness."
)
_PROBLEMS = flags.DEFINE_integer(
  "downstream_problems", 500, "Problems per math family scored by teacher forcing."
)
_EXACT_MATCH_PROBLEMS = flags.DEFINE_integer(
  "exact_match_problems", 100, "Problems per math family also solved by greedy generation."
)
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 144, "Longest generated continuation.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from nexus.train import checkpoint_eval  # pylint: disable=g-import-not-at-top
  from nexus.train import run_logging  # pylint: disable=g-import-not-at-top

  run_logging.quiet_terminal()  # the measurements and this project's warnings only; no library INFO
  try:
    metrics = checkpoint_eval.evaluate_checkpoint(
      _WORKDIR.value,
      split=_SPLIT.value,
      closeness_learning_rate=_CLOSENESS_LR.value,
      closeness_relative_drop=_CLOSENESS_DROP.value,
      closeness_max_steps=_CLOSENESS_MAX_STEPS.value,
      closeness_batches=_CLOSENESS_BATCHES.value,
      downstream_problems=_PROBLEMS.value,
      exact_match_problems=_EXACT_MATCH_PROBLEMS.value,
      max_new_tokens=_MAX_NEW_TOKENS.value,
    )
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None
  for key in sorted(metrics):
    value = metrics[key]
    if isinstance(value, (int, float)):
      print(f"{key:45s} {value:.4f}")


if __name__ == "__main__":
  app.run(main)
