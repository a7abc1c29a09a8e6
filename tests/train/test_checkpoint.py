"""Checkpointer and load_params: round trips, shardings, keep-last-N, async saves, damaged checkpoints,
the old layout, bad input, multi-device and multi-process."""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap

from absl.testing import absltest
from absl.testing import parameterized
from etils import epath
import grain
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp

from nexus.train import checkpoint as checkpoint_lib
from nexus.train.checkpoint import Checkpointer
from nexus.train.step import TrainState
from tests import multidevice

CONFIG = {"opt": {"name": "adamw", "betas": [0.9, 0.95]}, "seed": 0}


def make_state(seed: int = 0) -> TrainState:
  """A tiny train state: f32 and bf16 parameters, an AdamW state after one update, two counters."""
  params = {
    "dense": {
      "kernel": jnp.arange(12.0, dtype=jnp.float32).reshape(4, 3) + seed,
      "bias": jnp.zeros(3),
    },
    "norm": jnp.full((3,), 0.5 + seed, jnp.bfloat16),
  }
  tx = optax.adamw(1e-2)
  _, opt_state = tx.update(params, tx.init(params), params)
  return TrainState(jnp.int32(7 + seed), params, opt_state, jnp.int32(seed))


def stream(position: int = 0) -> grain.DatasetIterator:
  """A real grain iterator over 0, 1, 2, ... that has yielded ``position`` elements."""
  iterator = iter(grain.MapDataset.range(1000).to_iter_dataset())
  for _ in range(position):
    next(iterator)
  return iterator


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
    for item in ("params", "opt_state")
    for p in glob.glob(os.path.join(step_dir, item, "**", "d", "*"), recursive=True)
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


def delete_item(name):
  return lambda step_dir: shutil.rmtree(os.path.join(step_dir, name))


class CheckpointerTest(parameterized.TestCase):
  def setUp(self):
    super().setUp()
    self.directory = os.path.join(temp_dir(self), "checkpoints")

  def checkpointer(self, **kwargs):
    checkpointer = Checkpointer(self.directory, **{"async_save": False, **kwargs})
    self.addCleanup(checkpointer.close)
    return checkpointer

  def save(self, checkpointer, step, state=None, position=None, config=CONFIG, **kwargs):
    """Saves ``state`` (default ``make_state(step)``) with a stream at ``position`` (default ``step``)."""
    checkpointer.save(
      step,
      make_state(step) if state is None else state,
      data_iterator=stream(step if position is None else position),
      config=config,
      **kwargs,
    )

  def save_steps(self, checkpointer, steps):
    for step in steps:
      self.save(checkpointer, step)
    checkpointer.wait()

  def restore(self, state=None, sharding=None):
    """``(step, state, next element of the restored stream)`` of a fresh checkpointer, or None."""
    iterator = stream()
    restored = self.checkpointer().restore_latest(
      abstract_of(make_state() if state is None else state, sharding), iterator
    )
    return None if restored is None else (*restored, next(iterator))

  def test_round_trip_keeps_values_dtypes_structure_position_and_config(self):
    state = make_state()
    self.save(self.checkpointer(), 3, state, position=5)
    step, restored, next_element = self.restore()
    self.assertEqual((step, next_element), (3, 5))
    assert_trees_equal(self, restored, state)
    self.assertIsInstance(restored, TrainState)
    self.assertIsInstance(restored.opt_state[0], optax.ScaleByAdamState)
    self.assertEqual(restored.params["norm"].dtype, jnp.bfloat16)
    self.assertEqual(self.checkpointer().latest_config(), (3, CONFIG))

  def test_items_are_separate_with_one_json_state_per_process_for_the_stream(self):
    self.save(self.checkpointer(), 1)
    items = sorted(
      name
      for name in os.listdir(os.path.join(self.directory, "1"))
      if os.path.isdir(os.path.join(self.directory, "1", name))
    )
    self.assertEqual(items, ["config", "counters", "data", "opt_state", "params"])
    self.assertTrue(
      os.path.isfile(os.path.join(self.directory, "1", "data", "process_0-of-1.json"))
    )

  def test_relative_directory_works(self):
    parent, name = os.path.split(self.directory)
    previous = os.getcwd()
    os.chdir(parent)
    self.addCleanup(os.chdir, previous)
    checkpointer = Checkpointer(name, async_save=False)
    self.addCleanup(checkpointer.close)
    self.save(checkpointer, 1)
    self.assertEqual(checkpointer.restore_latest(abstract_of(make_state()), stream())[0], 1)

  def test_restores_into_the_given_sharding(self):
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    self.save(self.checkpointer(), 1)
    _, restored, _ = self.restore(sharding=sharding)
    for leaf in jax.tree.leaves(restored):
      self.assertEqual(leaf.sharding, sharding)

  def test_keeps_the_last_n(self):
    checkpointer = self.checkpointer(keep=2)
    self.save_steps(checkpointer, [1, 2, 3, 4])
    self.assertEqual(step_dirs(self.directory), [3, 4])
    self.assertEqual(checkpointer.latest_step(), 4)

  def test_async_save_survives_donation_and_a_moving_stream_and_wait_commits_it(self):
    state = make_state(seed=1)
    expected = jax.tree.map(np.asarray, state)
    checkpointer = self.checkpointer(async_save=True)
    iterator = stream(5)
    checkpointer.save(5, state, data_iterator=iterator, config=CONFIG)
    for leaf in jax.tree.leaves(state):  # what a jitted step with donated state does to the buffers
      leaf.delete()
    next(iterator)  # the next step reads on while the save is written
    checkpointer.wait()
    self.assertEqual(step_dirs(self.directory), [5])
    step, restored, next_element = self.restore()
    self.assertEqual((step, next_element), (5, 5))
    assert_trees_equal(self, restored, expected)

  @parameterized.parameters(True, False)
  def test_saving_a_saved_step_again_is_a_no_op(self, force):
    checkpointer = self.checkpointer(async_save=True)
    self.save(checkpointer, 2, make_state(0), position=10)
    self.save(checkpointer, 2, make_state(1), position=20, force=force)
    checkpointer.wait()
    _, restored, next_element = self.restore()
    self.assertEqual(next_element, 10)
    assert_trees_equal(self, restored, make_state(0))

  def test_forced_save_is_committed_when_it_returns(self):
    self.save(self.checkpointer(async_save=True), 4, force=True)
    self.assertEqual(step_dirs(self.directory), [4])
    self.assertEmpty([name for name in os.listdir(self.directory) if not name.isdigit()])

  @parameterized.named_parameters(
    ("truncated_data", truncate_data_files),
    ("deleted_data", delete_data_files),
    ("garbage_everywhere", overwrite_every_file),
    ("deleted_params", delete_item("params")),
    ("deleted_counters", delete_item("counters")),
    ("deleted_stream_position", delete_item("data")),
    ("deleted_config", delete_item("config")),
  )
  def test_damaged_latest_falls_back_with_a_warning_and_stays_on_disk(self, damage):
    self.save_steps(self.checkpointer(), [1, 2, 3])
    damage(os.path.join(self.directory, "3"))
    with self.assertLogs(level="WARNING") as logs:
      step, restored, next_element = self.restore()
    self.assertEqual((step, next_element), (2, 2))
    assert_trees_equal(self, restored, make_state(2))
    self.assertTrue(
      any("step 3" in line and "falling back to step 2" in line for line in logs.output),
      logs.output,
    )
    self.assertEqual(step_dirs(self.directory), [1, 2, 3])

  def test_latest_config_skips_an_unreadable_config(self):
    checkpointer = self.checkpointer()
    self.save(checkpointer, 1, config={"version": 1})
    self.save(checkpointer, 2, config={"version": 2})
    delete_item("config")(os.path.join(self.directory, "2"))
    self.assertEqual(self.checkpointer().latest_config(), (1, {"version": 1}))

  def test_resumed_run_replaces_the_unreadable_step_when_it_saves_it_again(self):
    self.save_steps(self.checkpointer(), [1, 2])
    truncate_data_files(os.path.join(self.directory, "2"))
    resumed = self.checkpointer()
    self.assertEqual(resumed.restore_latest(abstract_of(make_state()), stream())[0], 1)
    self.save(resumed, 2, position=42)
    step, restored, next_element = self.restore()
    self.assertEqual((step, next_element), (2, 42))
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
    self.assertEqual(reopened.restore_latest(abstract_of(make_state()), stream())[0], 2)
    self.save(reopened, 3)
    self.assertEqual(self.restore()[0], 3)

  def test_step_directory_without_commit_marker_falls_back(self):
    self.save_steps(self.checkpointer(), [1, 2])
    partial = os.path.join(self.directory, "3")
    os.makedirs(partial)
    shutil.copytree(os.path.join(self.directory, "2", "params"), os.path.join(partial, "params"))
    for marker in glob.glob(os.path.join(partial, "**", "commit_success.txt"), recursive=True):
      os.remove(marker)
    with self.assertLogs(level="WARNING") as logs:
      step, _, _ = self.restore()
    self.assertEqual(step, 2)
    self.assertTrue(any("step 3" in line for line in logs.output))

  def test_no_checkpoint_restores_none_and_leaves_the_stream(self):
    checkpointer = self.checkpointer()
    self.assertIsNone(checkpointer.latest_step())
    self.assertIsNone(checkpointer.latest_config())
    iterator = stream(3)
    self.assertIsNone(checkpointer.restore_latest(abstract_of(make_state()), iterator))
    self.assertEqual(next(iterator), 3)

  def test_all_checkpoints_unreadable_raise_one_line_error_and_keep_them(self):
    self.save_steps(self.checkpointer(), [1, 2])
    for step in (1, 2):
      truncate_data_files(os.path.join(self.directory, str(step)))
    with (
      self.assertLogs(level="WARNING"),
      self.assertRaisesRegex(ValueError, r"steps \[2, 1\]") as raised,
    ):
      self.restore()
    self.assertNotIn("\n", str(raised.exception))
    self.assertIn(self.directory, str(raised.exception))
    self.assertEqual(step_dirs(self.directory), [1, 2])

  def test_changed_state_shapes_raise_one_line_error(self):
    self.save_steps(self.checkpointer(), [1])
    bigger = make_state()._replace(skipped_steps=jnp.zeros((5,), jnp.int32))
    with (
      self.assertLogs(level="WARNING"),
      self.assertRaisesRegex(ValueError, "model, optimizer or process count"),
    ):
      self.restore(bigger)

  def test_old_layout_is_refused_in_one_line_naming_the_fix(self):
    manager = ocp.CheckpointManager(
      epath.Path(self.directory),
      options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False),
    )
    manager.save(
      4,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(make_state()),
        metadata=ocp.args.JsonSave({"process_metadata": [{"config": CONFIG}]}),
      ),
    )
    manager.close()
    checkpointer = self.checkpointer()
    workdir = os.path.dirname(self.directory)
    for call in (
      checkpointer.latest_config,
      lambda: checkpointer.restore_latest(abstract_of(make_state()), stream()),
      lambda: checkpoint_lib.load_params(workdir),
    ):
      with self.assertRaisesRegex(
        ValueError, r"checkpoints \[4\] .* old layout .*new --workdir"
      ) as raised:
        call()
      self.assertNotIn("\n", str(raised.exception))

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
    state = make_state()
    cases = [
      (lambda: Checkpointer(self.directory, keep=0), "keep=0 must be a positive integer"),
      (lambda: self.save(checkpointer, -1), "non-negative int"),
      (lambda: self.save(checkpointer, 1, config={"array": np.ones(2)}), "not JSON-serialisable"),
      (lambda: self.save(checkpointer, 1, config=[1]), "must be a dict"),
      (lambda: self.save(checkpointer, 1, state={"params": {}}), "NamedTuple with params"),
      (
        lambda: checkpointer.save(1, state, data_iterator=iter([1, 2]), config=CONFIG),
        "must be a grain.DatasetIterator",
      ),
      (
        lambda: checkpointer.restore_latest(
          state._replace(step=jax.ShapeDtypeStruct((), jnp.int32)), stream()
        ),
        r"leaf .*step.* has no sharding",
      ),
    ]
    for call, message in cases:
      with self.assertRaisesRegex(ValueError, message) as raised:
        call()
      self.assertNotIn("\n", str(raised.exception))
    self.assertEqual(step_dirs(self.directory), [])


class LoadParamsTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.workdir = temp_dir(self)
    checkpointer = Checkpointer(
      os.path.join(self.workdir, checkpoint_lib.SUBDIRECTORY), async_save=False
    )
    for step in (2, 4):
      checkpointer.save(step, make_state(step), data_iterator=stream(step), config=CONFIG)
    checkpointer.close()

  def test_newest_and_given_steps_round_trip_without_an_optimizer(self):
    assert_trees_equal(self, checkpoint_lib.load_params(self.workdir), make_state(4).params)
    assert_trees_equal(self, checkpoint_lib.load_params(self.workdir, 2), make_state(2).params)
    self.assertEqual(checkpoint_lib.saved_steps(self.workdir), [2, 4])

  def test_restores_into_given_shardings(self):
    mesh = jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    shardings = jax.tree.map(lambda _: sharding, make_state().params)
    params = checkpoint_lib.load_params(self.workdir, shardings=shardings)
    for leaf in jax.tree.leaves(params):
      self.assertEqual(leaf.sharding, sharding)

  def test_missing_workdir_step_or_files_raise_one_line_errors(self):
    empty = temp_dir(self)
    os.makedirs(os.path.join(empty, checkpoint_lib.SUBDIRECTORY))
    shutil.rmtree(os.path.join(self.workdir, checkpoint_lib.SUBDIRECTORY, "2", "params"))
    cases = [
      (os.path.join(self.workdir, "nope"), None, "does not exist; pass the --workdir"),
      (empty, None, "no checkpoint in .*; train the run first"),
      (self.workdir, 3, r"step 3 is not saved in .* \(saved: \[2, 4\]\); pass one of them"),
      (self.workdir, 2, "the params of checkpoint step 2 .* could not be read"),
    ]
    for workdir, step, message in cases:
      with self.assertRaisesRegex(ValueError, message) as raised:
        checkpoint_lib.load_params(workdir, step)
      self.assertNotIn("\n", str(raised.exception))


class MultiDeviceCheckpointTest(absltest.TestCase):
  def test_state_sharded_over_a_2x4_mesh_round_trips_and_its_params_load_on_one_device(self):
    workdir = temp_dir(self)
    out = multidevice.run_with_devices(f"""
        import os
        import grain, jax, jax.numpy as jnp, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as P
        from nexus.train import checkpoint as checkpoint_lib
        from nexus.train.step import TrainState

        mesh = jax.make_mesh((2, 4), ("data", "fsdp"))
        values = TrainState(
          step=jnp.int32(9),
          params={{"kernel": jnp.arange(64.0).reshape(8, 8), "rows": jnp.arange(8, dtype=jnp.bfloat16)}},
          opt_state={{"replicated": jnp.ones((3,))}},
          skipped_steps=jnp.int32(1),
        )
        shardings = TrainState(
          step=NamedSharding(mesh, P()),
          params={{"kernel": NamedSharding(mesh, P("data", "fsdp")), "rows": NamedSharding(mesh, P("fsdp"))}},
          opt_state={{"replicated": NamedSharding(mesh, P())}},
          skipped_steps=NamedSharding(mesh, P()),
        )
        state = jax.device_put(values, shardings)
        directory = os.path.join({workdir!r}, checkpoint_lib.SUBDIRECTORY)
        checkpointer = checkpoint_lib.Checkpointer(directory, async_save=True)
        checkpointer.save(9, state, data_iterator=iter(grain.MapDataset.range(9).to_iter_dataset()), config={{}})
        checkpointer.wait()
        abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), values, shardings)
        step, restored = checkpoint_lib.Checkpointer(directory).restore_latest(
          abstract, iter(grain.MapDataset.range(9).to_iter_dataset()))
        assert step == 9, step
        for got, want, sharding in zip(jax.tree.leaves(restored), jax.tree.leaves(values), jax.tree.leaves(shardings)):
          assert got.sharding == sharding, (got.sharding, sharding)
          assert got.dtype == want.dtype, (got.dtype, want.dtype)
          np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        params = checkpoint_lib.load_params({workdir!r})
        for name, leaf in params.items():
          assert leaf.sharding == jax.sharding.SingleDeviceSharding(jax.devices()[0]), name
          np.testing.assert_array_equal(np.asarray(leaf), np.asarray(values.params[name]))
        print("restored", len(jax.tree.leaves(restored)), "sharded leaves")
    """)
    self.assertIn("restored 5 sharded leaves", out)


_TWO_PROCESS_BODY = """
import glob, os, sys
import grain, jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
process, port, directory = int(sys.argv[1]), sys.argv[2], sys.argv[3]
jax.distributed.initialize(f"127.0.0.1:{port}", 2, process)
from jax.experimental import multihost_utils
from nexus.train.checkpoint import Checkpointer
from nexus.train.step import TrainState

mesh = jax.make_mesh((4,), ("data",))
sharding = NamedSharding(mesh, P("data"))
replicated = NamedSharding(mesh, P())
values = np.arange(4096.0).reshape(8, 512)  # big enough to be stored out of line, in per-process files
scalar = jax.ShapeDtypeStruct((), jnp.int32, sharding=replicated)
abstract = TrainState(
  scalar, {"w": jax.ShapeDtypeStruct(values.shape, jnp.float32, sharding=sharding)}, (), scalar
)
def state(step):
  w = jax.make_array_from_callback(values.shape, sharding, lambda index: values[index] + step)
  counter = jax.device_put(jnp.int32(step), replicated)
  return TrainState(counter, {"w": w}, (), counter)

def stream(position):
  # Each process reads its own elements: process p yields p, p + 2, p + 4, ...
  iterator = iter(grain.MapDataset.range(1000)[process::2].to_iter_dataset())
  for _ in range(position):
    next(iterator)
  return iterator

checkpointer = Checkpointer(directory, async_save=False)
for step in (1, 2):
  checkpointer.save(step, state(step), data_iterator=stream(10 * step), config={"seed": 0})
iterator = stream(0)
step, restored = checkpointer.restore_latest(abstract, iterator)
assert (step, next(iterator)) == (2, 20 * 2 + process), (step, process)
# Damage only the shards process 1 wrote (and reads back): both processes must fall back together.
multihost_utils.sync_global_devices("saved")
if process == 0:
  for path in glob.glob(os.path.join(directory, "2", "params", "ocdbt.process_1", "d", "*")):
    os.remove(path)
multihost_utils.sync_global_devices("damaged")
checkpointer.close()
iterator = stream(0)
step, restored = Checkpointer(directory).restore_latest(abstract, iterator)
assert (step, next(iterator)) == (1, 10 * 2 + process), (step, process)
local = [np.asarray(shard.data) for shard in restored.params["w"].addressable_shards]
np.testing.assert_array_equal(np.concatenate(local), values[4 * process:4 * process + 4] + 1)
print("process", process, "resumed from step", step)
"""


class TwoProcessCheckpointTest(absltest.TestCase):
  def test_each_process_resumes_its_own_stream_and_all_fall_back_together(self):
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
    self.assertEqual(
      sorted(os.listdir(os.path.join(directory, "1", "data"))),
      ["commit_success.txt", "process_0-of-2.json", "process_1-of-2.json"],
    )


if __name__ == "__main__":
  absltest.main()
