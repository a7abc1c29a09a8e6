"""The same training run on 1 device and on the session's 8 fake devices (data, fsdp and tensor
sharding) gives the same losses, with the model's activation constraints traced on the run's mesh.
Two processes of 4 devices each over 127.0.0.1 (preempted, then resumed) against one process of 8
devices: tests/train/test_faults.py's MultiHostPreemptionTest."""

import shutil
import tempfile
from unittest import mock

import jax
import numpy as np
import pytest

from nexus.model import sharding
from tests.train import harness
from tests.train.test_training import train_records

SHORT = {"train.steps": 3, "eval.every": 0, "checkpoint.every": 100}


def losses(overrides: dict, devices: int) -> np.ndarray:
  workdir = tempfile.mkdtemp(prefix="nexus-dist-")
  try:
    harness.train_here(workdir, overrides, devices=devices)
    return np.asarray([r["train/loss"] for r in train_records(workdir)])
  finally:
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.slow
def test_one_device_and_eight_sharded_devices_agree():
  assert len(jax.devices()) == 8, "tests/conftest.py gives the session 8 CPU devices"
  single = losses(SHORT, devices=1)
  traced_on = []  # the mesh each activation constraint is traced under

  def spy(x, logical_axes, *args, **kwargs):
    traced_on.append(dict(jax.sharding.get_abstract_mesh().shape))
    return constrain(x, logical_axes, *args, **kwargs)

  constrain = sharding.constrain
  with mock.patch.object(sharding, "constrain", spy):
    sharded = losses({**SHORT, "mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 2}, devices=8)
  # The trainer traces its step under the run's mesh, so the block-boundary constraints are active.
  assert traced_on and all(m == {"data": 2, "fsdp": 2, "tensor": 2} for m in traced_on), traced_on
  assert len(single) == 3
  np.testing.assert_allclose(sharded, single, rtol=2e-5)
