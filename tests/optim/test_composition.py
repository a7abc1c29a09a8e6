"""Nexus composed with the rest of Optax: what is chained after or before it, optax.masked,
optax.MultiSteps, optax.apply_if_finite, injected hyperparameters, non-finite steps, and the memory
of
its state per params dtype (the promises of nexus/optim/_two_loop.py's module docstring)."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

import nexus
from nexus.optim._two_loop import UPDATE_MODES
from nexus.optim._two_loop import two_loop

K = 2


def loss(params, i):
  """Two micro-batches pulling ``w`` towards different targets, plus a ripple."""
  target = jnp.where(i == 0, 1.0, -0.5)
  w = params["w"].astype(jnp.float32)
  return jnp.sum((w - target) ** 2 + 0.1 * jnp.cos(3.0 * w)) + jnp.sum(
    params["b"].astype(jnp.float32) ** 2
  )


def make_params(dtype=jnp.float32, b_dtype=None):
  return {
    "w": jnp.asarray([0.5, -1.0, 2.0, 0.25], dtype),
    "b": jnp.asarray([[1.0, 2.0]], b_dtype or dtype),
  }


def opaque_step(tx):
  @jax.jit
  def step(params, state):
    updates, state = tx.update(params, state, params, loss_fn=loss)
    return optax.apply_updates(params, updates), state

  return step


def transparent_step(tx, gradient=None):
  gradient = gradient or (lambda params, i: jax.grad(loss)(params, i))

  @jax.jit
  def step(params, state, i):
    updates, state = tx.update(gradient(params, i), state, params)
    return optax.apply_updates(params, updates), state

  return step


def assert_trees_close(test, a, b, **kwargs):
  test.assertEqual(jax.tree.structure(a), jax.tree.structure(b))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), **kwargs)


def nbytes(tree):
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))


class ChainedAfterTest(parameterized.TestCase):
  @parameterized.parameters(jnp.float32, jnp.bfloat16)
  def test_opaque_clip_after_reaches_theta(self, dtype):
    # A clip chained after Nexus changes the step; the next outer step starts from the clipped
    # params.
    clip = 1e-2
    tx = optax.chain(
      nexus.nexus(optax.sgd(1.0), 0.1, num_inner_steps=K), optax.clip_by_global_norm(clip)
    )
    plain = nexus.nexus(optax.sgd(1.0), 0.1, num_inner_steps=K)
    params, state = make_params(dtype), tx.init(make_params(dtype))
    step = opaque_step(tx)
    for _ in range(3):
      # What plain Nexus (stateless SGD outer) does from the caller's params, then clipped.
      want_update, _ = plain.update(params, plain.init(params), params, loss_fn=loss)
      want = optax.apply_updates(
        params, optax.clip_by_global_norm(clip).update(want_update, None)[0]
      )
      params, state = step(params, state)
      self.assertLessEqual(
        float(
          optax.tree.norm(
            optax.tree.sub(optax.tree.cast(params, jnp.float32), optax.tree.cast(want, jnp.float32))
          )
        ),
        1e-6,
      )
    self.assertEqual(int(state[0].count), 3)

  def test_transparent_clip_after_reaches_theta(self):
    clip = 1e-3
    tx = optax.chain(
      nexus.nexus(optax.sgd(1.0), 0.1, num_inner_steps=K, mode="transparent"),
      optax.clip_by_global_norm(clip),
    )
    params, state = make_params(), tx.init(make_params())
    step = transparent_step(tx)
    for i in range(3 * K):
      start = params
      params, state = step(params, state, i % K)
      self.assertLessEqual(float(optax.tree.norm(optax.tree.sub(params, start))), clip * (1 + 1e-4))
      if (
        i % K == 0
      ):  # Each outer step starts from the caller's (clipped) params: θ is re-synced to them.
        assert_trees_close(self, state[0].outer_params, start, rtol=0, atol=0)
    self.assertEqual(int(state[0].count), 3)


class ChainedBeforeTest(absltest.TestCase):
  def test_transparent_clip_before_clips_each_inner_gradient(self):
    clip = optax.clip_by_global_norm(0.5)
    core = lambda: nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K, mode="transparent")
    chained = optax.chain(clip, core())
    clipped_gradient = lambda p, i: clip.update(jax.grad(loss)(p, i), None)[0]
    params = make_params()
    a, sa = params, chained.init(params)
    b, sb = params, core().init(params)
    step_a, step_b = transparent_step(chained), transparent_step(core(), clipped_gradient)
    for i in range(2 * K):
      a, sa = step_a(a, sa, i % K)
      b, sb = step_b(b, sb, i % K)
    assert_trees_close(self, a, b, rtol=1e-6)

  def test_opaque_ignores_what_is_chained_before(self):
    # Opaque mode computes its own gradients from loss_fn: a transformation before it has no effect.
    chained = optax.chain(optax.scale(0.0), nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K))
    plain = nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K)
    a, sa = make_params(), chained.init(make_params())
    b, sb = make_params(), plain.init(make_params())
    for _ in range(2):
      a, sa = opaque_step(chained)(a, sa)
      b, sb = opaque_step(plain)(b, sb)
    assert_trees_close(self, a, b, rtol=1e-6)


class WrappersTest(parameterized.TestCase):
  def test_masked_transparent_updates_only_the_masked_leaves(self):
    mask = {"w": True, "b": False}
    masked = optax.masked(
      nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K, mode="transparent"), mask
    )
    sub = nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K, mode="transparent")
    params, state = make_params(), masked.init(make_params())
    w, sub_state = {"w": params["w"]}, sub.init({"w": params["w"]})
    grad = jax.jit(jax.grad(loss))
    masked_update, sub_update = jax.jit(masked.update), jax.jit(sub.update)  # one compile each
    for i in range(2 * K):
      grads = grad(params, i % K)
      updates, state = masked_update(grads, state, params)
      self.assertTrue(bool(jnp.all(updates["b"] == grads["b"])))  # optax.masked passes them through
      params = {"w": optax.apply_updates(params["w"], updates["w"]), "b": params["b"]}
      sub_updates, sub_state = sub_update({"w": grads["w"]}, sub_state, w)
      w = optax.apply_updates(w, sub_updates)
    np.testing.assert_allclose(params["w"], w["w"], rtol=1e-6)

  def test_masked_opaque_is_a_clear_error(self):
    masked = optax.masked(
      nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K), {"w": True, "b": False}
    )
    params = make_params()
    with self.assertRaisesRegex(
      ValueError, "optax.masked hid some of them; use mode='transparent'"
    ):
      masked.update(params, masked.init(params), params, loss_fn=loss)

  def test_multisteps_feeds_transparent_nexus_the_mean_gradient(self):
    every = 2
    multi = optax.MultiSteps(
      nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K, mode="transparent"), every
    )
    plain = nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K, mode="transparent")
    a, sa = make_params(), multi.init(make_params())
    b, sb = make_params(), plain.init(make_params())
    for call in range(2 * K):
      grads = [jax.grad(loss)(b, (call + j) % K) for j in range(every)]
      mean = jax.tree.map(lambda *g: sum(g) / every, *grads)
      for j in range(every):
        updates, sa = multi.update(jax.grad(loss)(a, (call + j) % K), sa, a)
        a = optax.apply_updates(a, updates)
      updates, sb = plain.update(mean, sb, b)
      b = optax.apply_updates(b, updates)
      assert_trees_close(self, a, b, rtol=1e-5, atol=1e-7)

  @parameterized.parameters(True, False)
  def test_non_finite_micro_batch_never_reaches_the_state(self, wrapped):
    core = nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K)
    tx = optax.apply_if_finite(core, max_consecutive_errors=5) if wrapped else core

    @jax.jit
    def step(params, state, poison):
      loss_fn = lambda p, i: loss(p, i) * jnp.where(poison & (i == 1), jnp.nan, 1.0)
      updates, state = tx.update(params, state, params, loss_fn=loss_fn)
      return optax.apply_updates(params, updates), state

    params, state = make_params(), tx.init(make_params())
    params, state = step(params, state, jnp.asarray(False))
    inner = lambda s: s.inner_state if wrapped else s
    before = inner(state)
    after_params, state = step(params, state, jnp.asarray(True))
    assert_trees_close(self, after_params, params, rtol=0, atol=0)  # zero update
    self.assertEqual(int(inner(state).skipped_steps), 1)
    self.assertEqual(int(inner(state).count), int(before.count))
    assert_trees_close(self, inner(state).outer_state, before.outer_state, rtol=0, atol=0)
    self.assertTrue(
      bool(jnp.isnan(inner(state).diagnostics.inner_losses[1]))
    )  # what went wrong is visible
    params, state = step(after_params, state, jnp.asarray(False))  # and training goes on
    self.assertTrue(bool(nexus.optim.tree_utils.is_finite(params, inner(state).outer_state)))
    self.assertEqual(int(inner(state).count), int(before.count) + 1)

  def test_transparent_non_finite_gradient_skips_the_inner_call(self):
    tx = nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K, mode="transparent")
    params, state = make_params(), tx.init(make_params())
    bad = jax.tree.map(lambda x: jnp.full_like(x, jnp.inf), params)
    updates, new_state = tx.update(bad, state, params)
    assert_trees_close(self, updates, optax.tree.zeros_like(params), rtol=0, atol=0)
    self.assertEqual(int(new_state.skipped_steps), 1)
    self.assertEqual(int(new_state.inner_step), 0)


class InjectedHyperparametersTest(parameterized.TestCase):
  @parameterized.product(dtype=(jnp.bfloat16, jnp.float16), mode=UPDATE_MODES)
  def test_low_precision_params(self, dtype, mode):
    factory = optax.inject_hyperparams(nexus.nexus, static_args=("num_inner_steps", "mode"))
    tx = factory(optax.adam(1e-2), inner_learning_rate=0.05, num_inner_steps=K, mode=mode)
    params = make_params(dtype)
    state = tx.init(params)
    self.assertEqual(
      state.hyperparams["inner_learning_rate"].dtype, dtype
    )  # inject's cast, accepted
    if mode == "opaque":
      params, state = opaque_step(tx)(params, state)
    else:
      for i in range(K):
        params, state = transparent_step(tx)(params, state, i)
    self.assertEqual(int(state.inner_state.count), 1)
    for leaf in jax.tree.leaves(params):
      self.assertEqual(leaf.dtype, dtype)

  @parameterized.parameters(*UPDATE_MODES)
  def test_gamma_schedules_see_the_outer_step(self, mode):
    schedule = lambda count: 0.08 / (1.0 + count)
    injected_gamma = (
      nexus.optim.inner_call_schedule(schedule, K) if mode == "transparent" else schedule
    )
    factory = optax.inject_hyperparams(nexus.nexus, static_args=("num_inner_steps", "mode"))
    injected = factory(
      optax.sgd(0.5), inner_learning_rate=injected_gamma, num_inner_steps=K, mode=mode
    )
    plain = nexus.nexus(optax.sgd(0.5), schedule, num_inner_steps=K, mode=mode)
    results = []
    for tx in (injected, plain):
      params, state = make_params(), tx.init(make_params())
      for _ in range(3):
        if mode == "opaque":
          params, state = opaque_step(tx)(params, state)
        else:
          for i in range(K):
            params, state = transparent_step(tx)(params, state, i)
      results.append(params)
    assert_trees_close(self, results[0], results[1], rtol=1e-6)

  @parameterized.parameters(*UPDATE_MODES)
  def test_float64_gamma_with_float32_params_under_x64(self, mode):
    with jax.enable_x64(True):
      params = make_params(jnp.float32)
      results = []
      for gamma in (jnp.asarray(0.05, jnp.float64), 0.05):
        tx = nexus.nexus(optax.adam(1e-2), gamma, num_inner_steps=K, mode=mode)
        p, state = params, tx.init(params)
        if mode == "opaque":
          p, state = opaque_step(tx)(p, state)
        else:
          for i in range(K):
            p, state = transparent_step(tx)(p, state, i)
        self.assertEqual(p["w"].dtype, jnp.float32)
        results.append(p)
      assert_trees_close(self, results[0], results[1], rtol=1e-6)


class MemoryTest(parameterized.TestCase):
  """The README's sentence, exactly: with float32 params opaque Nexus's state is the outer optimizer's
  (on float32 params) and nothing more; each leaf stored below float32 adds one float32 master copy;
  transparent mode adds one float32 copy of every leaf (θ) and one more for the leaves below float32 (φ).
  Besides: 3 int32 counters and the diagnostics, 8K + 16 bytes."""

  @parameterized.product(
    dtypes=((jnp.float32, jnp.float32), (jnp.bfloat16, jnp.bfloat16), (jnp.bfloat16, jnp.float32)),
    mode=UPDATE_MODES,
  )
  def test_state_bytes(self, dtypes, mode):
    params = make_params(*dtypes)
    outer = optax.adamw(1e-3)
    state = jax.eval_shape(nexus.nexus(outer, 0.01, num_inner_steps=K, mode=mode).init, params)
    float32_params = optax.tree.cast(params, jnp.float32)
    outer_bytes = nbytes(jax.eval_shape(outer.init, float32_params))
    every_leaf = nbytes(float32_params)
    below_float32 = sum(4 * x.size for x in jax.tree.leaves(params) if x.dtype != jnp.float32)
    copies = below_float32 if mode == "opaque" else every_leaf + below_float32
    self.assertEqual(nbytes(state), outer_bytes + copies + 3 * 4 + 8 * K + 16)
    self.assertEqual(nbytes(state.outer_params) + nbytes(state.inner_params), copies)


class ErrorsTest(parameterized.TestCase):
  def test_checks_pass_when_built_inside_jit_under_x64(self):
    # Inside a trace, jnp.asarray(0.01) is traced: the eager checks must still see a Python float.
    @jax.jit
    def init_and_step(params):
      tx = nexus.nexus(optax.sgd(1.0), 0.01, num_inner_steps=K)
      updates, state = tx.update(params, tx.init(params), params, loss_fn=loss)
      return updates, state.count

    with jax.enable_x64(True):
      _, count = init_and_step(make_params())
    self.assertEqual(int(count), 1)

  def assert_one_line(self, error_type, message, fn):
    with self.assertRaisesRegex(error_type, message) as raised:
      fn()
    self.assertNotIn("\n", str(raised.exception))

  def test_misuse_of_the_update_call(self):
    params = make_params()
    opaque = nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K)
    transparent = nexus.nexus(optax.adam(1e-2), 0.05, num_inner_steps=K, mode="transparent")
    so, st = opaque.init(params), transparent.init(params)
    self.assert_one_line(
      TypeError,
      "grad_fn must be callable as grad_fn\\(params, i\\)",
      lambda: opaque.update(params, so, params, grad_fn=3),
    )
    self.assert_one_line(
      ValueError,
      "loss_fn\\(params, i\\) must return a real scalar",
      lambda: opaque.update(params, so, params, loss_fn=lambda p, i: p["w"]),
    )
    self.assert_one_line(
      ValueError,
      "the ignored updates must have the params' tree structure",
      lambda: opaque.update({"w": params["w"]}, so, params, loss_fn=loss),
    )
    self.assert_one_line(
      ValueError, "exactly one of loss_fn", lambda: opaque.update(params, so, params)
    )
    self.assert_one_line(
      ValueError,
      r"updates \(the gradient at params\)\['w'\] has shape \(3,\)",
      lambda: transparent.update({"w": jnp.ones(3), "b": params["b"]}, st, params),
    )
    self.assert_one_line(
      ValueError, "tree structure", lambda: transparent.update({"w": params["w"]}, st, params)
    )
    self.assert_one_line(
      ValueError,
      "transparent mode takes the gradient",
      lambda: transparent.update(params, st, params, loss_fn=loss),
    )

  @parameterized.named_parameters(
    (
      "two_loop_mode",
      TypeError,
      "",
      lambda: two_loop(optax.sgd(1.0), optax.sgd(1.0), 2, mode="Opaque"),
    ),
    (
      "two_loop_outer",
      TypeError,
      "outer must be an Optax GradientTransformation",
      lambda: two_loop(optax.sgd(1.0), "adam", 2),
    ),
    (
      "nexus_gamma_nan",
      ValueError,
      "inner_learning_rate must be in",
      lambda: nexus.nexus(optax.sgd(1.0), float("nan"), num_inner_steps=2),
    ),
    (
      "nexus_k",
      TypeError,
      "num_inner_steps must be a Python int",
      lambda: nexus.nexus(optax.sgd(1.0), 0.1, num_inner_steps=2.0),
    ),
    ("pcgrad_outer", TypeError, "outer must be an Optax", lambda: nexus.optim.pcgrad(None)),
    (
      "pcgrad_seed",
      TypeError,
      "seed must be a Python int",
      lambda: nexus.optim.pcgrad(optax.sgd(1.0), seed=0.5),
    ),
    (
      "first_order_gamma",
      ValueError,
      "inner_learning_rate must be in",
      lambda: nexus.optim.first_order_nexus(optax.sgd(1.0), -1.0),
    ),
    (
      "lookahead_inner",
      TypeError,
      "inner must be an Optax",
      lambda: nexus.optim.lookahead(1.0, num_inner_steps=2),
    ),
    (
      "snoo_momentum",
      ValueError,
      "outer_momentum must be in",
      lambda: nexus.optim.snoo(
        optax.sgd(1.0), num_inner_steps=2, outer_learning_rate=0.7, outer_momentum=1.0
      ),
    ),
    (
      "sam_optimizer",
      TypeError,
      "optimizer must be an Optax",
      lambda: nexus.optim.microbatch_sam("sgd", rho=0.05, num_microbatches=2),
    ),
    (
      "fish_step",
      ValueError,
      "meta_step_size must be in",
      lambda: nexus.optim.fish(0.1, 2.0, num_inner_steps=2),
    ),
    (
      "accumulate_tx",
      TypeError,
      "tx must be an Optax",
      lambda: nexus.optim.accumulate_gradients(optax.sgd, 2),
    ),
    (
      "stacked_k",
      ValueError,
      "num_microbatches must be >= 1",
      lambda: nexus.optim.stacked_gradients(optax.sgd(1.0), 0),
    ),
    (
      "tied_gamma_nan",
      ValueError,
      "peak_inner_learning_rate must be in",
      lambda: nexus.tied_inner_learning_rate(float("nan"), lambda c: 1.0, 1.0),
    ),
  )
  def test_constructors(self, error_type, message, fn):
    if not message:  # two_loop's mode: a ValueError naming the choices (case matters)
      error_type, message = ValueError, r"mode='Opaque' is not one of \('opaque', 'transparent'\)"
    self.assert_one_line(error_type, message, fn)


class AccumulationTest(absltest.TestCase):
  def test_bfloat16_gradients_are_summed_in_float32(self):
    # Eight gradients whose bfloat16 running sum loses the small parts (2⁻⁹ is below half an ulp of
    # 1.0 in bfloat16); the float32 sum keeps them.
    num = 8
    grads = jnp.asarray([1.0] + [2.0**-9] * (num - 1), jnp.bfloat16)
    params = {"w": jnp.zeros([1], jnp.bfloat16)}
    tx = nexus.optim.accumulate_gradients(optax.sgd(1.0), num)
    updates, state = tx.update(
      params, tx.init(params), params, grad_fn=lambda p, i: {"w": grads[i][None]}
    )
    want = (jnp.sum(grads.astype(jnp.float32)) / num).astype(jnp.bfloat16)
    bfloat16_sum = grads[0]
    for g in grads[1:]:
      bfloat16_sum = bfloat16_sum + g
    self.assertNotEqual(float(bfloat16_sum / num), float(want))  # the test can tell them apart
    self.assertEqual(float(-updates["w"][0]), float(want))
    self.assertEqual(state.diagnostics.inner_grad_norms.shape, (num,))


if __name__ == "__main__":
  absltest.main()
