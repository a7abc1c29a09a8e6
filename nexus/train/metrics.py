"""Metric sinks of the training loop: JSONL, TensorBoard event files, and a progress line.

``metrics.jsonl`` (one JSON object per logged step) is the format ``launch.compare`` reads; the same
scalars go to TensorBoard through tensorboardX (no TensorFlow needed). Only process 0 writes.
"""

import json
import math
import os
import sys
import time
from typing import Any, Mapping

import jax
import numpy as np


def _to_json_value(value: Any) -> Any:
  array = np.asarray(value)
  if array.ndim == 0:
    scalar = array.item()
    if isinstance(scalar, float) and not math.isfinite(scalar):
      return None
    return scalar
  return array.tolist()


class MetricWriter:
  """Appends metrics to ``<workdir>/metrics.jsonl`` and TensorBoard events in ``<workdir>/tb``."""

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    self.enabled = jax.process_index() == 0
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._file = open(self.path, "a", encoding="utf-8") if self.enabled else None
    self._tb = None
    if self.enabled and tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, "tb"))

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step)}
    record.update({key: _to_json_value(value) for key, value in metrics.items()})
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    if self._tb is not None:
      for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
          self._tb.add_scalar(key, value, step)

  def close(self) -> None:
    if self._file is not None:
      self._file.close()
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str, *, up_to_step: int | None = None) -> list[dict]:
  """The records of ``<workdir>/metrics.jsonl`` (optionally only steps <= ``up_to_step``)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8") as f:
    records = [json.loads(line) for line in f if line.strip()]
  return [r for r in records if up_to_step is None or r["step"] <= up_to_step]


def truncate_metrics(workdir: str, step: int) -> None:
  """Drops records after ``step`` (a resumed run rewrites them, so the log has no duplicates)."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path) or jax.process_index() != 0:
    return
  kept = read_metrics(workdir, up_to_step=step)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for record in kept:
      f.write(json.dumps(record) + "\n")
  os.replace(tmp, path)


class Progress:
  """A one-line progress display: step, loss, tokens/s and ETA (rewritten in place on a terminal)."""

  def __init__(self, total_steps: int, tokens_per_step: int, start_step: int, *, stream=None):
    self.total_steps = total_steps
    self.tokens_per_step = tokens_per_step
    self.stream = stream or sys.stdout
    self.enabled = jax.process_index() == 0
    self._interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._start_time = None
    self._start_step = start_step
    self._excluded_seconds = 0.0
    self.tokens_per_second = float("nan")

  def exclude(self, seconds: float) -> None:
    """Leaves ``seconds`` (evaluation, checkpointing) out of the training throughput and ETA."""
    if self._start_time is not None:
      self._excluded_seconds += seconds

  def update(self, step: int, loss: float, extra: str = "") -> None:
    now = time.perf_counter()
    if self._start_time is None:  # the first step includes compilation: time from its end
      self._start_time, self._start_step = now, step
      return
    done = step - self._start_step
    elapsed = now - self._start_time - self._excluded_seconds
    seconds_per_step = elapsed / max(done, 1)
    self.tokens_per_second = self.tokens_per_step / seconds_per_step
    eta = seconds_per_step * (self.total_steps - step)
    line = (f"step {step:>6}/{self.total_steps}  loss {loss:7.4f}  {self.tokens_per_second:9.0f} tok/s  "
            f"ETA {int(eta) // 60:02d}:{int(eta) % 60:02d}{extra}")
    if self.enabled:
      end = "\r" if self._interactive and step < self.total_steps else "\n"
      print(line, end=end, file=self.stream, flush=True)
