r"""Cooldown branches of stable runs, each trained then measured: issue 10's annealed end points.

  python -m launch.branches --stable=runs/adamw-seed0,runs/nexus-seed0 \
      --branch_steps=200,400,600 --cooldown_fraction=0.2 --out=runs/branches \
      [--evaluate_flag=--downstream_problems=500]

For every stable run and every branch step b (a saved checkpoint of the stable phase: the stable
run must keep it, e.g. ``--config.checkpoint.keep`` above the number of its checkpoints), a branch
``<out>/<stable directory name>-from<b>`` starts from step b (``train.init_from`` and
``train.init_step``: params, optimizer state, data position) and decays linearly from b over the
last ``cooldown_fraction`` of its steps (wsd with ``opt.decay_start=b`` and
``train.steps = round(b / (1 − cooldown_fraction))``), with the stable run's config otherwise
(``configs/from_run.py``). Each branch is then measured by ``launch.evaluate``. Finished branches
are not retrained and measured ones not re-measured, so an interrupted stage resumes where it
stopped. ``launch.compare --endpoints=<out>`` compares the end points at the same validation loss
(``nexus.report.endpoints``).

Every branch is checked before any work: the stable run saved step b, and b lies in its stable
phase (its learning rate there is the peak).
"""

import dataclasses
import os

from absl import app
from absl import flags

from launch import study

_STABLE = flags.DEFINE_list(
  "stable",
  None,
  "Workdirs of the stable runs (one per method and seed), or directories of them.",
  required=True,
)
_BRANCH_STEPS = flags.DEFINE_list(
  "branch_steps", None, "Saved stable-phase steps to branch from, e.g. 200,400,600.", required=True
)
_COOLDOWN_FRACTION = flags.DEFINE_float(
  "cooldown_fraction", 0.2, "Share of a branch's steps spent decaying (wsd's decay_fraction)."
)
_OUT = flags.DEFINE_string("out", None, "Directory of the branch runs.", required=True)
_EVALUATE_FLAGS = flags.DEFINE_multi_string(
  "evaluate_flag", [], "A flag for launch.evaluate, e.g. --evaluate_flag=--downstream_problems=100."
)
_JOBS = flags.DEFINE_integer("jobs", 1, "Branches at once (one CPU thread each when above 1).")

# The stable run's own config (``configs/from_run.py:<workdir>``), whatever file trained it.
CONFIG_FROM_RUN = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "from_run.py"
)


@dataclasses.dataclass(frozen=True)
class Branch:
  """One cooldown branch: where it runs and the overrides of its stable run's config."""

  workdir: str
  stable: str
  steps: int
  overrides: dict


def end_step(branch_step: int, cooldown_fraction: float) -> int:
  """The last step of a branch from ``branch_step`` that decays over ``cooldown_fraction`` of it."""
  if not 0 < cooldown_fraction < 1:
    raise ValueError(f"cooldown_fraction={cooldown_fraction!r} must be in (0, 1), e.g. 0.2.")
  return max(branch_step + 1, round(branch_step / (1 - cooldown_fraction)))


def _check_stable_phase(stable: str, config, step: int) -> None:
  """Step ``step`` of the stable run is saved and trained at the peak learning rate."""
  from nexus.optim import schedules  # pylint: disable=g-import-not-at-top
  from nexus.train import checkpoint  # pylint: disable=g-import-not-at-top

  saved = checkpoint.saved_steps(stable)
  if step not in saved:
    raise ValueError(
      f"{stable} saved no checkpoint at step {step} (saved: {saved}); branch from saved steps, "
      "or train the stable run with a larger checkpoint.keep."
    )
  rate = float(schedules.learning_rate_schedule(config.opt, config.train.steps)(step))
  if rate < config.opt.learning_rate * (1 - 1e-6):
    raise ValueError(
      f"step {step} of {stable} is outside its stable phase (learning rate {rate:.3g}, peak "
      f"{config.opt.learning_rate:.3g}); branch from steps between its warmup and its decay."
    )


def plan(
  stables: list[str], branch_steps: list[int], cooldown_fraction: float, out: str
) -> list[Branch]:
  """Every (stable run, branch step)'s branch, each checked before any work is started."""
  from nexus.report import runs as runs_lib  # pylint: disable=g-import-not-at-top
  from nexus.train import checkpoint_eval  # pylint: disable=g-import-not-at-top
  from nexus.train import schema  # pylint: disable=g-import-not-at-top

  configs = {
    stable: schema.from_config_dict(checkpoint_eval.load_run_config(stable))
    for stable in map(os.path.normpath, runs_lib.expand_workdirs(stables))
  }
  branches = []
  # Earliest branch step first, for every stable run: an interrupted stage has given every
  # (method, seed) its first end points before any gets its last.
  for step in sorted(set(branch_steps)):
    for stable, config in configs.items():
      _check_stable_phase(stable, config, step)
      steps = end_step(step, cooldown_fraction)
      name = f"{os.path.basename(stable)}-from{step}"
      overrides = {
        "name": name,
        "train.init_from": stable,
        "train.init_step": step,
        "train.steps": steps,
        "opt.schedule": "wsd",
        "opt.decay_start": step,
      }
      branches.append(Branch(os.path.join(out, name), stable, steps, overrides))
  workdirs = [branch.workdir for branch in branches]
  if len(set(workdirs)) != len(workdirs):
    raise ValueError(
      f"stable runs {stables} share a directory name, so their branches would share workdirs; "
      "branch stable runs whose directories are named apart (e.g. adamw-seed0, nexus-seed0)."
    )
  return branches


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    branch_steps = [int(step) for step in _BRANCH_STEPS.value]
  except ValueError:
    raise SystemExit(
      f"error: --branch_steps={','.join(_BRANCH_STEPS.value)} must be comma-separated steps."
    ) from None
  from nexus.train import run_logging  # pylint: disable=g-import-not-at-top

  run_logging.quiet_terminal()
  try:
    branches = plan(_STABLE.value, branch_steps, _COOLDOWN_FRACTION.value, _OUT.value)
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None
  runs = [
    study.Run(
      branch.workdir,
      f"{CONFIG_FROM_RUN}:{branch.stable}",
      branch.overrides,
      branch.steps,
      tuple(_EVALUATE_FLAGS.value),
    )
    for branch in branches
  ]
  study.run_all(runs, jobs=_JOBS.value)
  print(f"[branches] {len(branches)} end points measured in {_OUT.value}")
  print(
    f"[branches] compare: python -m launch.compare {' '.join(_STABLE.value)} "
    f"--endpoints={_OUT.value} --out=<report dir>"
  )


if __name__ == "__main__":
  app.run(main)
