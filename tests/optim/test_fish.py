"""Fish against its definition (Shi et al. 2021, Algorithm 1), written as a plain loop."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np

from nexus.optim._fish import fish
from tests.optim import problems
from tests.optim.test_nexus import run_nexus


def reference_fish(params, alpha, epsilon, num_inner_steps, num_outer_steps):
  """φ ← θ; φ ← φ − α ∇L_m(φ) for each micro-batch m; θ ← θ + ε (φ − θ) = θ − ε (θ − φ)."""
  theta, _ = problems.reference_two_loop(
    params,
    num_inner_steps,
    num_outer_steps,
    problems.sgd_rule(alpha),
    problems.sgd_rule(epsilon),
  )
  return theta


class FishTest(parameterized.TestCase):
  @parameterized.product(num_inner_steps=(1, 3), mode=("opaque", "transparent"))
  def test_matches_definition(self, num_inner_steps, mode):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      tx = fish(0.05, 0.3, num_inner_steps=num_inner_steps, mode=mode)
      got, _ = run_nexus(tx, params, num_inner_steps, 3, mode)
      want = reference_fish(params, 0.05, 0.3, num_inner_steps, 3)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)

  @parameterized.parameters(0.0, 1.2)
  def test_meta_step_size_outside_unit_interval(self, epsilon):
    with self.assertRaisesRegex(ValueError, "meta_step_size"):
      fish(0.05, epsilon, num_inner_steps=2)


if __name__ == "__main__":
  absltest.main()
