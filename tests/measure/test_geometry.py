"""Gradient geometry on quadratic sources, whose gradients θ − c_k are known exactly."""

from absl.testing import absltest
from absl.testing import parameterized
import jax.numpy as jnp
import numpy as np

from nexus.measure import batches as batches_lib
from nexus.measure import geometry
from tests.measure import quadratics

THETA = quadratics.tree(np.zeros(7))
# Gradients at θ = 0 are −c_k: sources 0 and 1 are opposed (cos −1), source 2 is orthogonal to both.
# Each source's gradient mixes both leaves ("a" and "b"), so the leaf-wise sums are exercised.
CENTERS = [
  [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
  [-2.0, 0.0, 0.0, -2.0, 0.0, 0.0, 0.0],
  [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 4.0],
]
# Per-batch noise that averages to zero over the three batches, so the mean gradient is exact.
OFFSETS = [
  np.linspace(-1.0, 1.0, 7),
  np.linspace(2.0, -0.5, 7),
  -np.linspace(-1.0, 1.0, 7) - np.linspace(2.0, -0.5, 7),
]


class GradientGeometryTest(parameterized.TestCase):
  @parameterized.parameters(("vmap", None), ("map", None), ("map", 2))
  def test_known_geometry(self, method, batch_size):
    measure = geometry.make_gradient_geometry(
      quadratics.loss_fn, method=method, batch_size=batch_size
    )
    metrics = measure(THETA, quadratics.batches(CENTERS, OFFSETS))
    np.testing.assert_allclose(
      metrics["geometry/cosine_matrix"], [[1, -1, 0], [-1, 1, 0], [0, 0, 1]], atol=1e-6
    )
    self.assertEqual(metrics["geometry/sources"], ["s0", "s1", "s2"])
    for name, norm in zip(["s0", "s1", "s2"], [np.sqrt(2), np.sqrt(8), 5.0]):
      np.testing.assert_allclose(metrics[f"geometry/grad_norm/{name}"], norm, rtol=1e-6)
    self.assertEqual(metrics["geometry/num_conflicting_pairs"], 1)
    np.testing.assert_allclose(metrics["geometry/mean_cosine"], -2.0 / 6.0, rtol=1e-6)
    np.testing.assert_allclose(
      metrics["geometry/neg_cross_dot_sum"], 2 * 4.0, rtol=1e-6
    )  # −2·(c0ᵀc1) = 8
    np.testing.assert_allclose(metrics["geometry/sq_norm_sum"], 2.0 + 8.0 + 25.0, rtol=1e-6)
    np.testing.assert_allclose(metrics["geometry/cosine_gap_sum"], 2 * (2.0 + 1.0 + 1.0), rtol=1e-6)

  def test_num_batches_takes_the_first_batches(self):
    measure = geometry.make_gradient_geometry(quadratics.loss_fn, num_batches=2)
    got = measure(THETA, quadratics.batches(CENTERS, OFFSETS))
    mean_offset = (OFFSETS[0] + OFFSETS[1]) / 2
    gradients = [-(np.asarray(c) + mean_offset) for c in CENTERS]
    np.testing.assert_allclose(
      got["geometry/sq_norm_sum"], sum(g @ g for g in gradients), rtol=1e-5
    )

  def test_identical_sources_have_cosine_one(self):
    got = geometry.make_gradient_geometry(quadratics.loss_fn)(
      THETA, quadratics.batches([CENTERS[2]] * 4)
    )
    np.testing.assert_allclose(got["geometry/cosine_matrix"], np.ones((4, 4)), rtol=1e-6)
    self.assertEqual(got["geometry/num_conflicting_pairs"], 0)
    np.testing.assert_allclose(got["geometry/mean_cosine"], 1.0, rtol=1e-6)
    np.testing.assert_allclose(got["geometry/cosine_gap_sum"], 0.0, atol=1e-5)

  def test_matches_direct_gradients_at_a_generic_point(self):
    theta = quadratics.tree(np.arange(7) * 0.3 - 1.0)
    _, stacked = batches_lib.stack_source_batches(quadratics.batches(CENTERS))
    got = geometry.gradient_geometry(quadratics.loss_fn, theta, stacked)
    gradients = np.stack([quadratics.flat(theta) - np.asarray(c) for c in CENTERS])
    np.testing.assert_allclose(got.gram, gradients @ gradients.T, rtol=1e-5)

  def test_compiles_once(self):
    traces = []

    def counting_loss(params, batch):
      traces.append(1)
      return quadratics.loss_fn(params, batch)

    measure = geometry.make_gradient_geometry(counting_loss)
    measure(THETA, quadratics.batches(CENTERS, OFFSETS))
    first = len(traces)
    measure(quadratics.tree(np.ones(7)), quadratics.batches(CENTERS[::-1], OFFSETS))
    self.assertEqual(len(traces), first)

  def test_bad_input(self):
    with self.assertRaisesRegex(ValueError, "method"):
      geometry.make_gradient_geometry(quadratics.loss_fn, method="loop")
    with self.assertRaisesRegex(ValueError, "at least 2 source"):
      geometry.make_gradient_geometry(quadratics.loss_fn)(THETA, quadratics.batches(CENTERS[:1]))
    with self.assertRaisesRegex(ValueError, "fewer than num_batches"):
      geometry.make_gradient_geometry(quadratics.loss_fn, num_batches=4)(
        THETA, quadratics.batches(CENTERS, OFFSETS)
      )
    with self.assertRaisesRegex(ValueError, "S >= 2"):
      geometry.geometry_from_gram(jnp.ones((1, 1)))


if __name__ == "__main__":
  absltest.main()
