"""A run's identity and history: one config per workdir, and a log of what happened to it.

Every checkpoint stores the config it was trained with. A resumed run compares its config with the
checkpoint's and refuses a difference (one line listing the changed fields), because silently
resuming with, say, another learning rate mixes two experiments in one run. An explicit
``--allow_config_change`` continues with the new config and records the change in
``<workdir>/history.jsonl``, which also records every start, resume and end of the run.

Fields that do not change the trained numbers may differ freely: the mesh (resharding on resume is
supported), checkpointing, logging and evaluation frequency, and the skipped-step tolerance.
"""

from collections.abc import Mapping
import datetime
import json
import math
import os
import socket
from typing import Any

import jax

HISTORY_NAME = "history.jsonl"
NEUTRAL_PREFIXES = ("mesh.", "checkpoint.")
NEUTRAL_FIELDS = ("train.log_every", "train.max_skipped_fraction", "eval.every")
_MISSING = "(unset)"


class ConfigChangedError(ValueError):
  """The config differs from the checkpoint's and the change was not allowed."""


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _canonical(value: Any) -> str:
  """A value as JSON, so a config and its JSON round trip compare equal (tuples vs lists, NaN)."""
  return json.dumps(value, sort_keys=True)


def _is_neutral(field: str) -> bool:
  return field.startswith(NEUTRAL_PREFIXES) or field in NEUTRAL_FIELDS


def config_changes(
  saved: Mapping[str, Any], current: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
  """The ``(field, saved value, current value)`` of every field that changes the run, sorted by field.

  Args:
    saved: the checkpoint's config (a nested dict, as JSON stored it).
    current: this run's config as a nested dict (``ConfigDict.to_dict()``).
  """
  old, new = _flatten(json.loads(_canonical(saved))), _flatten(json.loads(_canonical(current)))
  return [
    (field, old.get(field, _MISSING), new.get(field, _MISSING))
    for field in sorted(set(old) | set(new))
    if not _is_neutral(field)
    and _canonical(old.get(field, _MISSING)) != _canonical(new.get(field, _MISSING))
  ]


def _short(value: Any) -> str:
  if isinstance(value, float) and math.isfinite(value):
    return repr(value)
  return value if isinstance(value, str) else _canonical(value)


def describe_changes(changes: list[tuple[str, Any, Any]]) -> str:
  """``opt.learning_rate 0.001 -> 0.002, train.steps 200 -> 400``."""
  return ", ".join(f"{field} {_short(old)} -> {_short(new)}" for field, old, new in changes)


def record(workdir: str, event: str, **fields) -> None:
  """Appends ``{"event": event, "time", "host", "pid", **fields}`` to the history (process 0 only)."""
  if jax.process_index() != 0:
    return
  entry = {
    "event": event,
    "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    "host": socket.gethostname(),
    "pid": os.getpid(),
    **fields,
  }
  with open(os.path.join(workdir, HISTORY_NAME), "a", encoding="utf-8") as f:
    f.write(json.dumps(entry) + "\n")
    f.flush()
    os.fsync(f.fileno())


def check_resume(
  workdir: str,
  *,
  step: int,
  saved: Mapping[str, Any] | None,
  current: Mapping[str, Any],
  allow_change: bool,
) -> list[tuple[str, Any, Any]]:
  """Refuses a config change against the checkpoint of ``step`` unless allowed; returns the changes.

  Raises:
    ConfigChangedError: the configs differ in a field that changes the run and ``allow_change`` is False.
  """
  if saved is None:  # a checkpoint from before configs were stored: nothing to compare
    return []
  changes = config_changes(saved, current)
  if changes and not allow_change:
    raise ConfigChangedError(
      f"config differs from the checkpoint's at step {step}: {describe_changes(changes)}; pass "
      f"--allow_config_change to continue with the new config (recorded in {os.path.join(workdir, HISTORY_NAME)}), "
      "or use a new --workdir."
    )
  return changes


def record_changes(workdir: str, step: int, changes: list[tuple[str, Any, Any]]) -> None:
  """Records allowed config changes (from ``check_resume``), once the run has resumed at ``step``."""
  if changes:
    record(
      workdir,
      "config_change",
      step=step,
      changes={field: {"from": old, "to": new} for field, old, new in changes},
    )
