"""The same training run on 1 device, on 8 fake devices (data, fsdp and tensor sharding), and on two
processes of 4 devices each talking over 127.0.0.1, gives the same losses."""

import shutil
import subprocess
import tempfile

from absl.testing import absltest
import numpy as np
import portpicker

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
    harness.train(sharded, {**SHORT, "mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 2}, num_devices=8)
    np.testing.assert_allclose(losses(sharded), losses(single), rtol=2e-5)

  def test_two_processes_equal_one_process(self):
    one = workdir(self)
    harness.train(one, {**SHORT, "mesh.data": 2, "mesh.fsdp": 4}, num_devices=8)
    two = workdir(self)
    port = portpicker.pick_unused_port()
    env = harness.environment(num_devices=4)
    processes = [
        subprocess.Popen(
            harness.command(two, {**SHORT, "mesh.data": 2, "mesh.fsdp": 4},
                            extra_flags=(f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
                                         f"--process_id={i}")),
            cwd=harness.REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    for process in processes:
      _, stderr = process.communicate(timeout=600)
      self.assertEqual(process.returncode, 0, stderr[-4000:])
    np.testing.assert_allclose(losses(two), losses(one), rtol=2e-5)


if __name__ == "__main__":
  absltest.main()
