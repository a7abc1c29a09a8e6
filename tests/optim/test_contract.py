"""Nexus honours the Optax contract (after optax/contrib/_common_test.py): extra args, injected
hyperparameters, dtypes, chaining, flax.nnx.Optimizer, a single compilation, and sharding."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax

import nexus


def quadratic(params, i):
  return jnp.sum((params["w"] - (1.0 + i)) ** 2) + jnp.sum(params["b"] ** 2)


PARAMS = {"w": jnp.asarray([0.5, -1.0, 2.0]), "b": jnp.asarray([[1.0, 2.0]])}


class ContractTest(parameterized.TestCase):
  def test_accepts_extra_args(self):
    tx = nexus.nexus(optax.adamw(1e-2), 0.01, num_inner_steps=2, mode="transparent")
    state = tx.init(PARAMS)
    grads = jax.grad(quadratic)(PARAMS, 0)
    updates, _ = tx.update(grads, state, PARAMS, loss=jnp.ones([]), some_unused_arg="x")
    self.assertEqual(jax.tree.structure(updates), jax.tree.structure(PARAMS))

  @parameterized.parameters("opaque", "transparent")
  def test_inject_hyperparams_matches_plain_and_controls_gamma(self, mode):
    factory = optax.inject_hyperparams(nexus.nexus, static_args=("num_inner_steps",))
    injected = factory(optax.adam(1e-2), inner_learning_rate=0.03, num_inner_steps=2, mode=mode)
    plain = nexus.nexus(optax.adam(1e-2), 0.03, num_inner_steps=2, mode=mode)

    def run(tx, gamma=None):
      params, state = PARAMS, tx.init(PARAMS)
      if gamma is not None:
        state.hyperparams["inner_learning_rate"] = jnp.asarray(gamma)
      opaque = jax.jit(lambda p, s: tx.update(p, s, p, grad_fn=jax.grad(quadratic)))
      transparent = jax.jit(lambda p, s, i: tx.update(jax.grad(quadratic)(p, i), s, p))
      for _ in range(3):
        if mode == "opaque":
          updates, state = opaque(params, state)
          params = optax.apply_updates(params, updates)
        else:
          for i in range(2):
            updates, state = transparent(params, state, i)
            params = optax.apply_updates(params, updates)
      return params

    for a, b in zip(jax.tree.leaves(run(injected)), jax.tree.leaves(run(plain))):
      np.testing.assert_allclose(a, b, rtol=1e-6)
    frozen = run(injected, gamma=0.0)  # γ = 0: no inner movement, ĝ = 0, Adam does not move.
    for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(PARAMS)):
      np.testing.assert_allclose(a, b)

  @parameterized.product(dtype=(jnp.bfloat16, jnp.float32), mode=("opaque", "transparent"))
  def test_preserves_dtype(self, dtype, mode):
    params = optax.tree.cast(PARAMS, dtype)
    tx = nexus.nexus(optax.adamw(1e-2), 0.01, num_inner_steps=1, mode=mode)
    state = tx.init(params)
    if mode == "opaque":
      updates, state = tx.update(
        params, state, params, grad_fn=lambda p, i: jax.grad(quadratic)(p, i)
      )
    else:
      updates, state = tx.update(jax.grad(quadratic)(params, 0), state, params)
    for u in jax.tree.leaves(updates):
      self.assertEqual(u.dtype, dtype)
    for p in jax.tree.leaves(state.outer_params):
      self.assertEqual(p.dtype, jnp.float32)

  @parameterized.parameters("opaque", "transparent")
  def test_bfloat16_params_keep_the_inner_steps(self, mode):
    # γ/√d is far below bf16 resolution around 1.0: a bf16 inner trajectory would not move at all.
    params = {"w": jnp.ones(64, jnp.bfloat16)}
    direction = jnp.linspace(1.0, 2.0, 64).astype(jnp.bfloat16)  # exactly representable gradients
    gamma = 1e-3
    tx = nexus.nexus(optax.sgd(1.0), gamma, num_inner_steps=4, mode=mode)
    state = tx.init(params)
    if mode == "opaque":
      _, state = tx.update(params, state, params, grad_fn=lambda p, i: {"w": direction})
    else:
      for _ in range(4):
        updates, state = tx.update({"w": direction}, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(state.diagnostics.pseudo_gradient_norm, 4 * gamma, rtol=1e-3)
    direction = direction.astype(jnp.float32)
    expected = 1.0 - 4 * gamma * direction / jnp.linalg.norm(direction)
    np.testing.assert_allclose(state.outer_params["w"], expected, rtol=1e-6)

  @parameterized.parameters("before", "after")
  def test_chains_with_clip_by_global_norm(self, side):
    core = nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=2, mode="transparent")
    clip = optax.clip_by_global_norm(1e-3)
    tx = optax.chain(clip, core) if side == "before" else optax.chain(core, clip)
    params, state = PARAMS, tx.init(PARAMS)
    for i in range(4):
      updates, state = tx.update(jax.grad(quadratic)(params, i % 2), state, params)
      if side == "after":
        self.assertLessEqual(float(optax.tree.norm(updates)), 1e-3 * (1 + 1e-5))
      params = optax.apply_updates(params, updates)
    nexus_state = state[1] if side == "before" else state[0]
    self.assertEqual(int(nexus_state.count), 2)  # two outer steps from four inner steps

  def test_nnx_optimizer_round_trip_matches_plain_pytree(self):
    model = nnx.Linear(3, 2, rngs=nnx.Rngs(0))
    inputs = jnp.asarray([[1.0, 2.0, -1.0], [0.5, 0.0, 1.0]])
    loss = lambda m, i: jnp.mean((m(inputs) - i) ** 2)
    make_tx = lambda: nexus.nexus(optax.adamw(1e-2), 0.02, num_inner_steps=2, mode="transparent")
    graphdef, params = nnx.split(model, nnx.Param)
    plain_params = jax.tree.map(jnp.array, params)
    optimizer = nnx.Optimizer(model, make_tx(), wrt=nnx.Param)
    tx = make_tx()
    state = tx.init(plain_params)
    for step in range(4):
      i = step % 2
      optimizer.update(model, nnx.grad(loss)(model, i))
      grads = jax.grad(lambda p: loss(nnx.merge(graphdef, p), i))(plain_params)
      updates, state = tx.update(grads, state, plain_params)
      plain_params = optax.apply_updates(plain_params, updates)
    for a, b in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), jax.tree.leaves(plain_params)):
      np.testing.assert_allclose(a, b, rtol=1e-6)

  def test_no_recompilation_across_steps(self):
    tx = nexus.nexus(optax.adamw(1e-2), 0.01, num_inner_steps=3, mode="transparent")

    @jax.jit
    def step(params, state, i):
      updates, state = tx.update(jax.grad(quadratic)(params, i), state, params)
      return optax.apply_updates(params, updates), state

    params, state = PARAMS, tx.init(PARAMS)
    for i in range(7):
      params, state = step(params, state, i)
    self.assertEqual(step._cache_size(), 1)


class ShardingTest(parameterized.TestCase):
  @parameterized.parameters(
    (jnp.float32, "opaque"), (jnp.bfloat16, "opaque"), (jnp.float32, "transparent")
  )
  def test_state_shardings_follow_params_on_8_devices(self, dtype, mode):
    self.assertLen(jax.devices(), 8)  # tests/conftest.py
    mesh = jax.make_mesh(
      (2, 4), ("data", "model"), axis_types=(jax.sharding.AxisType.Explicit,) * 2
    )
    specs = {"w": P("data", "model"), "b": P(None, "model"), "s": P()}
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), specs)
    shapes = {"w": (4, 8), "b": (3, 8), "s": ()}
    params = jax.device_put({k: jnp.ones(shape, dtype) for k, shape in shapes.items()}, shardings)
    data = jax.device_put(jnp.arange(2 * 8.0).reshape(2, 8), NamedSharding(mesh, P(None, "model")))
    loss = lambda p, x: jnp.sum(jnp.sin(p["w"] * x[0])) + jnp.sum(p["b"] * x[1]) + p["s"] ** 2
    tx = nexus.nexus(optax.adamw(1e-2), 0.01, num_inner_steps=2, mode=mode)
    with jax.set_mesh(mesh):  # explicit axes: outputs that only copy shardings need the mesh
      state = jax.jit(tx.init)(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state, data):
      if mode == "opaque":
        loss_fn = lambda p, i: loss(p, data * (1.0 + i))
        updates, state = tx.update(params, state, params, loss_fn=loss_fn)
      else:
        updates, state = tx.update(jax.grad(loss)(params, data), state, params)
      return optax.apply_updates(params, updates), state

    def check(params, state):
      copies = [state.outer_params] if dtype == jnp.bfloat16 or mode == "transparent" else []
      for name in specs:
        for copy in copies:
          self.assertEqual(copy[name].sharding.spec, params[name].sharding.spec, name)
        mu = state.outer_state[0].mu[name]
        self.assertEqual(mu.sharding.spec, params[name].sharding.spec, name)

    check(params, state)
    first = jax.tree.map(lambda x: x.sharding, state)
    for _ in range(3):
      params, state = step(params, state, data)
      check(params, state)
      same = jax.tree.map(lambda x, s: x.sharding.is_equivalent_to(s, x.ndim), state, first)
      self.assertTrue(all(jax.tree.leaves(same)), same)


if __name__ == "__main__":
  absltest.main()
