"""SAM over micro-batches against its definition (Foret et al. 2021), written as a plain loop."""

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.optim._sam import microbatch_sam
from tests.optim import problems

NUM_MICROBATCHES = 3


def mean_gradient(params):
  grads = [jax.grad(problems.source_loss)(params, i) for i in range(NUM_MICROBATCHES)]
  return jax.tree.map(lambda *g: sum(g) / NUM_MICROBATCHES, *grads)


def reference_sam(params, optimizer, rho, num_steps):
  """ε = ρ ḡ(θ)/‖ḡ(θ)‖;  θ ← θ + optimizer.update(ḡ(θ + ε))."""
  state = optimizer.init(params)
  for _ in range(num_steps):
    grad = mean_gradient(params)
    norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad)))
    perturbed = jax.tree.map(lambda p, g: p + rho * g / norm, params, grad)
    updates, state = optimizer.update(mean_gradient(perturbed), state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
  return params


def run_sam(tx, params, num_steps, **grad_fn_kwargs):
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(p, s, p, **grad_fn_kwargs))
  for _ in range(num_steps):
    updates, state = step(params, state)
    params = optax.apply_updates(params, updates)
  return params, state


class MicrobatchSAMTest(absltest.TestCase):
  def test_matches_definition(self):
    with jax.enable_x64(True):
      params = problems.make_params(jnp.float64)
      optimizer = optax.adamw(0.05, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.1)
      tx = microbatch_sam(optimizer, rho=0.1, num_microbatches=NUM_MICROBATCHES)
      got, _ = run_sam(tx, params, 3, loss_fn=problems.source_loss)
      want = reference_sam(params, optimizer, 0.1, 3)
      for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)

  def test_value_and_grad_fn_reports_the_losses_at_theta(self):
    params = problems.make_params(jnp.float32)
    tx = microbatch_sam(optax.sgd(0.01), rho=0.05, num_microbatches=NUM_MICROBATCHES)
    value_and_grad_fn = lambda p, i: jax.value_and_grad(problems.source_loss)(p, i)
    _, state = run_sam(tx, params, 1, value_and_grad_fn=value_and_grad_fn)
    want = [problems.source_loss(params, i) for i in range(NUM_MICROBATCHES)]
    np.testing.assert_allclose(optax.tree.get(state, "diagnostics").inner_losses, want, rtol=1e-6)

  def test_needs_exactly_one_gradient_function(self):
    params = problems.make_params(jnp.float32)
    tx = microbatch_sam(optax.sgd(0.01), rho=0.05, num_microbatches=NUM_MICROBATCHES)
    with self.assertRaisesRegex(ValueError, "exactly one of loss_fn"):
      tx.update(params, tx.init(params), params)
    with self.assertRaisesRegex(ValueError, "exactly one of loss_fn"):
      tx.update(
        params, tx.init(params), params, loss_fn=problems.source_loss, grad_fn=lambda p, i: p
      )

  def test_invalid_arguments(self):
    with self.assertRaisesRegex(ValueError, "rho"):
      microbatch_sam(optax.sgd(0.01), rho=0.0, num_microbatches=2)
    with self.assertRaisesRegex(ValueError, "num_microbatches"):
      microbatch_sam(optax.sgd(0.01), rho=0.05, num_microbatches=0)


if __name__ == "__main__":
  absltest.main()
