r"""The small-scale reproduction study: AdamW vs Nexus vs Nexus γ→0, same tokens, several seeds.

  python -m launch.reproduce --out=runs/study            # tiny config, 3 seeds, about an hour on 2 CPU cores
  python -m launch.reproduce --out=gs://b/study --config=configs/130m.py --seeds=0,1,2 \
      --override=mesh.data=-1 --override=train.steps=20000      # the paper's scales, on GPUs or a TPU pod

Every run trains the same config on the same data stream (same seed ⇒ same batches) and differs only
in ``opt.name``; each is then measured at its final checkpoint (per-source and OOD loss, gradient
geometry, closeness of per-source minima, downstream exact-match accuracy), and ``launch.compare``
writes the report (matched-loss table and plots) to ``<out>/report``. Rerunning resumes an
interrupted study.
"""

import os

from absl import app
from absl import flags

from launch import study

_OUT = flags.DEFINE_string("out", "runs/study", "Directory of the study's runs and report.")
_CONFIG = flags.DEFINE_string("config", "configs/tiny.py", "Config file of every run.")
_METHODS = flags.DEFINE_list(
  "methods", ["adamw", "nexus", "nexus_first_order"], "Optimizers compared."
)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (model init and data order).")
_OVERRIDES = flags.DEFINE_multi_string(
  "override", [], "Config overrides for every run, e.g. train.steps=400."
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  overrides = dict(item.split("=", 1) for item in _OVERRIDES.value)
  steps = int(overrides.get("train.steps", 0)) or None
  workdirs = []
  for seed in _SEEDS.value:
    for method in _METHODS.value:
      workdir = os.path.join(_OUT.value, f"{method}-seed{seed}")
      run_overrides = {**overrides, "opt.name": method, "seed": seed}
      study.run_and_measure(
        workdir, _CONFIG.value, run_overrides, steps=steps or study.config_steps(_CONFIG.value)
      )
      workdirs.append(workdir)
  study.compare(workdirs, os.path.join(_OUT.value, "report"))


if __name__ == "__main__":
  app.run(main)
