"""Mesh shape resolution and the learning-rate schedules."""

from absl.testing import absltest
from absl.testing import parameterized
import ml_collections
import numpy as np

from nexus.optim import registry
from nexus.optim import schedules
from nexus.train import mesh
from nexus.train import schema


def mesh_cfg(data, fsdp, tensor):
  return ml_collections.ConfigDict({"data": data, "fsdp": fsdp, "tensor": tensor})


class MeshShapeTest(parameterized.TestCase):
  @parameterized.parameters(
    ((-1, 1, 1), 8, (8, 1, 1)),
    ((2, -1, 2), 8, (2, 2, 2)),
    ((1, 1, -1), 1, (1, 1, 1)),
    ((2, 2, 2), 8, (2, 2, 2)),
  )
  def test_resolves_sizes(self, sizes, devices, expected):
    self.assertEqual(mesh.mesh_shape(mesh_cfg(*sizes), devices), expected)

  @parameterized.parameters(
    ((3, -1, 1), 8, "do not divide"),
    ((2, 2, 1), 8, "use 4 devices but 8 exist"),
  )
  def test_sizes_that_do_not_fit_the_devices(self, sizes, devices, message):
    with self.assertRaisesRegex(ValueError, message):
      mesh.mesh_shape(mesh_cfg(*sizes), devices)

  @parameterized.parameters(
    ((-1, -1, 1), "at most one config.mesh axis may be -1"),
    ((0, 1, 1), r"config.mesh.data=0 must be a positive integer or -1"),
  )
  def test_bad_sizes_are_refused_by_the_config(self, sizes, message):
    with self.assertRaisesRegex(ValueError, message):
      schema.MeshConfig(*sizes)


class ScheduleTest(parameterized.TestCase):
  def opt(self, name, **fields):
    fields = {"learning_rate": 1e-3, "warmup_steps": 10, "final_lr_fraction": 0.1, **fields}
    return registry.OptimizerConfig(schedule=name, **fields)

  def test_cosine(self):
    schedule = schedules.learning_rate_schedule(self.opt("cosine"), 100)
    np.testing.assert_allclose(schedule(0), 0.0)
    np.testing.assert_allclose(schedule(10), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(schedule(100), 1e-4, rtol=1e-5)
    values = [float(schedule(t)) for t in range(10, 101)]
    self.assertTrue(all(a >= b for a, b in zip(values, values[1:])))

  def test_wsd(self):
    schedule = schedules.learning_rate_schedule(self.opt("wsd", decay_fraction=0.2), 100)
    np.testing.assert_allclose(schedule(10), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(schedule(80), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(schedule(90), 0.55e-3, rtol=1e-5)
    np.testing.assert_allclose(schedule(100), 1e-4, rtol=1e-5)

  def test_wsd_cooldown_branches_share_the_stable_phase(self):
    # Branches decaying from steps 40 and 60 of one stable run: equal before 40, each annealed at
    # its end.
    long = schedules.learning_rate_schedule(self.opt("wsd", decay_start=60), 80)
    short = schedules.learning_rate_schedule(self.opt("wsd", decay_start=40), 60)
    for t in range(40):
      np.testing.assert_allclose(short(t), long(t), rtol=1e-6)
    np.testing.assert_allclose(short(50), 0.55e-3, rtol=1e-5)
    np.testing.assert_allclose([short(60), long(80)], [1e-4, 1e-4], rtol=1e-5)
    np.testing.assert_allclose(long(60), 1e-3, rtol=1e-6)

  def test_bad_schedules(self):
    with self.assertRaisesRegex(ValueError, "opt.schedule='linear' is not one of"):
      self.opt("linear")
    with self.assertRaisesRegex(ValueError, "warmup_steps"):
      schedules.learning_rate_schedule(self.opt("cosine", warmup_steps=100), 100)
    with self.assertRaisesRegex(ValueError, "the wsd decay starts at step 120"):
      schedules.learning_rate_schedule(self.opt("wsd", decay_start=120), 100)


if __name__ == "__main__":
  absltest.main()
