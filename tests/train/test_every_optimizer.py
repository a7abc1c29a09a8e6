"""Every registered optimizer trains real steps in the trainer (1 layer, 1 device, 2 steps, one compile
each); the registry tests (tests/optim/test_registry.py) check each method's numerics."""

import shutil
import tempfile

import numpy as np
import pytest

from nexus.optim import registry
from nexus.train import metrics as metrics_lib
from tests.train import harness

SMALLEST = {"train.steps": 2, "eval.every": 0, "checkpoint.every": 100}


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(registry.METHODS))
def test_method_runs_real_steps(method):
  workdir = tempfile.mkdtemp(prefix="nexus-every-optimizer-")
  try:
    summary = harness.train_here(workdir, {**SMALLEST, "opt.name": method})
    records = [r for r in metrics_lib.read_metrics(workdir) if "train/loss" in r]
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  assert summary["status"] == "finished" and summary["step"] == 2, summary
  assert summary["skipped_steps"] == 0, summary
  assert [r["step"] for r in records] == [1, 2]
  assert np.all(np.isfinite([r["train/loss"] for r in records])), records
  assert records[0]["param_norm"] != records[1]["param_norm"], records  # the second step moved θ
