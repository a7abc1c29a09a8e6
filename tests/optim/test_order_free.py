"""Order-free Nexus against the exact average of sequential Nexus over all source orders."""

import itertools

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax

import nexus
from nexus.optim import _order_free as order_free
from tests.optim import problems

GAMMAS = np.geomspace(1e-3, 3e-2, 6)


def negated(tree):
  return jax.tree.map(lambda x: -x, tree)


def flat(tree):
  return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def order_free_update(params, gamma, source_ids, num_inner_steps, **kwargs):
  """One order-free update with ``optax.sgd(1.0)`` as the outer step (so the update is −E[ĝ])."""
  tx = order_free.order_free_nexus(
    optax.sgd(1.0), gamma, num_inner_steps=num_inner_steps, num_sources=len(source_ids), **kwargs
  )
  sources = jnp.asarray(source_ids)
  loss_fn = lambda p, i: problems.source_loss(p, sources[i])  # loss_fn(params, i): source i's loss
  update = lambda p: tx.update(p, tx.init(p), p, loss_fn=loss_fn)
  return jax.jit(update)(params)


def sequential_pseudo_gradient(params, gamma, sources):
  """ĝ of sequential Nexus (opaque mode) visiting ``sources`` in order."""
  tx = nexus.nexus(optax.sgd(1.0), gamma, num_inner_steps=sources.shape[0])
  grad_fn = lambda p, i: jax.grad(problems.source_loss)(p, sources[i])
  updates, _ = tx.update(params, tx.init(params), params, grad_fn=grad_fn)
  return negated(updates)


@jax.jit
def order_average(params, gamma, orders):
  """The exact mean of sequential Nexus's ĝ over the given (equally likely) orders."""
  pseudo_gradients = jax.vmap(lambda sources: sequential_pseudo_gradient(params, gamma, sources))(
    orders
  )
  return jax.tree.map(lambda x: jnp.mean(x, axis=0), pseudo_gradients)


def residual_slope(residuals):
  return np.polyfit(np.log(GAMMAS), np.log(residuals), 1)[0]


class ExpectedUpdateTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("three_sources_four_steps", (0, 1, 2), 4),
    ("two_sources_three_steps", (0, 2), 3),
    ("one_source_is_the_sequential_expansion", (1,), 3),
  )
  def test_matches_average_over_all_orders_to_gamma_cubed(self, source_ids, num_inner_steps):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      orders = jnp.asarray(list(itertools.product(source_ids, repeat=num_inner_steps)))
      update = jax.jit(
        lambda p, gamma, order: order_free_update(
          p, gamma, source_ids, num_inner_steps, order=order
        )[0],
        static_argnums=2,
      )
      residuals = {1: [], 2: []}
      for gamma in GAMMAS:
        want = order_average(params, gamma, orders)
        for order in (1, 2):
          got = negated(update(params, gamma, order))
          residuals[order].append(float(optax.tree.norm(optax.tree.sub(got, want))))
      self.assertBetween(residual_slope(residuals[2]), 2.8, 3.2)
      # Without the γ² term the residual is only O(γ²): the second-order term is what closes the
      # gap.
      self.assertBetween(residual_slope(residuals[1]), 1.8, 2.2)

  def test_first_order_is_gamma_k_over_s_times_sum_of_normalized_gradients(self):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      updates, state = order_free_update(params, 0.05, (0, 1, 2), 4, order=1)
      grads = [flat(jax.grad(problems.source_loss)(params, s)) for s in range(3)]
      norms = np.asarray([np.linalg.norm(g) for g in grads])
      want = 0.05 * 4 / 3 * sum(g / n for g, n in zip(grads, norms))
      np.testing.assert_allclose(flat(updates), -want, rtol=1e-12)
      diagnostics = state.diagnostics
      self.assertTrue(np.isnan(diagnostics.second_order_norm))
      np.testing.assert_allclose(diagnostics.first_order_norm, np.linalg.norm(want), rtol=1e-6)
      np.testing.assert_allclose(diagnostics.pseudo_gradient_norm, np.linalg.norm(want), rtol=1e-6)
      np.testing.assert_allclose(diagnostics.source_grad_norms, norms, rtol=1e-6)
      cosines = [
        grads[i] @ grads[j] / (norms[i] * norms[j]) for i in range(3) for j in range(3) if i != j
      ]
      np.testing.assert_allclose(diagnostics.mean_pairwise_cosine, np.mean(cosines), rtol=1e-6)

  def test_one_inner_step_has_no_second_order_term(self):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      second, state = order_free_update(params, 0.05, (0, 1, 2), 1, order=2)
      first, _ = order_free_update(params, 0.05, (0, 1, 2), 1, order=1)
      np.testing.assert_array_equal(flat(second), flat(first))
      self.assertEqual(float(state.diagnostics.second_order_norm), 0.0)
      self.assertFalse(np.isnan(state.diagnostics.mean_pairwise_cosine))

  @parameterized.parameters("global", "leaf", "none")
  def test_jvp_term_matches_central_finite_differences(self, normalize):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      sources = (0, 1, 2)
      # With γ = 1 and K = S = 3: order 1 gives −v(θ), v = Σ_i ĝ_i; order 2 adds +(1/3) Σ_i 𝒥_i v.
      summed = lambda p: negated(
        order_free_update(p, 1.0, sources, 3, order=1, normalize=normalize)[0]
      )
      second, state = order_free_update(params, 1.0, sources, 3, order=2, normalize=normalize)
      jvp_term = 3.0 * (flat(second) - flat(negated(summed(params))))
      v = summed(params)
      eps = 1e-5
      plus = summed(jax.tree.map(lambda p, d: p + eps * d, params, v))
      minus = summed(jax.tree.map(lambda p, d: p - eps * d, params, v))
      finite_difference = (flat(plus) - flat(minus)) / (2 * eps)
      np.testing.assert_allclose(jvp_term, finite_difference, rtol=1e-7, atol=1e-9)
      np.testing.assert_allclose(
        state.diagnostics.second_order_norm, np.linalg.norm(jvp_term) / 3, rtol=1e-6
      )

  @parameterized.parameters(None, 2)
  def test_map_method_matches_vmap(self, batch_size):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      want, want_state = order_free_update(params, 0.02, (0, 1, 2), 4)
      got, got_state = order_free_update(
        params, 0.02, (0, 1, 2), 4, method="map", batch_size=batch_size
      )
      np.testing.assert_allclose(flat(got), flat(want), rtol=1e-12)
      for a, b in zip(
        jax.tree.leaves(got_state.diagnostics), jax.tree.leaves(want_state.diagnostics)
      ):
        np.testing.assert_allclose(a, b, rtol=1e-6)


class StateTest(absltest.TestCase):
  def test_per_source_gradients_are_computed_once(self):
    # jax.linearize gives the gradients, their normalized sum and the JVP from one evaluation: the
    # loss is traced once (vmapped over the sources), where a separate jax.jvp would trace it a
    # second time.
    traces = []

    def loss_fn(params, i):
      traces.append(i)
      return problems.source_loss(params, i)

    params = problems.make_params(jnp.float32)
    tx = order_free.order_free_nexus(optax.sgd(1.0), 0.01, num_inner_steps=3, num_sources=3)
    state = tx.init(params)
    jax.make_jaxpr(lambda p: tx.update(p, state, p, loss_fn=loss_fn))(params)
    self.assertEqual(len(traces), 2)  # one shape check of the output, one evaluation
    losses = tx.update(params, state, params, loss_fn=problems.source_loss)[
      1
    ].diagnostics.inner_losses
    np.testing.assert_allclose(
      losses, [problems.source_loss(params, i) for i in range(3)], rtol=1e-6
    )

  def test_schedule_sees_the_outer_count_and_outer_advances_once_per_call(self):
    params = problems.make_params(jnp.float32)
    gamma = lambda count: 0.01 * (1.0 + count)
    tx = order_free.order_free_nexus(
      optax.adamw(1e-3), gamma, num_inner_steps=2, num_sources=3, order=1
    )
    state = tx.init(params)
    step = jax.jit(lambda s: tx.update(params, s, params, loss_fn=problems.source_loss))
    first_order_norms = []
    for _ in range(2):
      _, state = step(state)
      first_order_norms.append(float(state.diagnostics.first_order_norm))
    np.testing.assert_allclose(first_order_norms[1], 2 * first_order_norms[0], rtol=1e-6)
    self.assertEqual(int(state.count), 2)
    self.assertEqual(int(optax.tree.get(state.outer_state, "count")), 2)

  def test_bfloat16_params_keep_their_dtype_and_a_float32_outer_state(self):
    params32 = problems.make_params(jnp.float32)
    params16 = optax.tree.cast(params32, jnp.bfloat16)
    tx = order_free.order_free_nexus(optax.adam(1e-2), 0.01, num_inner_steps=4, num_sources=3)
    step = jax.jit(lambda p: tx.update(p, tx.init(p), p, loss_fn=problems.source_loss))
    updates16, state16 = step(params16)
    updates32, _ = step(params32)
    for u in jax.tree.leaves(updates16):
      self.assertEqual(u.dtype, jnp.bfloat16)
    for mu in jax.tree.leaves(optax.tree.get(state16.outer_state, "mu")):
      self.assertEqual(mu.dtype, jnp.float32)
    np.testing.assert_allclose(
      flat(optax.tree.cast(updates16, jnp.float32)), flat(updates32), rtol=2e-2
    )


class InvalidArgumentsTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("zero_steps", dict(num_inner_steps=0), ValueError, "num_inner_steps"),
    ("float_steps", dict(num_inner_steps=2.0), TypeError, "num_inner_steps"),
    ("zero_sources", dict(num_sources=0), ValueError, "num_sources"),
    ("negative_gamma", dict(inner_learning_rate=-0.1), ValueError, "inner_learning_rate"),
    ("nan_gamma", dict(inner_learning_rate=float("nan")), ValueError, "inner_learning_rate"),
    ("order", dict(order=3), ValueError, "order"),
    ("normalize", dict(normalize="l1"), ValueError, "normalize"),
    ("method", dict(method="scan"), ValueError, "method"),
    ("batch_size_with_vmap", dict(batch_size=2), ValueError, "batch_size"),
    ("zero_batch_size", dict(method="map", batch_size=0), ValueError, "batch_size"),
    ("outer", dict(outer=0.1), TypeError, "outer"),
  )
  def test_bad_constructor_argument(self, overrides, error, message):
    kwargs = dict(
      outer=optax.adamw(1e-3), inner_learning_rate=0.01, num_inner_steps=2, num_sources=3
    )
    kwargs.update(overrides)
    with self.assertRaisesRegex(error, message):
      order_free.order_free_nexus(**kwargs)

  def test_bad_update_arguments(self):
    params = problems.make_params(jnp.float32)
    tx = order_free.order_free_nexus(optax.adamw(1e-3), 0.01, num_inner_steps=2, num_sources=3)
    state = tx.init(params)
    with self.assertRaisesRegex(ValueError, "loss_fn"):
      tx.update(params, state, params)
    with self.assertRaisesRegex(TypeError, "loss_fn must be callable"):
      tx.update(params, state, params, loss_fn=3)
    with self.assertRaisesRegex(ValueError, "scalar"):
      tx.update(params, state, params, loss_fn=lambda p, i: p["a"])
    with self.assertRaisesRegex(ValueError, "the ignored updates"):
      tx.update({"a": params["a"]}, state, params, loss_fn=problems.source_loss)
    with self.assertRaisesRegex(ValueError, "params"):
      tx.update(params, state, loss_fn=problems.source_loss)


class ShardingTest(parameterized.TestCase):
  @parameterized.parameters("vmap", "map")
  def test_state_shardings_follow_params_on_8_devices(self, method):
    self.assertLen(jax.devices(), 8)  # tests/conftest.py
    mesh = jax.make_mesh(
      (2, 4), ("data", "model"), axis_types=(jax.sharding.AxisType.Explicit,) * 2
    )
    specs = {"w": P("data", "model"), "b": P(None, "model"), "s": P()}
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    host_params = {
      "w": np.linspace(-1, 1, 32).reshape(4, 8),
      "b": np.ones((3, 8)) / 3,
      "s": np.ones(()),
    }
    host_params = jax.tree.map(lambda x: np.asarray(x, np.float32), host_params)
    host_data = np.linspace(0.5, 2.0, 3 * 2 * 8, dtype=np.float32).reshape(3, 2, 8)  # S = 3 sources

    def loss_fn(p, x):
      return (
        jnp.sum(jnp.sin(p["w"] * x[0])) + jnp.sum(jnp.cos(p["b"] * x[1])) + p["s"] ** 2 * jnp.sum(x)
      )

    tx = order_free.order_free_nexus(
      optax.adamw(1e-2), 0.05, num_inner_steps=4, num_sources=3, method=method
    )

    def step(params, state, data):
      updates, state = tx.update(params, state, params, loss_fn=lambda p, i: loss_fn(p, data[i]))
      return optax.apply_updates(params, updates), state

    params = jax.device_put(host_params, shardings)
    data = jax.device_put(host_data, NamedSharding(mesh, P(None, None, "model")))
    # The trainer's recipe: params-shaped parts of the state follow the params, the rest is
    # replicated.
    state_shardings = optax.tree_map_params(
      tx,
      lambda _, sharding: sharding,
      jax.eval_shape(tx.init, params),
      shardings,
      transform_non_params=lambda _: NamedSharding(mesh, P()),
    )
    with jax.set_mesh(mesh):  # explicit axes: outputs that only copy shardings need the mesh
      state = jax.jit(tx.init, out_shardings=state_shardings)(params)
    sharded_step = jax.jit(step, donate_argnums=(0, 1))
    first = jax.tree.map(lambda x: x.sharding, state)
    for _ in range(3):
      params, state = sharded_step(params, state, data)
      for name in specs:
        assert params[name].sharding.spec == specs[name], (name, params[name].sharding)
        mu = state.outer_state[0].mu[name]
        assert mu.sharding.spec == specs[name], (name, mu.sharding)
      same = jax.tree.map(lambda x, s: x.sharding.is_equivalent_to(s, x.ndim), state, first)
      assert all(jax.tree.leaves(same)), same
    reference, reference_state = host_params, tx.init(host_params)
    for _ in range(3):
      reference, reference_state = jax.jit(step)(reference, reference_state, host_data)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(reference)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert (
      np.isfinite(float(state.diagnostics.second_order_norm))
      and float(state.diagnostics.second_order_norm) > 0
    )


if __name__ == "__main__":
  absltest.main()
