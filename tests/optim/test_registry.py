"""Every registered optimizer runs in the one calling convention and trains; the table's choices hold."""

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.optim import registry
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


def opt_config(name, **overrides):
  """The ``opt`` section as the trainer passes it: cosine η from 0.02 over 20 steps, γ tied at 0.05."""
  fields = dict(
    name=name,
    learning_rate=0.02,
    schedule="cosine",
    warmup_steps=0,
    final_lr_fraction=0.1,
    weight_decay=0.0,
    inner_learning_rate=0.05,
  )
  fields.update(overrides)
  return registry.OptimizerConfig(**fields)


def build(name, num_inner_steps=K, **overrides):
  return registry.build(
    opt_config(name, **overrides), num_inner_steps=num_inner_steps, total_steps=20
  )


def run(name, num_steps, **overrides):
  tx = build(name, **overrides)
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
      tx = build("adamw", 2, schedule="constant", learning_rate=0.1, clip_norm=clip_norm)
      got, _ = tx.update(params, tx.init(params), params, grad_fn=lambda p, i: grad)
      want_tx = optax.adamw(0.1, b2=0.95, eps=1e-10, weight_decay=0.0)
      want, _ = want_tx.update(
        jax.tree.map(lambda g, s=scale: s * g, grad), want_tx.init(params), params
      )
      np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)

  def test_lookahead_schedule_counts_outer_steps(self):
    # One warmup step: η = 0 in outer step 0, for all K of its inner steps, so step 0 cannot move
    # the params; a schedule read at the inner count would give inner steps 1..K-1 the peak rate.
    initial = problems.make_params(jnp.float32)
    after_one, _ = run("lookahead", 1, schedule="constant", warmup_steps=1)
    after_two, _ = run("lookahead", 2, schedule="constant", warmup_steps=1)
    for start, one, two in zip(*map(jax.tree.leaves, (initial, after_one, after_two))):
      np.testing.assert_array_equal(one, start)
      self.assertGreater(float(jnp.max(jnp.abs(two - one))), 1e-4)

  def test_first_order_gamma_schedules_and_inverse_gamma(self):
    # Under a constant η the tied γ equals the constant γ; "inverse_gamma" feeds the plain sum (γ =
    # 1).
    constant = dict(schedule="constant", gamma_schedule="constant")
    fixed, _ = run("nexus_first_order", 3, **constant)
    tied, _ = run("nexus_first_order", 3, schedule="constant", gamma_schedule="tied")
    unit, _ = run("nexus_first_order", 3, inner_learning_rate=1.0, **constant)
    inverse, _ = run("nexus_first_order", 3, pseudo_gradient_scale="inverse_gamma", **constant)
    for c, t, u, i in zip(*map(jax.tree.leaves, (fixed, tied, unit, inverse))):
      np.testing.assert_allclose(t, c, rtol=1e-6)
      np.testing.assert_allclose(i, u, rtol=1e-6)

  def test_pcgrad_without_conflicts_is_adamw_accumulation(self):
    # Pairwise inner products > 0: no projection happens.
    stacked = {"w": jnp.asarray([[1.0, 2.0], [3.0, 1.0], [0.5, 0.5]])}
    params = {"w": jnp.zeros(2)}
    grad_fn = lambda p, i: {"w": stacked["w"][i]}
    pcgrad_tx, adamw_tx = build("pcgrad", 3), build("adamw", 3)
    got, _ = pcgrad_tx.update(params, pcgrad_tx.init(params), params, grad_fn=grad_fn)
    want, _ = adamw_tx.update(params, adamw_tx.init(params), params, grad_fn=grad_fn)
    np.testing.assert_allclose(got["w"], want["w"], rtol=1e-6)

  def test_defaults_are_the_config_sections(self):
    # One set of defaults: the command-line section is built from OptimizerConfig itself.
    from configs import base  # pylint: disable=g-import-not-at-top

    self.assertEqual(base.base_config("tiny").opt.to_dict(), registry.OptimizerConfig().__dict__)


class ErrorsTest(absltest.TestCase):
  def test_values_that_would_train_nothing_or_diverge_are_refused(self):
    for name, overrides, message in (
      ("adam", {}, r"opt.name='adam' is not one of"),
      ("nexus", dict(inner_learning_rate=0.0), r"γ = 0 makes nexus train nothing"),
      ("nexus", dict(inner_learning_rate=float("nan")), "inner_learning_rate must be in"),
      ("order_free", dict(inner_learning_rate=0.0), "inner_learning_rate"),
      ("order_free", dict(pseudo_gradient_scale="inverse_gamma"), "'raw' only"),
      ("nexus", dict(normalize="layer"), "opt.normalize='layer' is not one of"),
      ("adamw", dict(clip_norm=-1.0), "clip_norm"),
      ("adamw", dict(b1=2.0), r"b1 must be in \[0.0, 1.0\), got 2.0"),
      ("adamw", dict(b2=1.0), "b2 must be in"),
      ("adamw", dict(eps=-1.0), "eps must be in"),
      ("adamw", dict(weight_decay=float("inf")), "weight_decay must be in"),
      ("adamw", dict(learning_rate=0.0), "learning_rate must be in"),
      ("adamw", dict(schedule="linear"), "opt.schedule='linear' is not one of"),
      ("snoo", dict(outer_momentum=1.0), "outer_momentum must be in"),
    ):
      with self.subTest(name=name, overrides=overrides):
        with self.assertRaisesRegex(ValueError, message):
          opt_config(name, **overrides)

  def test_unknown_field_and_bad_inner_steps(self):
    with self.assertRaisesRegex(TypeError, "momentum"):
      registry.OptimizerConfig(momentum=0.9)
    with self.assertRaisesRegex(ValueError, "num_inner_steps must be >= 1"):
      build("adamw", 0)


if __name__ == "__main__":
  absltest.main()
