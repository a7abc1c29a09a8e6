r"""A small sweep of Nexus's inner step length γ and inner steps K on the tiny config.

  python -m launch.sweep --out=runs/sweep [--gammas=0.003,0.01,0.03,0.1] [--ks=2,4] [--override=train.steps=200]

Trains one seed per (γ, K) (K changes the tokens per step, so compare at matched tokens or loss), measures
each final checkpoint and prints a table of validation and OOD loss, mean cross-source gradient cosine
and closeness per setting. The chosen setting is the one
with the lowest validation loss; docs/study.md records the result used by launch.reproduce.
"""

import os

from absl import app
from absl import flags

from launch import study
from nexus.train import metrics as metrics_lib

_OUT = flags.DEFINE_string("out", "runs/sweep", "Directory of the sweep's runs and report.")
_CONFIG = flags.DEFINE_string("config", "configs/tiny.py", "Config file of every run.")
_GAMMAS = flags.DEFINE_list("gammas", ["0.003", "0.01", "0.03", "0.1"], "Values of opt.inner_learning_rate.")
_KS = flags.DEFINE_list("ks", ["4"], "Values of train.num_inner_steps.")
_OVERRIDES = flags.DEFINE_multi_string("override", [], "Config overrides for every run.")

COLUMNS = ("eval/loss_macro", "eval/ood_loss_macro", "geometry/mean_cosine", "closeness/mean_sq_dist")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  overrides = dict(item.split("=", 1) for item in _OVERRIDES.value)
  steps = int(overrides.get("train.steps", 0)) or study.config_steps(_CONFIG.value)
  rows = []
  for k in _KS.value:
    for gamma in _GAMMAS.value:
      workdir = os.path.join(_OUT.value, f"nexus-k{k}-gamma{gamma}")
      study.run_and_measure(workdir, _CONFIG.value, {**overrides, "opt.name": "nexus",
                                                     "opt.inner_learning_rate": gamma,
                                                     "train.num_inner_steps": k}, steps=steps)
      final = {}
      for record in metrics_lib.read_metrics(workdir):
        final.update({key: record[key] for key in COLUMNS if key in record})
      rows.append((k, gamma, final))
  print(f"{'K':>3s} {'gamma':>7s} " + " ".join(f"{c:>24s}" for c in COLUMNS))
  for k, gamma, final in rows:
    print(f"{k:>3s} {gamma:>7s} " + " ".join(f"{final.get(c, float('nan')):24.4f}" for c in COLUMNS))


if __name__ == "__main__":
  app.run(main)
