"""Training runs on disk: ``<workdir>/metrics.jsonl`` and ``<workdir>/config.json``, grouped by optimizer.

``metrics.jsonl`` holds one JSON object per logged record with a ``step`` and any metrics (the
trainer writes training and evaluation metrics of one step as separate records); ``config.json`` is
the run's config with ``opt.name``, ``seed`` and ``name``. Runs of the same optimizer are seeds of
one group.
"""

from collections.abc import Sequence
import dataclasses
import json
import math
import os
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class RunRecord:
  """One run's identity and metric records (in file order)."""

  workdir: str
  name: str
  optimizer: str
  seed: int
  records: tuple[dict, ...]

  def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of a scalar metric, sorted by step (the last record wins on a repeated step)."""
    by_step = {}
    for record in self.records:
      value = record.get(key)
      if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        by_step[int(record["step"])] = float(value)
    steps = np.asarray(sorted(by_step), np.int64)
    return steps, np.asarray([by_step[s] for s in steps], np.float64)

  def last(self, key: str) -> Any | None:
    """The value of ``key`` in the latest record that has it (None if no record does)."""
    found = [
      (int(record["step"]), index)
      for index, record in enumerate(self.records)
      if record.get(key) is not None
    ]
    return self.records[max(found)[1]][key] if found else None

  def keys(self) -> set[str]:
    return {key for record in self.records for key in record}


def _read_json_lines(path: str) -> list[dict]:
  records = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{number} is not valid JSON ({error.msg}).") from None
      if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        raise ValueError(f"{path}:{number} is not a JSON object with an integer 'step'.")
      records.append(record)
  return records


def load_run(workdir: str) -> RunRecord:
  """Reads a run's config and metrics; a missing or malformed file is a one-line ValueError."""
  if not os.path.isdir(workdir):
    raise ValueError(f"workdir {workdir!r} does not exist; pass the --workdir of a training run.")
  metrics_path, config_path = (
    os.path.join(workdir, "metrics.jsonl"),
    os.path.join(workdir, "config.json"),
  )
  if not os.path.isfile(metrics_path):
    raise ValueError(f"{metrics_path} is missing; the run has not logged any metrics yet.")
  if not os.path.isfile(config_path):
    raise ValueError(f"{config_path} is missing; the trainer writes it when the run starts.")
  try:
    with open(config_path, encoding="utf-8") as f:
      config = json.load(f)
  except json.JSONDecodeError as error:
    raise ValueError(f"{config_path} is not valid JSON ({error.msg}).") from None
  optimizer = config.get("opt", {}).get("name") if isinstance(config, dict) else None
  if not isinstance(optimizer, str) or not isinstance(config.get("seed"), int):
    raise ValueError(f"{config_path} lacks a string 'opt.name' or an integer 'seed'.")
  records = _read_json_lines(metrics_path)
  if not records:
    raise ValueError(f"{metrics_path} has no records; the run has not logged any metrics yet.")
  return RunRecord(
    workdir=workdir,
    name=str(config.get("name", os.path.basename(os.path.normpath(workdir)))),
    optimizer=optimizer,
    seed=config["seed"],
    records=tuple(records),
  )


def group_by_optimizer(runs: Sequence[RunRecord]) -> dict[str, list[RunRecord]]:
  """``{optimizer: runs sorted by seed}``, optimizers in order of first appearance; seeds must differ."""
  groups: dict[str, list[RunRecord]] = {}
  for run in runs:
    groups.setdefault(run.optimizer, []).append(run)
  for optimizer, members in groups.items():
    seeds = [run.seed for run in members]
    if len(set(seeds)) != len(seeds):
      raise ValueError(
        f"runs {[run.workdir for run in members]} are all optimizer {optimizer!r} with seeds "
        f"{seeds}: a group's runs must be distinct seeds; compare other variants separately."
      )
    members.sort(key=lambda run: run.seed)
  return groups


def expand_workdirs(paths: Sequence[str]) -> list[str]:
  """Run workdirs: each path that has ``config.json``, and for a directory without one its
  subdirectories that have it (e.g. ``launch.branches --out`` or ``launch.reproduce --out``)."""
  workdirs = []
  for path in paths:
    if os.path.isfile(os.path.join(path, "config.json")) or not os.path.isdir(path):
      workdirs.append(path)
      continue
    found = sorted(
      os.path.join(path, name)
      for name in os.listdir(path)
      if os.path.isfile(os.path.join(path, name, "config.json"))
    )
    if not found:
      raise ValueError(f"{path!r} is neither a run workdir nor a directory of run workdirs.")
    workdirs += found
  return workdirs
