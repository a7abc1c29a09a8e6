r"""Tunes every method of a comparison with the same budget, on the validation loss, with bracketed optima.

  python -m launch.sweep --out=runs/sweep                          # the spec launch/sweeps/tiny.json
  python -m launch.sweep --out=runs/sweep --spec=my_sweep.json
  python -m launch.sweep --out=runs/sweep --config=configs/tiny.py --override=train.steps=300 \
      --grid=adamw:opt.learning_rate=1e-3,3e-3,1e-2 --grid=adamw:opt.final_lr_fraction=0.0,0.1 \
      --grid=nexus:opt.learning_rate=1e-3,3e-3,1e-2 --grid=nexus:opt.inner_learning_rate=0.03,0.1 \
      [--seeds=0] [--metric=eval/loss_macro] [--max_extensions=3] [--bound=opt.final_lr_fraction=0,1]

A spec file is JSON: ``{"config": ..., "overrides": {field: value}, "methods": {method: {field:
[values]}}, "metric": ..., "seeds": [...], "max_extensions": n, "bounds": {field: [low, high]}}``;
any of these flags given on the command line replaces the spec's value (``--grid`` flags replace its
methods). A method is ``opt.name`` unless its grid sets ``opt.name`` itself (so ``"nexus_leaf":
{"opt.name": ["nexus"], "opt.normalize": ["leaf"], ...}`` is a variant). Every method's grid must
have the same number of settings; each setting is trained with ``launch.train`` (any config field
can be swept) and scored by ``--metric`` at its last step, a validation metric; when the best
setting is at the edge of a numeric field the sweep adds one setting beyond it
(``nexus.report.tuning``), and says so. The choice and every run go to ``<out>/sweep.json`` and
``<out>/sweep.md``.

``--jobs=2`` trains the grids two runs at a time (each on one CPU thread, ``launch.study``); the
bracketing extensions, which depend on the grids' scores, run one at a time per method, the methods'
side by side.

Resumable: each run has its own workdir under ``<out>/runs``; a run that reached its last step with
the metric logged is not rerun, and an interrupted one resumes from its checkpoint, so rerunning the
same command continues the sweep. A workdir made with other flags is an error (use a new --out).
"""

import json
import os
import sys

from absl import app
from absl import flags

from launch import study
from nexus.report import tuning
from nexus.train import metrics as metrics_lib

DEFAULT_SPEC = os.path.join(os.path.dirname(__file__), "sweeps", "tiny.json")

_OUT = flags.DEFINE_string("out", "runs/sweep", "Directory of the sweep's runs and summary.")
_SPEC = flags.DEFINE_string("spec", DEFAULT_SPEC, "JSON sweep spec (see the module docstring).")
_CONFIG = flags.DEFINE_string(
  "config", "configs/tiny.py", "Config file of every run (replaces the spec's)."
)
_GRID = flags.DEFINE_multi_string(
  "grid", [], "METHOD:FIELD=V1,V2,... (repeat; replaces the spec's methods)."
)
_OVERRIDES = flags.DEFINE_multi_string(
  "override", [], "FIELD=VALUE for every run (added to the spec's)."
)
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds per setting; a setting's score is their mean.")
_METRIC = flags.DEFINE_string(
  "metric", tuning.DEFAULT_METRIC, "Validation metric minimized by the selection."
)
_MAX_EXTENSIONS = flags.DEFINE_integer(
  "max_extensions", 3, "Extra settings per method allowed for bracketing."
)
_BOUNDS = flags.DEFINE_multi_string(
  "bound", [], "FIELD=LOW,HIGH: extensions stay within these bounds."
)
_JOBS = flags.DEFINE_integer(
  "jobs", 1, "Runs at once while training the grids (one CPU thread each when above 1)."
)
SPEC_FLAGS = {
  "config": _CONFIG,
  "seeds": _SEEDS,
  "metric": _METRIC,
  "max_extensions": _MAX_EXTENSIONS,
}


def _pairs(items: list[str], flag: str) -> dict[str, str]:
  out = {}
  for item in items:
    field, eq, value = item.partition("=")
    if not (eq and field):
      raise ValueError(f"--{flag}={item!r} must look like FIELD=VALUE.")
    out[field] = value
  return out


def load_spec() -> tuple[tuple[str, dict], tuning.SweepSpec]:
  """``((config, overrides), SweepSpec)`` from the spec file and the command line."""
  spec = {}
  if _SPEC.value:
    try:
      with open(_SPEC.value, encoding="utf-8") as f:
        spec = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
      raise ValueError(
        f"cannot read --spec={_SPEC.value}: {error}; pass a JSON sweep spec."
      ) from None
  unknown = set(spec) - {
    "config",
    "overrides",
    "methods",
    "metric",
    "seeds",
    "max_extensions",
    "bounds",
  }
  if unknown:
    raise ValueError(f"spec {_SPEC.value} has unknown keys {sorted(unknown)}.")
  for key, flag in SPEC_FLAGS.items():
    if flag.present or key not in spec:
      spec[key] = flag.value
  if _GRID.present:
    spec["methods"] = tuning.parse_grids(_GRID.value)
  overrides = {
    **spec.get("overrides", {}),
    **{k: tuning.parse_value(v) for k, v in _pairs(_OVERRIDES.value, "override").items()},
  }
  bounds = {
    **spec.get("bounds", {}),
    **{
      k: [tuning.parse_value(x) for x in v.split(",")]
      for k, v in _pairs(_BOUNDS.value, "bound").items()
    },
  }
  try:
    seeds = tuple(int(s) for s in spec["seeds"])
  except ValueError:
    raise ValueError(f"seeds {spec['seeds']} must be integers.") from None
  sweep = tuning.SweepSpec(
    methods=spec.get("methods", {}),
    metric=spec["metric"],
    seeds=seeds,
    max_extensions=spec["max_extensions"],
    bounds={k: tuple(v) for k, v in bounds.items()},
  )
  return (spec["config"], overrides), sweep


def _text(value) -> str:
  return (
    (repr(value) if isinstance(value, float) else str(value)).replace("/", "_").replace(" ", "")
  )


def run_flags(method: str, settings: dict, seed: int, overrides: dict) -> dict:
  """Every config override of one run: the common ones, the method, its setting and the seed."""
  return {**overrides, "opt.name": method, **settings, "seed": seed}


def make_evaluate(out: str, config: str, overrides: dict, metric: str, *, shared_cpu: bool = False):
  """``evaluate(method, settings, seed)``: trains the run unless finished, returns its final ``metric``.

  With ``shared_cpu`` the run uses one XLA thread and logs to its workdir (``study.run_command``).
  """

  def final_value(workdir: str, steps: int):
    values = [(r["step"], r[metric]) for r in metrics_lib.read_metrics(workdir) if metric in r]
    return max(values)[1] if values and max(values)[0] >= steps else None

  def evaluate(method: str, settings: dict, seed: int) -> float:
    run = run_flags(method, settings, seed, overrides)
    name = (
      ",".join(f"{field}={_text(value)}" for field, value in settings.items()) + f",seed={seed}"
    )
    workdir = os.path.join(out, "runs", method, name)
    os.makedirs(workdir, exist_ok=True)
    record = {"config": config, "flags": run}
    record_path = os.path.join(workdir, "sweep_run.json")
    if os.path.exists(record_path):
      with open(record_path, encoding="utf-8") as f:
        if json.load(f) != json.loads(json.dumps(record)):
          raise ValueError(
            f"{workdir} was made with other flags (see its sweep_run.json); use a new --out or the "
            "same command as before."
          )
    else:
      with open(record_path, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    steps = int(run.get("train.steps") or study.config_steps(config))
    value = final_value(workdir, steps)
    if value is None:
      print(f"[sweep] training {workdir}", flush=True)
      command = [
        sys.executable,
        "-m",
        "launch.train",
        f"--config={config}",
        f"--workdir={workdir}",
        *[f"--config.{field}={value}" for field, value in run.items()],
      ]
      if study.run_command(command, workdir, shared_cpu=shared_cpu):
        where = os.path.join(workdir, study.LOG_NAME) if shared_cpu else "above"
        raise ValueError(
          f"training {workdir} failed (its output: {where}); fix the setting or the grid."
        )
      value = final_value(workdir, steps)
      if value is None:
        raise ValueError(
          f"{workdir} finished without {metric!r} at step {steps}; pick a metric the trainer logs at "
          "its last step (eval.every > 0), e.g. eval/loss_macro."
        )
    else:
      print(f"[sweep] done     {workdir}: {metric} = {value:.4f}", flush=True)
    return float(value)

  return evaluate


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    (config, overrides), spec = load_spec()
    jobs = _JOBS.value
    evaluate = make_evaluate(_OUT.value, config, overrides, spec.metric, shared_cpu=jobs > 1)
    if jobs > 1:  # the grids first, in parallel; the selection then finds them trained
      grid = [
        (method, settings, seed)
        for method, fields in spec.methods.items()
        for settings in tuning.grid_points(fields)
        for seed in spec.seeds
      ]
      study.parallel_map(lambda point: evaluate(*point), grid, jobs)
    # Methods are swept side by side, so their bracketing extensions run at once too.
    results = tuning.run_sweep(
      spec, evaluate, map_methods=lambda sweep, methods: study.parallel_map(sweep, methods, jobs)
    )
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None
  summary = tuning.summary_json(spec, results)
  summary.update(config=config, overrides=overrides)
  with open(os.path.join(_OUT.value, "sweep.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=2)
  markdown = tuning.summary_markdown(spec, results)
  with open(os.path.join(_OUT.value, "sweep.md"), "w", encoding="utf-8") as f:
    f.write(markdown)
  print(markdown)
  print(f"summary: {os.path.join(_OUT.value, 'sweep.json')} and sweep.md")


if __name__ == "__main__":
  app.run(main)
