"""The same training run on 1 device and on 8 fake devices (data, fsdp and tensor sharding) gives the same
losses. Two processes of 4 devices each over 127.0.0.1 (preempted, then resumed) against one process of 8
devices: tests/train/test_faults.py's MultiHostPreemptionTest."""

import shutil
import tempfile

from absl.testing import absltest
import numpy as np

from tests.train import harness
from tests.train.test_training import train_records

SHORT = {"train.steps": 3, "eval.every": 0, "checkpoint.every": 100}


def workdir(test):
  path = tempfile.mkdtemp(prefix="nexus-dist-")
  test.addCleanup(shutil.rmtree, path, ignore_errors=True)
  return path


def losses(path):
  return np.asarray([r["train/loss"] for r in train_records(path)])


class DistributedTest(absltest.TestCase):
  def test_one_device_and_eight_sharded_devices_agree(self):
    single = workdir(self)
    harness.train(single, SHORT)
    sharded = workdir(self)
    harness.train(
      sharded, {**SHORT, "mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 2}, num_devices=8
    )
    np.testing.assert_allclose(losses(sharded), losses(single), rtol=2e-5)


if __name__ == "__main__":
  absltest.main()
