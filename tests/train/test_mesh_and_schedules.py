"""Mesh shape resolution and the learning-rate schedules."""

from absl.testing import absltest
from absl.testing import parameterized
import ml_collections
import numpy as np

from configs import base
from nexus.train import mesh
from nexus.train import schedules


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
    ((-1, -1, 1), 8, "at most one"),
    ((0, 1, 1), 8, "positive"),
  )
  def test_bad_sizes(self, sizes, devices, message):
    with self.assertRaisesRegex(ValueError, message):
      mesh.mesh_shape(mesh_cfg(*sizes), devices)


class ScheduleTest(parameterized.TestCase):
  def opt(self, name):
    cfg = base.optimizer_config()
    cfg.schedule = name
    cfg.learning_rate = 1e-3
    cfg.warmup_steps = 10
    cfg.final_lr_fraction = 0.1
    cfg.decay_fraction = 0.2
    return cfg

  def test_cosine(self):
    schedule = schedules.learning_rate_schedule(self.opt("cosine"), 100)
    np.testing.assert_allclose(schedule(0), 0.0)
    np.testing.assert_allclose(schedule(10), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(schedule(100), 1e-4, rtol=1e-5)
    values = [float(schedule(t)) for t in range(10, 101)]
    self.assertTrue(all(a >= b for a, b in zip(values, values[1:])))

  def test_wsd(self):
    schedule = schedules.learning_rate_schedule(self.opt("wsd"), 100)
    np.testing.assert_allclose(schedule(10), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(schedule(80), 1e-3, rtol=1e-6)
    np.testing.assert_allclose(schedule(90), 0.55e-3, rtol=1e-5)
    np.testing.assert_allclose(schedule(100), 1e-4, rtol=1e-5)

  def test_bad_schedule(self):
    with self.assertRaisesRegex(ValueError, "opt.schedule"):
      schedules.learning_rate_schedule(self.opt("linear"), 100)
    cfg = self.opt("cosine")
    cfg.warmup_steps = 100
    with self.assertRaisesRegex(ValueError, "warmup_steps"):
      schedules.learning_rate_schedule(cfg, 100)


if __name__ == "__main__":
  absltest.main()
