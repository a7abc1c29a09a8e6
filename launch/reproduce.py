r"""The study's runs: every method, with its tuned settings, on paired seeds; each trained and measured.

  python -m launch.reproduce --sweep=runs/study/sweep/sweep.json --out=runs/study/stable \
      --seeds=0,1,2,3,4 --override=train.steps=1000 --override=checkpoint.every=200 \
      --override=checkpoint.keep=5 --jobs=2          # issue 10's stable stage (docs/study.md)
  python -m launch.reproduce --out=runs/study --config=configs/130m.py --seeds=0,1,2 \
      --override=mesh.data=-1 --override=train.steps=20000      # the paper's scales, on GPUs or a TPU pod

Each run ``<out>/<method>-seed<seed>`` trains the config with the common overrides, the method's own
settings and the seed (same seed ⇒ same init and same batches for every method, so runs pair by seed),
then ``launch.evaluate`` measures its final checkpoint. With ``--sweep`` (a ``launch.sweep`` summary)
the config, the common overrides and each method's chosen settings come from the sweep, so the study
runs what the equal-budget tuning selected; ``--override`` adds to or replaces them (e.g. a longer
``train.steps``). ``launch.compare`` writes the report. Rerunning resumes an interrupted stage.
"""

from absl import app
from absl import flags

from launch import study

_OUT = flags.DEFINE_string("out", "runs/study", "Directory of the runs.")
_SWEEP = flags.DEFINE_string(
  "sweep", None, "A launch.sweep summary (sweep.json): config, overrides and chosen settings."
)
_CONFIG = flags.DEFINE_string(
  "config", "configs/tiny.py", "Config file of every run (default: the sweep's, else this)."
)
_METHODS = flags.DEFINE_list(
  "methods", None, "Optimizers compared (default: the sweep's methods, else adamw,nexus)."
)
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds (model init and data order).")
_OVERRIDES = flags.DEFINE_multi_string(
  "override", [], "Config overrides for every run, e.g. train.steps=400."
)
_EVALUATE_FLAGS = flags.DEFINE_multi_string(
  "evaluate_flag", [], "A flag for launch.evaluate, e.g. --evaluate_flag=--exact_match_problems=32."
)
_JOBS = flags.DEFINE_integer("jobs", 1, "Runs at once (one CPU thread each when above 1).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  sweep = study.load_sweep(_SWEEP.value) if _SWEEP.value else None
  try:
    runs = study.plan_runs(
      sweep,
      out=_OUT.value,
      config=_CONFIG.value if _CONFIG.present or not sweep else None,
      methods=_METHODS.value,
      seeds=_SEEDS.value,
      overrides=dict(item.split("=", 1) for item in _OVERRIDES.value),
      evaluate_flags=tuple(_EVALUATE_FLAGS.value),
    )
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None
  study.run_all(runs, jobs=_JOBS.value)
  print(f"[reproduce] {len(runs)} runs trained and measured in {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
