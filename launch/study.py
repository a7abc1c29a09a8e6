"""Runs a set of training runs resumably, each followed by its checkpoint measurements.

Shared by ``launch.reproduce`` (the AdamW vs Nexus study), ``launch.sweep`` (choosing γ and K)
and ``launch.branches`` (the cooldown branches of stable runs).
Each run is a subprocess of ``launch.train`` then ``launch.evaluate`` in its own workdir; a run whose
training reached its last step is not retrained, and one already measured is not re-measured, so an
interrupted study resumes where it stopped.
"""

import importlib.util
import os
import subprocess
import sys

from nexus.train import metrics as metrics_lib


def config_steps(config_path: str) -> int:
  """``train.steps`` of a config file (the step a finished run reaches)."""
  spec = importlib.util.spec_from_file_location("study_config", config_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config().train.steps


def _last_train_step(workdir: str) -> int:
  steps = [r["step"] for r in metrics_lib.read_metrics(workdir) if "train/loss" in r]
  return max(steps, default=0)


def _measured(workdir: str) -> bool:
  return any("closeness/mean_sq_dist" in r for r in metrics_lib.read_metrics(workdir))


def run_and_measure(
  workdir: str, config: str, overrides: dict, *, steps: int, evaluate_flags: tuple = ()
) -> None:
  """Trains ``config`` with ``overrides`` in ``workdir`` (resuming), then measures its final checkpoint."""
  flags = [f"--config.{key}={value}" for key, value in overrides.items()]
  if _last_train_step(workdir) < steps:
    print(f"[study] training {workdir}", flush=True)
    subprocess.run(
      [sys.executable, "-m", "launch.train", f"--config={config}", f"--workdir={workdir}", *flags],
      check=True,
    )
  if not _measured(workdir):
    print(f"[study] measuring {workdir}", flush=True)
    subprocess.run(
      [sys.executable, "-m", "launch.evaluate", f"--workdir={workdir}", *evaluate_flags], check=True
    )


def compare(workdirs: list[str], out: str) -> None:
  """Writes the comparison report of ``workdirs`` into ``out``."""
  subprocess.run([sys.executable, "-m", "launch.compare", *workdirs, f"--out={out}"], check=True)
  print(f"[study] report: {os.path.join(out, 'report.md')}")
