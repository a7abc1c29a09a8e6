"""Nexus with ``optax.contrib.muon`` as the outer optimizer, on a tree of 2D (Muon) and 1D (Adam) params."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np
import optax

import nexus
from tests.optim import problems
from tests.optim.test_nexus import run_nexus


class NexusMuonTest(absltest.TestCase):
  def test_matches_reference_loop_with_muon_outer(self):
    params = problems.make_params(
      jnp.float32
    )  # "a": 1D → Muon's Adam branch; "b": 2D → Newton–Schulz.
    outer = optax.contrib.muon(0.02, weight_decay=0.1, adam_weight_decay=0.1, consistent_rms=0.2)
    tx = nexus.nexus(outer, 0.05, num_inner_steps=3)
    got, state = run_nexus(tx, params, 3, 3, "opaque")
    want, _ = problems.reference_nexus(params, outer, 0.05, 3, 3)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    self.assertTrue(all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(got)))
    self.assertEqual(int(state.count), 3)

  def test_matrix_update_is_orthogonalized(self):
    # Muon's first update of a 2D leaf is (up to the Newton–Schulz approximation and the RMS scale)
    # an orthogonal matrix: its singular values are nearly equal, unlike those of the
    # pseudo-gradient, which an SGD outer with rate 1 returns as is (with a minus sign).
    params = problems.make_params(jnp.float32)
    grad_fn = lambda p, i: jax.grad(problems.source_loss)(p, problems.source_of(0, i, 3))

    def first_update(outer):
      tx = nexus.nexus(outer, 0.05, num_inner_steps=3)
      updates, _ = tx.update(params, tx.init(params), params, grad_fn=grad_fn)
      return np.asarray(updates["b"])

    muon_singular_values = np.linalg.svd(
      first_update(optax.contrib.muon(1.0, beta=0.0)), compute_uv=False
    )
    pseudo_gradient_singular_values = np.linalg.svd(first_update(optax.sgd(1.0)), compute_uv=False)
    self.assertLess(muon_singular_values[0] / muon_singular_values[-1], 1.5)
    self.assertGreater(
      pseudo_gradient_singular_values[0] / pseudo_gradient_singular_values[-1], 1.5
    )


if __name__ == "__main__":
  absltest.main()
