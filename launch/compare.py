r"""Compares training runs: a markdown report and PNG plots testing "same loss, better generalization".

  python -m launch.compare runs/adamw_s0 runs/adamw_s1 runs/nexus_s0 runs/nexus_s1 --out=reports/cmp \
      [--loss_key=train/loss] [--target_losses=3.2,3.0] [--num_levels=3] [--smooth_window=1] [--baseline=adamw]

Each workdir needs ``metrics.jsonl`` and ``config.json`` (written by ``launch.train``). Runs are grouped by
``opt.name``; a group's runs are seeds. Writes ``<out>/report.md`` with tables at matched training loss
and at the end of training, paired differences from the baseline optimizer by seed with 95% intervals,
and the plots it shows (see ``nexus.report.comparison``).

A workdir argument may be a directory of run workdirs (e.g. ``launch.reproduce --out``).
With ``--endpoints=runs/branches`` (the measured cooldown branches of ``launch.branches``:
workdirs, or directories of them), the report opens with the primary view: the annealed end points
compared at the same validation loss, paired differences at every level
(``nexus.report.endpoints``); the sections on the positional runs' curves (curve matching) follow,
labelled as the secondary view. ``--sweep=<sweep.json>`` appends the tuning that chose the compared
settings (grids, scores, chosen values, bracketing).
"""

from absl import app
from absl import flags

_OUT = flags.DEFINE_string(
  "out", None, "Directory for report.md and the PNG plots (created if missing)."
)
_LOSS_KEY = flags.DEFINE_string(
  "loss_key", "train/loss", "The training-loss metric that levels are matched on."
)
_TARGET_LOSSES = flags.DEFINE_list(
  "target_losses",
  None,
  "Loss levels of the matched table (default: --num_levels levels shared by all runs).",
)
_NUM_LEVELS = flags.DEFINE_integer(
  "num_levels", 3, "Number of automatic loss levels (without --target_losses)."
)
_SMOOTH_WINDOW = flags.DEFINE_integer(
  "smooth_window", 1, "Trailing-mean window over logged training losses before the running minimum."
)
_ENDPOINTS = flags.DEFINE_list(
  "endpoints",
  None,
  "Measured cooldown-branch workdirs, or directories of them (launch.branches --out): the primary "
  "view, at the same validation loss between annealed end points.",
)
_ENDPOINT_LEVELS = flags.DEFINE_integer(
  "endpoint_levels", 3, "Validation-loss levels of the end-point view (with --endpoints)."
)
_SWEEP = flags.DEFINE_string(
  "sweep",
  None,
  "The launch.sweep summary (sweep.json) that chose the compared settings: its tables are appended.",
)
_BASELINE = flags.DEFINE_string(
  "baseline",
  None,
  "Optimizer the paired differences subtract (default: adamw if compared, else the first).",
)


def main(argv):
  workdirs = argv[1:]
  if not workdirs:
    raise app.UsageError(
      "pass one or more run workdirs, e.g. python -m launch.compare runs/a runs/b --out=report"
    )
  if not _OUT.value:
    raise app.UsageError("--out is required, e.g. --out=reports/compare")
  from nexus.report import comparison  # pylint: disable=g-import-not-at-top
  from nexus.report import endpoints  # pylint: disable=g-import-not-at-top
  from nexus.report import runs as runs_lib  # pylint: disable=g-import-not-at-top
  from nexus.report import tuning  # pylint: disable=g-import-not-at-top

  try:
    targets = None if _TARGET_LOSSES.value is None else [float(x) for x in _TARGET_LOSSES.value]
  except ValueError:
    raise SystemExit(
      f"error: --target_losses={','.join(_TARGET_LOSSES.value)} must be comma-separated numbers."
    ) from None
  try:
    runs = [runs_lib.load_run(workdir) for workdir in runs_lib.expand_workdirs(workdirs)]
    primary = None
    if _ENDPOINTS.value:
      primary = endpoints.format_section(
        endpoints.compare_end_points(
          endpoints.load_end_points(_ENDPOINTS.value),
          num_levels=_ENDPOINT_LEVELS.value,
          baseline=_BASELINE.value,
        )
      )
    report = comparison.write_report(
      runs,
      _OUT.value,
      loss_key=_LOSS_KEY.value,
      target_losses=targets,
      num_levels=_NUM_LEVELS.value,
      window=_SMOOTH_WINDOW.value,
      baseline=_BASELINE.value,
    )
    if primary is not None:
      endpoints.insert_primary_section(report.path, primary)
    if _SWEEP.value:
      tuning.append_to_report(report.path, _SWEEP.value)
  except ValueError as error:  # missing workdirs or metrics, bad options: one line, no traceback
    raise SystemExit(f"error: {error}") from None
  print(f"report: {report.path}")
  for path in report.plots:
    print(f"plot  : {path}")


if __name__ == "__main__":
  app.run(main)
