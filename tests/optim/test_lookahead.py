"""Lookahead and SNOO against direct reference loops, with a stateful inner AdamW."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.optim._lookahead import lookahead
from nexus.optim._lookahead import snoo
from tests.optim import problems
from tests.optim.test_nexus import run_nexus


def inner_adamw():
  return optax.adamw(0.05, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.1)


def reference_with_inner_adamw(params, num_inner_steps, num_outer_steps, outer_step):
  """K AdamW steps on φ from θ (AdamW's state carried across outer steps), then ``outer_step``."""
  inner = inner_adamw()
  theta, _ = problems.reference_two_loop(
    params,
    num_inner_steps,
    num_outer_steps,
    problems.optax_rule(inner),
    outer_step,
    inner_state=inner.init(params),
  )
  return theta


def snoo_rule(eta, mu):
  """b ← μ b + ĝ;  θ ← θ − η (μ b + ĝ)."""

  def outer_step(t, theta, pseudo_gradient, momentum):
    del t
    if momentum is None:
      momentum = jax.tree.map(jnp.zeros_like, pseudo_gradient)
    momentum = jax.tree.map(lambda b, g: mu * b + g, momentum, pseudo_gradient)
    theta = jax.tree.map(lambda p, b, g: p - eta * (mu * b + g), theta, momentum, pseudo_gradient)
    return theta, momentum

  return outer_step


def assert_trees_close(got, want, **tolerances):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, **tolerances)


class ReferenceEqualityTest(parameterized.TestCase):
  @parameterized.product(num_inner_steps=(1, 3), mode=("opaque", "transparent"))
  def test_lookahead_matches_reference_loop(self, num_inner_steps, mode):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      tx = lookahead(inner_adamw(), num_inner_steps=num_inner_steps, slow_step_size=0.6, mode=mode)
      got, _ = run_nexus(tx, params, num_inner_steps, 3, mode)
      want = reference_with_inner_adamw(params, num_inner_steps, 3, problems.sgd_rule(0.6))
      assert_trees_close(got, want, rtol=1e-10, atol=1e-12)

  @parameterized.product(num_inner_steps=(1, 3), mode=("opaque", "transparent"))
  def test_snoo_matches_reference_loop(self, num_inner_steps, mode):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      tx = snoo(
        inner_adamw(),
        num_inner_steps=num_inner_steps,
        outer_learning_rate=0.7,
        outer_momentum=0.8,
        mode=mode,
      )
      got, _ = run_nexus(tx, params, num_inner_steps, 3, mode)
      want = reference_with_inner_adamw(params, num_inner_steps, 3, snoo_rule(0.7, 0.8))
      assert_trees_close(got, want, rtol=1e-10, atol=1e-12)

  def test_snoo_without_momentum_is_lookahead(self):
    params = problems.make_params(jnp.float32)
    got, _ = run_nexus(
      snoo(inner_adamw(), num_inner_steps=2, outer_learning_rate=0.4, outer_momentum=0.0),
      params,
      2,
      3,
      "opaque",
    )
    want, _ = run_nexus(
      lookahead(inner_adamw(), num_inner_steps=2, slow_step_size=0.4), params, 2, 3, "opaque"
    )
    assert_trees_close(got, want, rtol=1e-6, atol=1e-7)


class StateTest(absltest.TestCase):
  def test_inner_state_persists_across_outer_steps(self):
    params = problems.make_params(jnp.float32)
    _, state = run_nexus(lookahead(inner_adamw(), num_inner_steps=3), params, 3, 2, "opaque")
    self.assertEqual(int(optax.tree.get(state.inner_state, "count")), 6)  # 2 outer steps × K = 3
    self.assertEqual(int(state.count), 2)

  def test_params_stay_a_plain_tree(self):
    params = problems.make_params(jnp.float32)
    got, _ = run_nexus(
      snoo(inner_adamw(), num_inner_steps=2, outer_learning_rate=0.7), params, 2, 1, "opaque"
    )
    self.assertEqual(jax.tree.structure(got), jax.tree.structure(params))


class ValidationTest(parameterized.TestCase):
  @parameterized.parameters(0.0, 1.5, float("nan"))
  def test_slow_step_size_outside_unit_interval(self, alpha):
    with self.assertRaisesRegex(ValueError, "slow_step_size"):
      lookahead(inner_adamw(), num_inner_steps=2, slow_step_size=alpha)

  def test_momentum_of_one(self):
    with self.assertRaisesRegex(ValueError, "outer_momentum"):
      snoo(inner_adamw(), num_inner_steps=2, outer_learning_rate=0.7, outer_momentum=1.0)

  def test_inner_not_a_transformation(self):
    with self.assertRaisesRegex(TypeError, "inner must be an Optax"):
      lookahead(0.1, num_inner_steps=2)

  def test_unknown_mode(self):
    with self.assertRaisesRegex(ValueError, "mode="):
      snoo(inner_adamw(), num_inner_steps=2, outer_learning_rate=0.7, mode="eager")

  def test_zero_inner_steps(self):
    with self.assertRaisesRegex(ValueError, "num_inner_steps"):
      lookahead(inner_adamw(), num_inner_steps=0)


if __name__ == "__main__":
  absltest.main()
