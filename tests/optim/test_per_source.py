"""Per-source gradients, Gram/cosine matrices and the γ→0 Nexus transformation."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.optim import _per_source as per_source


def loss(params, batch):
  prediction = jnp.tanh(batch["x"] @ params["w"]) + params["b"]
  return jnp.mean((prediction - batch["y"]) ** 2)


PARAMS = {"w": jnp.asarray([[0.3, -0.1], [0.2, 0.5], [-0.4, 0.1]]), "b": jnp.asarray([0.1, -0.2])}


def stacked_batch(num_sources=4, rows=5):
  rng = np.random.default_rng(1)
  return {
    "x": jnp.asarray(rng.normal(size=(num_sources, rows, 3)), jnp.float32),
    "y": jnp.asarray(rng.normal(size=(num_sources, rows, 2)), jnp.float32),
  }


def flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


class PerSourceGradientsTest(parameterized.TestCase):
  @parameterized.parameters(("vmap", None), ("map", None), ("map", 3))
  def test_matches_one_grad_per_source(self, method, batch_size):
    batch = stacked_batch()
    got = per_source.per_source_gradients(loss, PARAMS, batch, method=method, batch_size=batch_size)
    for s in range(4):
      want = jax.grad(loss)(PARAMS, jax.tree.map(lambda x: x[s], batch))
      np.testing.assert_allclose(
        flat(jax.tree.map(lambda g: g[s], got)), flat(want), rtol=1e-5, atol=1e-7
      )

  def test_unknown_method(self):
    with self.assertRaisesRegex(ValueError, "method"):
      per_source.per_source_gradients(loss, PARAMS, stacked_batch(), method="loop")


class GramTest(absltest.TestCase):
  def test_gram_and_cosine_match_flattened_vectors(self):
    grads = per_source.per_source_gradients(loss, PARAMS, stacked_batch())
    vectors = np.stack([flat(jax.tree.map(lambda g: g[s], grads)) for s in range(4)])
    gram = per_source.tree_gram(grads)
    np.testing.assert_allclose(gram, vectors @ vectors.T, rtol=1e-5, atol=1e-7)
    norms = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(
      per_source.cosine_from_gram(gram),
      vectors @ vectors.T / np.outer(norms, norms),
      rtol=1e-5,
      atol=1e-6,
    )

  def test_identical_sources_have_cosine_one_and_zero_gradient_gives_zero(self):
    g = {"a": jnp.asarray([1.0, 2.0]), "b": jnp.asarray([[3.0]])}
    stacked = jax.tree.map(lambda x: jnp.stack([x, 2 * x, 0 * x]), g)
    cosine = per_source.cosine_from_gram(per_source.tree_gram(stacked))
    np.testing.assert_allclose(cosine[:2, :2], np.ones((2, 2)), rtol=1e-6)
    np.testing.assert_array_equal(cosine[2], np.zeros(3))
    self.assertFalse(np.any(np.isnan(cosine)))


class FirstOrderNexusTest(parameterized.TestCase):
  @parameterized.parameters("global", "leaf", "none")
  def test_feeds_gamma_times_sum_of_normalized_gradients(self, normalize):
    grads = per_source.per_source_gradients(loss, PARAMS, stacked_batch())
    tx = per_source.first_order_nexus(optax.sgd(1.0), 0.5, normalize=normalize)
    updates, _ = tx.update(grads, tx.init(PARAMS), PARAMS)
    expected = np.zeros_like(flat(PARAMS))
    for s in range(4):
      g = jax.tree.map(lambda x: x[s], grads)
      if normalize == "global":
        g = jax.tree.map(lambda x: x / optax.tree.norm(g), g)
      elif normalize == "leaf":
        g = jax.tree.map(lambda x: x / jnp.linalg.norm(x), g)
      expected += flat(g)
    np.testing.assert_allclose(flat(updates), -0.5 * expected, rtol=1e-5, atol=1e-7)

  def test_outer_count_advances_once_per_call(self):
    grads = per_source.per_source_gradients(loss, PARAMS, stacked_batch())
    tx = per_source.first_order_nexus(optax.adamw(1e-3), 0.01)
    state = tx.init(PARAMS)
    for _ in range(3):
      _, state = tx.update(grads, state, PARAMS)
    self.assertEqual(int(optax.tree.get(state, "count")), 3)

  def test_gamma_schedule_sees_outer_steps(self):
    grads = per_source.per_source_gradients(loss, PARAMS, stacked_batch())
    tx = per_source.first_order_nexus(optax.sgd(1.0), lambda count: 1.0 / (1.0 + count))
    state = tx.init(PARAMS)
    first, state = tx.update(grads, state, PARAMS)
    second, _ = tx.update(grads, state, PARAMS)
    np.testing.assert_allclose(flat(second), 0.5 * flat(first), rtol=1e-6)

  def test_bad_arguments(self):
    with self.assertRaisesRegex(ValueError, "normalize"):
      per_source.first_order_nexus(optax.sgd(1.0), normalize="max")
    with self.assertRaisesRegex(ValueError, "inner_learning_rate"):
      per_source.first_order_nexus(optax.sgd(1.0), -1.0)


if __name__ == "__main__":
  absltest.main()
