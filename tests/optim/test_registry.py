"""Every registered optimizer runs in the one calling convention and trains; the table's choices hold."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.optim import registry
from nexus.optim.schedules import tied_inner_learning_rate
from tests.optim import problems

K = problems.NUM_SOURCES  # micro-batch i of every step is source i


def total_loss(params):
  return sum(problems.source_loss(params, s) for s in range(K))


def make_step(tx):
  """One outer step, fed the way the trainer feeds every method: ``loss_fn(params, i)``."""

  def step(params, state):
    updates, state = tx.update(params, state, params, loss_fn=problems.source_loss)
    return optax.apply_updates(params, updates), state

  return jax.jit(step)


def trainer_hyperparameters(**overrides):
  """The keyword set ``nexus.train.optimizer`` passes, with schedules for both learning rates."""
  learning_rate = optax.cosine_decay_schedule(0.02, 20, alpha=0.1)
  hyperparameters = dict(
    learning_rate=learning_rate,
    b1=0.9,
    b2=0.95,
    eps=1e-10,
    weight_decay=0.0,
    clip_norm=1.0,
    num_inner_steps=K,
    inner_learning_rate=tied_inner_learning_rate(0.05, learning_rate, 0.02),
    normalize="global",
    pseudo_gradient_scale="raw",
  )
  hyperparameters.update(overrides)
  return hyperparameters


def run(name, num_steps, **overrides):
  tx = registry.build(name, **trainer_hyperparameters(**overrides))
  params = problems.make_params(jnp.float32)
  state = tx.init(params)
  step = make_step(tx)
  for _ in range(num_steps):
    params, state = step(params, state)
  return params, state


class EveryMethodTest(parameterized.TestCase):
  @parameterized.parameters(*sorted(registry.METHODS))
  def test_trains_and_reports_the_microbatch_losses(self, name):
    params, state = run(name, 12)
    initial = float(total_loss(problems.make_params(jnp.float32)))
    final = float(total_loss(params))
    self.assertLess(final, 0.97 * initial, f"{name}: loss {initial:.4f} -> {final:.4f}")
    losses = optax.tree.get(state, "diagnostics").inner_losses  # what the trainer logs
    self.assertEqual(losses.shape, (K,))
    self.assertTrue(bool(jnp.all(jnp.isfinite(losses))))

  @parameterized.parameters("adamw", "nexus_first_order", "pcgrad", "sam")
  def test_methods_at_theta_report_the_losses_at_theta(self, name):
    params, state = run(name, 3)
    del params  # The losses are those of the last step's starting point, recomputed here.
    params_before, _ = run(name, 2)
    want = [problems.source_loss(params_before, i) for i in range(K)]
    np.testing.assert_allclose(optax.tree.get(state, "inner_losses"), want, rtol=1e-5)


class TableChoicesTest(absltest.TestCase):
  def test_adamw_clips_the_mean_gradient(self):
    params = {"w": jnp.zeros(3)}
    grad = {"w": jnp.asarray([30.0, -40.0, 0.0])}  # norm 50
    for clip_norm, scale in ((1.0, 1 / 50), (0.0, 1.0), (None, 1.0)):
      tx = registry.build("adamw", learning_rate=0.1, num_inner_steps=2, clip_norm=clip_norm)
      got, _ = tx.update(params, tx.init(params), params, grad_fn=lambda p, i: grad)
      want_tx = optax.adamw(0.1)
      want, _ = want_tx.update(
        jax.tree.map(lambda g: scale * g, grad), want_tx.init(params), params
      )
      np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)

  def test_lookahead_schedule_counts_outer_steps(self):
    # η = 0.05 in outer step 0 only: the K inner steps of step 0 all use it, and step 1 does not move.
    first_step_only = lambda count: jnp.where(count == 0, 0.05, 0.0)
    after_one, _ = run("lookahead", 1, learning_rate=first_step_only)
    constant, _ = run("lookahead", 1, learning_rate=0.05)
    after_two, _ = run("lookahead", 2, learning_rate=first_step_only)
    for a, c, b in zip(
      jax.tree.leaves(after_one), jax.tree.leaves(constant), jax.tree.leaves(after_two)
    ):
      np.testing.assert_allclose(a, c, rtol=1e-6)
      np.testing.assert_allclose(b, a, rtol=1e-6)

  def test_first_order_accepts_a_gamma_schedule_and_inverse_gamma(self):
    constant, _ = run("nexus_first_order", 3, inner_learning_rate=0.05)
    scheduled, _ = run("nexus_first_order", 3, inner_learning_rate=lambda count: 0.05)
    unit, _ = run("nexus_first_order", 3, inner_learning_rate=1.0)
    inverse, _ = run("nexus_first_order", 3, pseudo_gradient_scale="inverse_gamma")
    for c, s, u, i in zip(*map(jax.tree.leaves, (constant, scheduled, unit, inverse))):
      np.testing.assert_allclose(s, c, rtol=1e-6)
      np.testing.assert_allclose(i, u, rtol=1e-6)

  def test_pcgrad_without_conflicts_is_adamw_accumulation(self):
    stacked = {
      "w": jnp.asarray([[1.0, 2.0], [3.0, 1.0], [0.5, 0.5]])
    }  # pairwise inner products > 0
    params = {"w": jnp.zeros(2)}
    grad_fn = lambda p, i: {"w": stacked["w"][i]}
    pcgrad_tx = registry.build("pcgrad", learning_rate=0.1, num_inner_steps=3)
    adamw_tx = registry.build("adamw", learning_rate=0.1, num_inner_steps=3)
    got, _ = pcgrad_tx.update(params, pcgrad_tx.init(params), params, grad_fn=grad_fn)
    want, _ = adamw_tx.update(params, adamw_tx.init(params), params, grad_fn=grad_fn)
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)


class ErrorsTest(absltest.TestCase):
  def test_unknown_method(self):
    with self.assertRaisesRegex(ValueError, "unknown optimizer 'adam'"):
      registry.build("adam", learning_rate=0.1, num_inner_steps=2)

  def test_unknown_hyperparameter(self):
    with self.assertRaisesRegex(ValueError, r"unknown hyperparameters \['momentum'\]"):
      registry.build("snoo", learning_rate=0.1, num_inner_steps=2, momentum=0.9)

  def test_missing_required_hyperparameter(self):
    with self.assertRaisesRegex(ValueError, r"needs the hyperparameters \['num_inner_steps'\]"):
      registry.build("adamw", learning_rate=0.1)

  def test_invalid_values(self):
    with self.assertRaisesRegex(ValueError, "clip_norm"):
      registry.build("adamw", learning_rate=0.1, num_inner_steps=2, clip_norm=-1.0)
    with self.assertRaisesRegex(ValueError, "raw"):
      registry.build("order_free", **trainer_hyperparameters(pseudo_gradient_scale="inverse_gamma"))
    with self.assertRaisesRegex(ValueError, "inner_learning_rate"):
      registry.build("nexus_first_order", learning_rate=0.1, num_inner_steps=2)
    with self.assertRaisesRegex(ValueError, "normalize="):
      registry.build("nexus", **trainer_hyperparameters(normalize="layer"))

  def test_values_that_would_train_nothing_or_diverge_are_refused(self):
    for name, overrides, message in (
      ("nexus", dict(inner_learning_rate=0.0), r"γ = 0 makes nexus train nothing"),
      ("nexus", dict(inner_learning_rate=float("nan")), "inner_learning_rate must be in"),
      ("order_free", dict(inner_learning_rate=0.0), "inner_learning_rate"),
      ("adamw", dict(b1=2.0), r"b1 must be in \[0.0, 1.0\), got 2.0"),
      ("adamw", dict(b2=1.0), "b2 must be in"),
      ("adamw", dict(eps=-1.0), "eps must be in"),
      ("adamw", dict(weight_decay=float("inf")), "weight_decay must be in"),
      ("adamw", dict(learning_rate=0.0), "learning_rate must be in"),
      ("adamw", dict(num_inner_steps=0), "num_inner_steps must be >= 1"),
    ):
      with self.subTest(name=name, overrides=overrides):
        with self.assertRaisesRegex(ValueError, message):
          registry.build(name, **trainer_hyperparameters(**overrides))


if __name__ == "__main__":
  absltest.main()
