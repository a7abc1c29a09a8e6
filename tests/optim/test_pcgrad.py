"""PCGrad against a direct per-pair reference (Yu et al. 2020, Algorithm 1) on small vectors."""

import itertools

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.optim._pcgrad import pcgrad
from nexus.optim._pcgrad import projection_coefficients
from nexus.optim._per_source import tree_gram


def reference_projected(grads, orders):
  """g_i^PC for every i, projecting vector by vector: ``orders[i]`` lists the j's in order."""
  projected = []
  for i, g_i in enumerate(grads):
    g = g_i.copy()
    for j in orders[i]:
      if j == i:
        continue
      dot = g @ grads[j]
      if dot < 0:
        g = g - dot / (grads[j] @ grads[j]) * grads[j]
    projected.append(g)
  return np.stack(projected)


def conflicting_gradients(num_sources=4, seed=3):
  """Source gradients as a two-leaf tree and as flat float64 vectors, with some conflicting pairs."""
  rng = np.random.default_rng(seed)
  flat = rng.normal(size=(num_sources, 7))
  flat[1] = -0.8 * flat[0] + 0.3 * flat[1]  # Make sure sources 0 and 1 conflict.
  tree = {"a": jnp.asarray(flat[:, :3]), "b": jnp.asarray(flat[:, 3:].reshape(num_sources, 2, 2))}
  return tree, flat


def direction_of(tx, stacked, steps=1):
  """The combined directions of ``steps`` updates (outer = SGD with rate 1, so update = −direction)."""
  params = jax.tree.map(lambda x: jnp.zeros_like(x[0]), stacked)
  state = tx.init(params)
  directions = []
  for _ in range(steps):
    updates, state = jax.jit(tx.update)(stacked, state, params)
    directions.append(-np.concatenate([np.ravel(updates["a"]), np.ravel(updates["b"])]))
  return directions


class KnownAnswerTest(parameterized.TestCase):
  @parameterized.parameters("random", "fixed")
  def test_two_conflicting_sources(self, order):
    # g1·g2 = −1: g1 → g1 + g2/2 = (0.5, 0.5), g2 → g2 + g1 = (0, 1); sum (0.5, 1.5).
    stacked = {"a": jnp.asarray([[1.0, 0.0], [-1.0, 1.0]])}
    tx = pcgrad(optax.sgd(1.0), order=order)
    updates, _ = tx.update(stacked, tx.init({"a": jnp.zeros(2)}), {"a": jnp.zeros(2)})
    np.testing.assert_allclose(updates["a"], [-0.5, -1.5], rtol=1e-6)

  def test_agreeing_sources_are_summed_or_averaged(self):
    stacked = {"a": jnp.asarray([[1.0, 0.0], [1.0, 1.0]])}
    for reduction, want in (("sum", [2.0, 1.0]), ("mean", [1.0, 0.5])):
      tx = pcgrad(optax.sgd(1.0), reduction=reduction)
      updates, _ = tx.update(stacked, tx.init({"a": jnp.zeros(2)}), {"a": jnp.zeros(2)})
      np.testing.assert_allclose(-updates["a"], want, rtol=1e-6)


class ReferenceTest(absltest.TestCase):
  def test_coefficients_reproduce_projected_gradients(self):
    with jax.enable_x64(True):
      tree, flat = conflicting_gradients()
      orders = np.array([[3, 1, 0, 2], [0, 2, 3, 1], [1, 3, 2, 0], [2, 0, 1, 3]])
      coefficients = projection_coefficients(tree_gram(tree), jnp.asarray(orders))
      np.testing.assert_allclose(
        coefficients @ flat, reference_projected(flat, orders), rtol=1e-10, atol=1e-12
      )

  def test_fixed_order_matches_reference(self):
    with jax.enable_x64(True):
      tree, flat = conflicting_gradients()
      orders = [list(range(4))] * 4
      (got,) = direction_of(pcgrad(optax.sgd(1.0), order="fixed"), tree)
      np.testing.assert_allclose(
        got, reference_projected(flat, orders).sum(0), rtol=1e-10, atol=1e-12
      )

  def test_random_order_matches_reference_for_some_orders_and_changes_them(self):
    with jax.enable_x64(True):
      tree, flat = conflicting_gradients(num_sources=3)
      candidates = {}  # every choice of one order of the other sources per source → reference direction
      for per_source_orders in itertools.product(*[list(itertools.permutations(range(3)))] * 3):
        candidates[per_source_orders] = reference_projected(flat, per_source_orders).sum(0)
      distinct = {tuple(np.round(v, 8)) for v in candidates.values()}
      self.assertGreater(len(distinct), 1)  # The order matters on this problem.
      directions = direction_of(pcgrad(optax.sgd(1.0), order="random", seed=0), tree, steps=6)
      for direction in directions:
        self.assertTrue(
          any(np.allclose(direction, c, rtol=1e-10, atol=1e-12) for c in candidates.values())
        )
      self.assertGreater(len({tuple(np.round(d, 8)) for d in directions}), 1)
      again = direction_of(pcgrad(optax.sgd(1.0), order="random", seed=0), tree, steps=6)
      np.testing.assert_array_equal(np.stack(directions), np.stack(again))


class ValidationTest(absltest.TestCase):
  def test_unknown_options(self):
    with self.assertRaisesRegex(ValueError, "order="):
      pcgrad(optax.sgd(1.0), order="sorted")
    with self.assertRaisesRegex(ValueError, "reduction="):
      pcgrad(optax.sgd(1.0), reduction="max")

  def test_mismatched_source_axes(self):
    tx = pcgrad(optax.sgd(1.0))
    params = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
    with self.assertRaisesRegex(ValueError, "leading source axis"):
      tx.update({"a": jnp.zeros((3, 2)), "b": jnp.zeros((2, 2))}, tx.init(params), params)


if __name__ == "__main__":
  absltest.main()
