"""Nexus against a direct reference loop, and the algorithm's promised properties."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

import nexus
from nexus.optim import _per_source as per_source
from tests.optim import problems


def run_nexus(tx, params, num_inner_steps, num_outer_steps, mode):
  """Runs Nexus on the shared problem in the given mode; returns (params, state)."""
  state = tx.init(params)
  if mode == "opaque":

    @jax.jit
    def step(params, state, t):
      loss_fn = lambda p, i: problems.source_loss(p, problems.source_of(t, i, num_inner_steps))
      updates, state = tx.update(params, state, params, loss_fn=loss_fn)
      return optax.apply_updates(params, updates), state

    for t in range(num_outer_steps):
      params, state = step(params, state, t)
    return params, state

  @jax.jit
  def inner_step(params, state, source):
    grads = jax.grad(problems.source_loss)(params, source)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for t in range(num_outer_steps):
    for m in range(num_inner_steps):
      params, state = inner_step(params, state, problems.source_of(t, m, num_inner_steps))
  return params, state


class ReferenceEqualityTest(parameterized.TestCase):
  @parameterized.product(
    num_inner_steps=(1, 2, 4),
    mode=("opaque", "transparent"),
    normalize=("global", "leaf", "none"),
  )
  def test_matches_reference_loop_in_float64(self, num_inner_steps, mode, normalize):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      outer = optax.adamw(0.05, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.2)
      tx = nexus.nexus(outer, 0.07, num_inner_steps=num_inner_steps, normalize=normalize, mode=mode)
      got, state = run_nexus(tx, params, num_inner_steps, 3, mode)
      want, want_outer_state = problems.reference_nexus(
        params, outer, 0.07, num_inner_steps, 3, normalize
      )
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
      self.assertEqual(int(optax.tree.get(state.outer_state, "count")), 3)
      self.assertEqual(int(state.count), 3)
      self.assertEqual(int(state.inner_step), 0)

  @parameterized.parameters("opaque", "transparent")
  def test_schedules_see_outer_steps(self, mode):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      lr = lambda count: 0.02 * (1.0 + count)
      gamma = lambda count: 0.05 / (1.0 + count)
      outer = optax.sgd(lr)
      tx = nexus.nexus(
        outer, gamma, num_inner_steps=2, mode=mode, pseudo_gradient_scale="inverse_gamma"
      )
      got, _ = run_nexus(tx, params, 2, 4, mode)
      want, _ = problems.reference_nexus(
        params, outer, gamma, 2, 4, pseudo_gradient_scale="inverse_gamma"
      )
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)

  def test_transparent_equals_opaque_in_float32(self):
    params = problems.make_params(jnp.float32)
    make = lambda mode: nexus.nexus(optax.adamw(1e-2), 0.01, num_inner_steps=4, mode=mode)
    opaque, _ = run_nexus(make("opaque"), params, 4, 5, "opaque")
    transparent, _ = run_nexus(make("transparent"), params, 4, 5, "transparent")
    for a, b in zip(jax.tree.leaves(opaque), jax.tree.leaves(transparent)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class DiagnosticsTest(absltest.TestCase):
  def test_aligned_sources_have_alignment_one(self):
    # Every inner gradient points the same way: a linear loss.
    params = {"w": jnp.zeros(4)}
    direction = jnp.asarray([1.0, 2.0, -2.0, 4.0])
    tx = nexus.nexus(optax.sgd(1.0), 0.1, num_inner_steps=3, track_gradient_sum=True)
    state = tx.init(params)
    grad_fn = lambda p, i: {"w": (1.0 + i) * direction}
    _, state = tx.update(params, state, params, grad_fn=grad_fn)
    diag = optax.tree.get(state, "diagnostics")
    np.testing.assert_allclose(diag.alignment, 1.0, rtol=1e-6)
    np.testing.assert_allclose(diag.pseudo_gradient_norm, 0.3, rtol=1e-6)
    np.testing.assert_allclose(diag.inner_path_length, 0.3, rtol=1e-6)
    np.testing.assert_allclose(diag.summed_gradient_cosine, 1.0, rtol=1e-6)
    np.testing.assert_allclose(diag.inner_grad_norms, jnp.asarray([1.0, 2.0, 3.0]) * 5.0, rtol=1e-6)

  def test_orthogonal_gradients_have_alignment_one_over_sqrt_k(self):
    params = {"w": jnp.zeros(4)}
    tx = nexus.nexus(optax.sgd(1.0), 0.1, num_inner_steps=4)
    state = tx.init(params)
    _, state = tx.update(params, state, params, grad_fn=lambda p, i: {"w": jnp.eye(4)[i]})
    np.testing.assert_allclose(state.diagnostics.alignment, 0.5, rtol=1e-6)

  def test_value_and_grad_fn_records_inner_losses(self):
    params = {"w": jnp.asarray([3.0])}
    loss = lambda p, i: (1.0 + i) * jnp.sum(p["w"] ** 2)
    tx = nexus.nexus(optax.sgd(1.0), 0.5, num_inner_steps=3)
    _, state = tx.update(
      params, tx.init(params), params, value_and_grad_fn=lambda p, i: jax.value_and_grad(loss)(p, i)
    )
    # Inner points: 3 → 2.5 → 2 → 1.5 (unit normalized steps of 0.5).
    np.testing.assert_allclose(state.diagnostics.inner_losses, [9.0, 2 * 6.25, 3 * 4.0], rtol=1e-6)
    _, state = tx.update(params, tx.init(params), params, grad_fn=lambda p, i: jax.grad(loss)(p, i))
    self.assertTrue(np.all(np.isnan(state.diagnostics.inner_losses)))

  def test_summed_gradient_cosine_is_opt_in(self):
    params = {"w": jnp.zeros(2)}
    tx = nexus.nexus(optax.sgd(1.0), 0.1, num_inner_steps=2)
    _, state = tx.update(params, tx.init(params), params, grad_fn=lambda p, i: {"w": jnp.ones(2)})
    self.assertTrue(np.isnan(state.diagnostics.summed_gradient_cosine))

  def test_transparent_mode_reports_cosine_unavailable(self):
    params = {"w": jnp.ones(2)}
    tx = nexus.nexus(optax.sgd(1.0), 0.1, num_inner_steps=1, mode="transparent")
    _, state = tx.update({"w": jnp.ones(2)}, tx.init(params), params)
    self.assertTrue(np.isnan(state.diagnostics.summed_gradient_cosine))
    np.testing.assert_allclose(state.diagnostics.alignment, 1.0, rtol=1e-6)


class ExpansionTest(absltest.TestCase):
  def _pseudo_gradient(self, params, gamma, sources):
    tx = nexus.nexus(optax.sgd(1.0), gamma, num_inner_steps=len(sources))
    state = tx.init(params)
    grad_fn = lambda p, i: jax.grad(problems.source_loss)(p, jnp.asarray(sources)[i])
    updates, _ = tx.update(params, state, params, grad_fn=grad_fn)
    return jax.tree.map(lambda u: -u, updates)  # sgd(1): update = −ĝ

  def _normalized_grad(self, params, source):
    grad = jax.grad(problems.source_loss)(params, source)
    norm = optax.tree.norm(grad)
    return jax.tree.map(lambda g: g / norm, grad)

  def test_gamma_to_zero_gives_sum_of_normalized_gradients(self):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      sources = [0, 2, 1, 2]
      gamma = 1e-7
      got = jax.tree.map(lambda g: g / gamma, self._pseudo_gradient(params, gamma, sources))
      stacked = jax.vmap(jax.grad(problems.source_loss), in_axes=(None, 0))(
        params, jnp.asarray(sources)
      )
      want = per_source.sum_normalized(stacked)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)

  def test_second_order_residual_shrinks_as_gamma_cubed(self):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      g1 = self._normalized_grad(params, 0)
      g2 = self._normalized_grad(params, 1)
      # 𝒥₂ĝ₁: directional derivative of the normalized gradient of source 1 along ĝ₁ (jax.jvp).
      _, jacobian_g1 = jax.jvp(lambda p: self._normalized_grad(p, 1), (params,), (g1,))
      gammas = np.geomspace(1e-3, 3e-2, 6)
      residuals = []
      for gamma in gammas:
        pseudo = self._pseudo_gradient(params, gamma, [0, 1])
        predicted = jax.tree.map(
          lambda a, b, j: gamma * (a + b) - gamma**2 * j, g1, g2, jacobian_g1
        )
        residuals.append(float(optax.tree.norm(optax.tree.sub(pseudo, predicted))))
      slope = np.polyfit(np.log(gammas), np.log(residuals), 1)[0]
      self.assertGreater(slope, 2.8)
      self.assertLess(slope, 3.2)


class ConvergenceTest(parameterized.TestCase):
  @parameterized.parameters("opaque", "transparent")
  def test_sources_with_common_minimizer_converge_to_it(self, mode):
    minimizer = jnp.asarray([1.0, -2.0, 0.5])
    scales = jnp.asarray([[1.0, 3.0, 0.5], [2.0, 0.2, 1.0], [0.7, 1.0, 4.0]])
    loss = lambda p, s: jnp.sum(scales[s] * (p["x"] - minimizer) ** 2)
    schedule = optax.cosine_decay_schedule(0.1, 300)
    tx = nexus.nexus(
      optax.adam(schedule),
      nexus.tied_inner_learning_rate(0.05, schedule, 0.1),
      num_inner_steps=3,
      mode=mode,
    )
    params = {"x": jnp.zeros(3)}
    state = tx.init(params)
    if mode == "opaque":
      step = jax.jit(lambda p, s: tx.update(p, s, p, grad_fn=lambda q, i: jax.grad(loss)(q, i)))
      for _ in range(300):
        updates, state = step(params, state)
        params = optax.apply_updates(params, updates)
    else:
      step = jax.jit(lambda p, s, i: tx.update(jax.grad(loss)(p, i), s, p))
      for _ in range(300):
        for i in range(3):
          updates, state = step(params, state, i)
          params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(params["x"], minimizer, atol=2e-2)

  def test_rosenbrock(self):
    # The contract problem of optax.contrib's common tests, as one "source" visited K times.
    rosenbrock = lambda p: (1.0 - p["x"][0]) ** 2 + 100.0 * (p["x"][1] - p["x"][0] ** 2) ** 2
    tx = nexus.nexus(optax.adam(3e-2), 1e-3, num_inner_steps=2)
    params = {"x": jnp.asarray([-0.5, 0.8])}
    state = tx.init(params)

    @jax.jit
    def step(params, state):
      updates, state = tx.update(
        params, state, params, grad_fn=lambda p, i: jax.grad(rosenbrock)(p)
      )
      return optax.apply_updates(params, updates), state

    for _ in range(2000):
      params, state = step(params, state)
    np.testing.assert_allclose(params["x"], jnp.ones(2), atol=5e-2)


class InvalidArgumentsTest(parameterized.TestCase):
  @parameterized.named_parameters(
    ("zero_steps", dict(num_inner_steps=0), ValueError, "num_inner_steps"),
    ("float_steps", dict(num_inner_steps=2.0), TypeError, "num_inner_steps"),
    ("negative_gamma", dict(inner_learning_rate=-0.1), ValueError, "inner_learning_rate"),
    ("nan_gamma", dict(inner_learning_rate=float("nan")), ValueError, "inner_learning_rate"),
    (
      "zero_gamma_inverse",
      dict(inner_learning_rate=0.0, pseudo_gradient_scale="inverse_gamma"),
      ValueError,
      "inverse_gamma",
    ),
    ("normalize", dict(normalize="l1"), ValueError, "normalize"),
    ("scale", dict(pseudo_gradient_scale="half"), ValueError, "pseudo_gradient_scale"),
    ("mode", dict(mode="lazy"), ValueError, "mode"),
    ("outer", dict(outer=0.1), TypeError, "outer"),
  )
  def test_bad_constructor_argument(self, overrides, error, message):
    kwargs = dict(outer=optax.adamw(1e-3), inner_learning_rate=0.01, num_inner_steps=2)
    kwargs.update(overrides)
    with self.assertRaisesRegex(error, message):
      nexus.nexus(**kwargs)

  def test_grad_fn_with_wrong_structure(self):
    params = {"a": jnp.ones(2), "b": jnp.ones(3)}
    tx = nexus.nexus(optax.adamw(1e-3), 0.01, num_inner_steps=2)
    state = tx.init(params)
    with self.assertRaisesRegex(ValueError, "tree structure"):
      tx.update(params, state, params, grad_fn=lambda p, i: {"a": p["a"]})
    with self.assertRaisesRegex(ValueError, "shape"):
      tx.update(params, state, params, grad_fn=lambda p, i: {"a": p["a"], "b": jnp.ones(4)})

  def test_opaque_without_grad_fn(self):
    params = {"a": jnp.ones(2)}
    tx = nexus.nexus(optax.adamw(1e-3), 0.01, num_inner_steps=2)
    with self.assertRaisesRegex(ValueError, "grad_fn"):
      tx.update(params, tx.init(params), params)


if __name__ == "__main__":
  absltest.main()
