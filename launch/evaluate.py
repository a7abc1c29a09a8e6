r"""Measures a run's latest checkpoint: per-source/OOD loss, gradient geometry, closeness, downstream.

  python -m launch.evaluate --workdir=runs/tiny [--closeness_steps=20] [--downstream_problems=32]

Appends the measurements to ``<workdir>/metrics.jsonl`` at the checkpoint's step (for launch.compare)
and prints them.
"""

from absl import app
from absl import flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A run directory made by launch.train.", required=True)
_CLOSENESS_STEPS = flags.DEFINE_integer("closeness_steps", 20, "Fine-tuning steps per source for closeness.")
_CLOSENESS_LR = flags.DEFINE_float("closeness_learning_rate", 1e-3, "Adam learning rate of that fine-tuning.")
_PROBLEMS = flags.DEFINE_integer("downstream_problems", 32, "Problems per math family for exact-match accuracy.")
_MAX_NEW_TOKENS = flags.DEFINE_integer("max_new_tokens", 96, "Longest generated answer.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  from nexus.train import checkpoint_eval  # pylint: disable=g-import-not-at-top

  try:
    metrics = checkpoint_eval.evaluate_checkpoint(
        _WORKDIR.value, closeness_steps=_CLOSENESS_STEPS.value, closeness_learning_rate=_CLOSENESS_LR.value,
        downstream_problems=_PROBLEMS.value, max_new_tokens=_MAX_NEW_TOKENS.value,
    )
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None
  for key in sorted(metrics):
    value = metrics[key]
    if isinstance(value, (int, float)):
      print(f"{key:45s} {value:.4f}")


if __name__ == "__main__":
  app.run(main)
