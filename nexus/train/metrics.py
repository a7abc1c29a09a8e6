"""Metric sinks of the training loop: JSONL, TensorBoard event files, and a progress line.

``metrics.jsonl`` (one JSON object per logged step) is the format ``launch.compare`` reads; the same
scalars go to TensorBoard through tensorboardX (no TensorFlow needed). Only process 0 writes.

The JSONL log is crash-consistent with the checkpoints: the loop makes a step's records durable
(``MetricWriter.sync``) before that step's checkpoint save starts, and a resumed run cuts the log
back to the restored step (``truncate_metrics``), so a run killed at any point, then resumed, has
every step's record exactly once and in order. A torn last line (a kill or a full disk mid-write) is
dropped with a warning naming the file.
"""

from collections.abc import Mapping
import contextlib
import json
import math
import os
import sys
import time
from typing import Any

from absl import logging
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
    with self._writing():
      assert self._file is not None  # enabled writers open it in __init__
      self._file.write(json.dumps(record) + "\n")
      self._file.flush()
    if self._tb is not None:
      for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
          self._tb.add_scalar(key, value, step)

  def sync(self) -> None:
    """Makes every record written so far durable (on disk, not in a cache), e.g. before a checkpoint."""
    if self._file is not None:
      with self._writing():
        self._file.flush()
        os.fsync(self._file.fileno())

  @contextlib.contextmanager
  def _writing(self, path: str | None = None):
    """A failed write (e.g. a full disk) is one line naming the file (``path``, by default the JSONL log)."""
    try:
      yield
    except OSError as error:
      raise OSError(
        error.errno,
        f"{error.strerror} while writing {path or self.path}; free space or fix the "
        "directory, then run again to resume from the last checkpoint.",
      ) from None

  def close(self) -> None:
    if self._file is not None:
      file, self._file = self._file, None
      with self._writing():
        file.close()
    if self._tb is not None:
      tb, self._tb = self._tb, None
      with self._writing(tb.logdir):
        tb.close()

  def __enter__(self) -> "MetricWriter":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def read_metrics(workdir: str, *, up_to_step: int | None = None) -> list[dict]:
  """The records of ``<workdir>/metrics.jsonl`` (optionally only steps <= ``up_to_step``).

  A torn last line (the writer was killed mid-line) is dropped with a warning naming the file.

  Raises:
    ValueError: a line other than the last is not a JSON record with a step (names the file and line).
  """
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path, encoding="utf-8", errors="replace") as f:
    lines = f.read().split("\n")
  torn = lines.pop()  # the text after the last newline: empty unless the last write was cut short
  records = []
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
      int(record["step"])
    except (ValueError, TypeError, KeyError) as error:
      raise ValueError(
        f"{path} line {number} is not a metrics record ({type(error).__name__}); fix or delete that line."
      ) from None
    records.append(record)
  if torn.strip():
    logging.warning(
      "Dropped a torn last line of %s (%d characters, written by a run that was cut short).",
      path,
      len(torn),
    )
  return [r for r in records if up_to_step is None or r["step"] <= up_to_step]


def truncate_metrics(workdir: str, step: int) -> None:
  """Keeps only records up to ``step`` (a resumed run rewrites the later ones), durably.

  Also drops a torn last line, so the log is whole before the resumed run appends to it.
  """
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path) or jax.process_index() != 0:
    return
  kept = read_metrics(workdir, up_to_step=step)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for record in kept:
      f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


class Progress:
  """A one-line progress display: step, loss, tokens/s and ETA (rewritten in place on a terminal)."""

  def __init__(self, total_steps: int, tokens_per_step: int, start_step: int, *, stream=None):
    self.total_steps = total_steps
    self.tokens_per_step = tokens_per_step
    self.stream = stream or sys.stdout
    self.enabled = jax.process_index() == 0
    self._interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._start_time: float | None = None
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
    line = (
      f"step {step:>6}/{self.total_steps}  loss {loss:7.4f}  {self.tokens_per_second:9.0f} tok/s  "
      f"ETA {int(eta) // 60:02d}:{int(eta) % 60:02d}{extra}"
    )
    if self.enabled:
      end = "\r" if self._interactive and step < self.total_steps else "\n"
      print(line, end=end, file=self.stream, flush=True)
