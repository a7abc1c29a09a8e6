"""Checkpointer: round trips, shardings, keep-last-N, async saves, damaged checkpoints, bad input, multi-device."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
from typing import Any
from typing import NamedTuple

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.train.checkpoint import Checkpointer
from tests import multidevice


class ToyTrainState(NamedTuple):
  step: jax.Array
  params: Any
  opt_state: Any
  key_data: jax.Array


def make_state(seed: int = 0) -> ToyTrainState:
  """A tiny train state: f32 and bf16 parameters, an AdamW state after one update, RNG key data."""
  params = {
    "dense": {
      "kernel": jnp.arange(12.0, dtype=jnp.float32).reshape(4, 3) + seed,
      "bias": jnp.zeros(3),
    },
    "norm": jnp.full((3,), 0.5 + seed, jnp.bfloat16),
  }
  tx = optax.adamw(1e-2)
  _, opt_state = tx.update(params, tx.init(params), params)
  return ToyTrainState(
    jnp.int32(7 + seed), params, opt_state, jax.random.key_data(jax.random.key(seed))
  )


def abstract_of(state, sharding=None):
  device_sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding or device_sharding), state
  )


def assert_trees_equal(test, actual, expected):
  test.assertEqual(jax.tree.structure(actual), jax.tree.structure(expected))
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
    test.assertEqual(a.dtype, e.dtype)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def temp_dir(test) -> str:
  """A fresh directory removed after ``test`` (absltest's create_tempdir needs parsed flags, pytest has none)."""
  directory = tempfile.mkdtemp(prefix="nexus-checkpoint-test-")
  test.addCleanup(shutil.rmtree, directory, ignore_errors=True)
  return directory


def step_dirs(directory):
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def data_files(step_dir):
  return [
    p
    for p in glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True)
    if os.path.isfile(p)
  ]


def truncate_data_files(step_dir):
  for path in data_files(step_dir):
    os.truncate(path, os.path.getsize(path) // 2)


def delete_data_files(step_dir):
  for path in data_files(step_dir):
    os.remove(path)


def overwrite_every_file(step_dir):
  for path in glob.glob(os.path.join(step_dir, "**", "*"), recursive=True):
    if os.path.isfile(path):
      with open(path, "wb") as f:
        f.write(b"garbage")


def delete_metadata_item(step_dir):
  shutil.rmtree(os.path.join(step_dir, "metadata"))


class CheckpointerTest(parameterized.TestCase):
  def setUp(self):
    super().setUp()
    self.directory = os.path.join(temp_dir(self), "checkpoints")

  def checkpointer(self, **kwargs):
    checkpointer = Checkpointer(self.directory, **{"async_save": False, **kwargs})
    self.addCleanup(checkpointer.close)
    return checkpointer

  def save_steps(self, checkpointer, steps):
    for step in steps:
      checkpointer.save(step, make_state(step), {"data": {"position": step}})
    checkpointer.wait()

  def test_round_trip_keeps_values_dtypes_structure_and_metadata(self):
    state = make_state()
    metadata = {
      "data": {"lanes": [[0, 1, {"index": 5}]], "step": 3},
      "config": {"opt": {"name": "adamw"}},
    }
    self.checkpointer().save(3, state, metadata)
    step, restored, restored_metadata = self.checkpointer().restore_latest(abstract_of(state))
    self.assertEqual(step, 3)
    assert_trees_equal(self, restored, state)
    self.assertIsInstance(restored.opt_state[0], optax.ScaleByAdamState)
    self.assertEqual(restored.params["norm"].dtype, jnp.bfloat16)
    self.assertEqual(restored.key_data.dtype, jnp.uint32)
    self.assertEqual(restored_metadata, metadata)

  def test_relative_directory_works(self):
    parent, name = os.path.split(self.directory)
    previous = os.getcwd()
    os.chdir(parent)
    self.addCleanup(os.chdir, previous)
    checkpointer = Checkpointer(name, async_save=False)
    self.addCleanup(checkpointer.close)
    checkpointer.save(1, make_state(), {})
    self.assertEqual(checkpointer.restore_latest(abstract_of(make_state()))[0], 1)

  def test_restores_into_the_given_sharding(self):
    state = make_state()
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    checkpointer = self.checkpointer()
    checkpointer.save(1, state, {})
    _, restored, _ = checkpointer.restore_latest(abstract_of(state, sharding))
    for leaf in jax.tree.leaves(restored):
      self.assertEqual(leaf.sharding, sharding)

  def test_keeps_the_last_n(self):
    checkpointer = self.checkpointer(keep=2)
    self.save_steps(checkpointer, [1, 2, 3, 4])
    self.assertEqual(step_dirs(self.directory), [3, 4])
    self.assertEqual(checkpointer.latest_step(), 4)

  def test_async_save_survives_donation_and_wait_commits_it(self):
    state = make_state(seed=1)
    expected = jax.tree.map(np.asarray, state)
    checkpointer = self.checkpointer(async_save=True)
    checkpointer.save(5, state, {"data": 5})
    for leaf in jax.tree.leaves(state):  # what a jitted step with donated state does to the buffers
      leaf.delete()
    checkpointer.wait()
    self.assertEqual(step_dirs(self.directory), [5])
    step, restored, metadata = self.checkpointer().restore_latest(abstract_of(expected))
    self.assertEqual((step, metadata), (5, {"data": 5}))
    assert_trees_equal(self, restored, expected)

  @parameterized.parameters(True, False)
  def test_saving_a_saved_step_again_is_a_no_op(self, force):
    checkpointer = self.checkpointer(async_save=True)
    checkpointer.save(2, make_state(0), {"version": "first"})
    checkpointer.save(2, make_state(1), {"version": "second"}, force=force)
    checkpointer.wait()
    _, restored, metadata = checkpointer.restore_latest(abstract_of(make_state()))
    self.assertEqual(metadata, {"version": "first"})
    assert_trees_equal(self, restored, make_state(0))

  def test_forced_save_is_committed_when_it_returns(self):
    checkpointer = self.checkpointer(async_save=True)
    checkpointer.save(4, make_state(), {}, force=True)
    self.assertEqual(step_dirs(self.directory), [4])
    self.assertEmpty([name for name in os.listdir(self.directory) if not name.isdigit()])

  @parameterized.named_parameters(
    ("truncated_data", truncate_data_files),
    ("deleted_data", delete_data_files),
    ("garbage_everywhere", overwrite_every_file),
    ("deleted_metadata", delete_metadata_item),
  )
  def test_damaged_latest_falls_back_with_a_warning_and_stays_on_disk(self, damage):
    checkpointer = self.checkpointer()
    self.save_steps(checkpointer, [1, 2, 3])
    damage(os.path.join(self.directory, "3"))
    with self.assertLogs(level="WARNING") as logs:
      step, restored, metadata = self.checkpointer().restore_latest(abstract_of(make_state()))
    self.assertEqual((step, metadata), (2, {"data": {"position": 2}}))
    assert_trees_equal(self, restored, make_state(2))
    self.assertTrue(
      any("step 3" in line and "falling back to step 2" in line for line in logs.output),
      logs.output,
    )
    self.assertEqual(step_dirs(self.directory), [1, 2, 3])

  def test_resumed_run_replaces_the_unreadable_step_when_it_saves_it_again(self):
    self.save_steps(self.checkpointer(), [1, 2])
    truncate_data_files(os.path.join(self.directory, "2"))
    resumed = self.checkpointer()
    self.assertEqual(resumed.restore_latest(abstract_of(make_state()))[0], 1)
    resumed.save(2, make_state(2), {"data": "replaced"})
    step, restored, metadata = self.checkpointer().restore_latest(abstract_of(make_state()))
    self.assertEqual((step, metadata), (2, {"data": "replaced"}))
    assert_trees_equal(self, restored, make_state(2))

  def test_uncommitted_save_is_ignored(self):
    checkpointer = self.checkpointer()
    self.save_steps(checkpointer, [1, 2])
    # What an interrupted save leaves behind: orbax's temporary directory, never renamed to "3".
    half_written = os.path.join(self.directory, "3.orbax-checkpoint-tmp-1234567890")
    shutil.copytree(os.path.join(self.directory, "2"), half_written)
    truncate_data_files(half_written)
    reopened = self.checkpointer()
    self.assertEqual(reopened.latest_step(), 2)
    self.assertEqual(reopened.restore_latest(abstract_of(make_state()))[0], 2)
    reopened.save(3, make_state(3), {})
    self.assertEqual(self.checkpointer().restore_latest(abstract_of(make_state()))[0], 3)

  def test_step_directory_without_commit_marker_falls_back(self):
    self.save_steps(self.checkpointer(), [1, 2])
    partial = os.path.join(self.directory, "3")
    os.makedirs(partial)
    shutil.copytree(os.path.join(self.directory, "2", "state"), os.path.join(partial, "state"))
    for marker in glob.glob(os.path.join(partial, "**", "commit_success.txt"), recursive=True):
      os.remove(marker)
    with self.assertLogs(level="WARNING") as logs:
      step, _, _ = self.checkpointer().restore_latest(abstract_of(make_state()))
    self.assertEqual(step, 2)
    self.assertTrue(any("step 3" in line for line in logs.output))

  def test_no_checkpoint_restores_none(self):
    checkpointer = self.checkpointer()
    self.assertIsNone(checkpointer.latest_step())
    self.assertIsNone(checkpointer.restore_latest(abstract_of(make_state())))

  def test_all_checkpoints_unreadable_raise_one_line_error_and_keep_them(self):
    self.save_steps(self.checkpointer(), [1, 2])
    for step in (1, 2):
      truncate_data_files(os.path.join(self.directory, str(step)))
    with (
      self.assertLogs(level="WARNING"),
      self.assertRaisesRegex(ValueError, r"steps \[2, 1\]") as raised,
    ):
      self.checkpointer().restore_latest(abstract_of(make_state()))
    self.assertNotIn("\n", str(raised.exception))
    self.assertIn(self.directory, str(raised.exception))
    self.assertEqual(step_dirs(self.directory), [1, 2])

  def test_changed_state_shapes_raise_one_line_error(self):
    self.save_steps(self.checkpointer(), [1])
    bigger = make_state()._replace(key_data=jnp.zeros((5,), jnp.uint32))
    with (
      self.assertLogs(level="WARNING"),
      self.assertRaisesRegex(ValueError, "model, optimizer or process count"),
    ):
      self.checkpointer().restore_latest(abstract_of(bigger))

  def test_unwritable_directory_raises_one_line_error(self):
    not_a_directory = os.path.join(temp_dir(self), "a_file")
    with open(not_a_directory, "w") as f:
      f.write("not a directory")
    target = os.path.join(not_a_directory, "checkpoints")
    with self.assertRaisesRegex(ValueError, "is not writable") as raised:
      Checkpointer(target)
    self.assertIn(target, str(raised.exception))
    self.assertNotIn("\n", str(raised.exception))

  def test_bad_arguments_raise_one_line_errors(self):
    checkpointer = self.checkpointer()
    cases = [
      (lambda: Checkpointer(self.directory, keep=0), "keep=0 must be a positive integer"),
      (lambda: checkpointer.save(-1, make_state(), {}), "non-negative int"),
      (lambda: checkpointer.save(1, make_state(), {"array": np.ones(2)}), "not JSON-serialisable"),
      (lambda: checkpointer.save(1, make_state(), [1]), "must be a dict"),
      (
        lambda: checkpointer.restore_latest({"w": jax.ShapeDtypeStruct((2,), jnp.float32)}),
        r"leaf \['w'\] has no sharding",
      ),
    ]
    for call, message in cases:
      with self.assertRaisesRegex(ValueError, message) as raised:
        call()
      self.assertNotIn("\n", str(raised.exception))
    self.assertEqual(step_dirs(self.directory), [])


class MultiDeviceCheckpointTest(absltest.TestCase):
  def test_state_sharded_over_a_2x4_mesh_round_trips_into_the_same_shardings(self):
    directory = temp_dir(self)
    out = multidevice.run_with_devices(f"""
        import jax, jax.numpy as jnp, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as P
        from nexus.train.checkpoint import Checkpointer

        mesh = jax.make_mesh((2, 4), ("data", "fsdp"))
        specs = {{"kernel": P("data", "fsdp"), "rows": P("fsdp"), "replicated": P(), "step": P()}}
        values = {{"kernel": jnp.arange(64.0).reshape(8, 8), "rows": jnp.arange(8, dtype=jnp.bfloat16),
                  "replicated": jnp.ones((3,)), "step": jnp.int32(9)}}
        shardings = {{name: NamedSharding(mesh, spec) for name, spec in specs.items()}}
        state = jax.device_put(values, shardings)
        checkpointer = Checkpointer({directory!r}, async_save=True)
        checkpointer.save(9, state, {{"data": 9}})
        checkpointer.wait()
        abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), values, shardings)
        step, restored, metadata = Checkpointer({directory!r}).restore_latest(abstract)
        assert (step, metadata) == (9, {{"data": 9}}), (step, metadata)
        for name in values:
          assert restored[name].sharding == shardings[name], (name, restored[name].sharding)
          assert restored[name].dtype == values[name].dtype, name
          np.testing.assert_array_equal(np.asarray(restored[name]), np.asarray(values[name]))
        print("restored", len(restored), "sharded leaves")
    """)
    self.assertIn("restored 4 sharded leaves", out)


_TWO_PROCESS_BODY = """
import glob, os, sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
process, port, directory = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(f"127.0.0.1:{port}", 2, process)
from jax.experimental import multihost_utils
from nexus.train.checkpoint import Checkpointer

mesh = jax.make_mesh((4,), ("data",))
sharding = NamedSharding(mesh, P("data"))
values = np.arange(4096.0).reshape(8, 512)  # big enough to be stored out of line, in per-process files
abstract = {"w": jax.ShapeDtypeStruct(values.shape, jnp.float32, sharding=sharding)}
def state(step):
  return {"w": jax.make_array_from_callback(values.shape, sharding, lambda index: values[index] + step)}

checkpointer = Checkpointer(directory, async_save=False)
for step in (1, 2):
  checkpointer.save(step, state(step), {"data": {"process": process, "step": step}})
step, restored, metadata = checkpointer.restore_latest(abstract)
assert (step, metadata) == (2, {"data": {"process": process, "step": 2}}), (step, metadata)
# Damage only the shards process 1 wrote (and reads back): both processes must fall back together.
multihost_utils.sync_global_devices("saved")
if process == 0:
  for path in glob.glob(os.path.join(directory, "2", "state", "ocdbt.process_1", "d", "*")):
    os.remove(path)
multihost_utils.sync_global_devices("damaged")
checkpointer.close()
step, restored, metadata = Checkpointer(directory).restore_latest(abstract)
assert (step, metadata) == (1, {"data": {"process": process, "step": 1}}), (step, metadata)
local = [np.asarray(shard.data) for shard in restored["w"].addressable_shards]
np.testing.assert_array_equal(np.concatenate(local), values[4 * process:4 * process + 4] + 1)
print("process", process, "resumed from step", step)
"""


class TwoProcessCheckpointTest(absltest.TestCase):
  def test_each_process_gets_its_metadata_and_all_fall_back_together(self):
    directory = temp_dir(self)
    with socket.socket() as probe:
      probe.bind(("127.0.0.1", 0))
      port = probe.getsockname()[1]
    env = {
      **os.environ,
      "JAX_PLATFORMS": "cpu",
      "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
      "PYTHONPATH": multidevice.REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    processes = [
      subprocess.Popen(
        [
          sys.executable,
          "-c",
          textwrap.dedent(_TWO_PROCESS_BODY),
          str(index),
          str(port),
          directory,
        ],
        env=env,
        cwd=multidevice.REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
      )
      for index in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for index, (process, (stdout, stderr)) in enumerate(zip(processes, outputs)):
      self.assertEqual(process.returncode, 0, stderr[-5000:])
      self.assertIn(f"process {index} resumed from step 1", stdout)
    self.assertIn("step 2", outputs[1][1])  # process 1's warning names the step it could not read


if __name__ == "__main__":
  absltest.main()
