"""Closeness of per-source minima on quadratic sources, where SGD's fine-tuned points are known exactly."""

from absl.testing import absltest
import jax.numpy as jnp
import numpy as np
import optax

from nexus.measure import closeness
from tests.measure import quadratics

THETA_VECTOR = np.asarray([0.5, -1.0, 2.0, 0.0, 1.5, -0.5, 1.0])
CENTERS = np.asarray(
  [
    [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
    [-2.0, 0.5, 0.0, -2.0, 0.0, 1.0, 0.0],
    [0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 4.0],
  ]
)
LEARNING_RATE, NUM_STEPS = 0.1, 5
SGD = {"learning_rate": 0.1, "relative_drop": 0.5, "max_steps": 100}


def steps_to_drop(a, b, learning_rate, drop):
  """Steps of gradient descent until (1 − η)^{2n}·a + b ≤ (1 − drop)·(a + b): the loss of a quadratic whose
  batches' centers average to c, a = ½‖θ − c‖² and b the batches' mean ½‖offset‖²."""
  n = 0
  while (1 - learning_rate) ** (2 * n) * a + b > (1 - drop) * (a + b):
    n += 1
  return n


class ClosenessTest(absltest.TestCase):
  def test_sgd_on_quadratics_matches_the_closed_form(self):
    measure = closeness.make_closeness(
      quadratics.loss_fn, optax.sgd(LEARNING_RATE), num_steps=NUM_STEPS
    )
    got = measure(quadratics.tree(THETA_VECTOR), quadratics.batches(CENTERS))
    # θ̂_k = c_k + (1 − η)ⁿ (θ − c_k), so θ̂_k − θ = (1 − (1 − η)ⁿ)(c_k − θ).
    contraction = (1 - LEARNING_RATE) ** NUM_STEPS
    minima = CENTERS + contraction * (THETA_VECTOR - CENTERS)
    sq_dist = np.sum((minima - THETA_VECTOR) ** 2, axis=1)
    before = 0.5 * np.sum((THETA_VECTOR - CENTERS) ** 2, axis=1)
    np.testing.assert_allclose(got["closeness/mean_sq_dist"], np.mean(sq_dist), rtol=1e-5)
    np.testing.assert_allclose(
      got["closeness/spread"], np.mean(np.sum((minima - minima.mean(0)) ** 2, axis=1)), rtol=1e-5
    )
    for k in range(3):
      np.testing.assert_allclose(got[f"closeness/sq_dist/s{k}"], sq_dist[k], rtol=1e-5)
      np.testing.assert_allclose(got[f"closeness/loss_before/s{k}"], before[k], rtol=1e-6)
      np.testing.assert_allclose(
        got[f"closeness/loss_after/s{k}"], contraction**2 * before[k], rtol=1e-4
      )
      np.testing.assert_allclose(
        got[f"closeness/loss_drop/s{k}"], (1 - contraction**2) * before[k], rtol=1e-5
      )
      self.assertEqual(
        (got[f"closeness/steps/s{k}"], got[f"closeness/reached/s{k}"]), (NUM_STEPS, 1.0)
      )

  def test_batches_are_cycled(self):
    # Two batches per source (centers c ± e), three steps: batches 0, 1, 0.
    offset = np.linspace(-1.0, 1.0, 7)
    got = closeness.make_closeness(quadratics.loss_fn, optax.sgd(LEARNING_RATE), num_steps=3)(
      quadratics.tree(THETA_VECTOR), quadratics.batches(CENTERS[:1], [offset, -offset])
    )
    point = THETA_VECTOR
    for target in (CENTERS[0] + offset, CENTERS[0] - offset, CENTERS[0] + offset):
      point = point - LEARNING_RATE * (point - target)
    np.testing.assert_allclose(
      got["closeness/mean_sq_dist"], np.sum((point - THETA_VECTOR) ** 2), rtol=1e-5
    )
    np.testing.assert_allclose(got["closeness/spread"], 0.0, atol=1e-7)  # one source: no spread

  def test_identical_sources_have_no_spread(self):
    got = closeness.make_closeness(quadratics.loss_fn, optax.adamw(0.05), num_steps=4)(
      quadratics.tree(THETA_VECTOR), quadratics.batches([CENTERS[1]] * 3)
    )
    self.assertGreater(got["closeness/mean_sq_dist"], 1e-3)
    self.assertEqual(got["closeness/spread"], 0.0)

  def test_bfloat16_params_are_fine_tuned_in_float32(self):
    # One step of 1e-3·(θ − c) is below bf16 resolution at θ ≈ 2, but not in the float32 copy.
    theta = quadratics.tree(THETA_VECTOR, jnp.bfloat16)
    got = closeness.make_closeness(quadratics.loss_fn, optax.sgd(1e-3), num_steps=1)(
      theta, quadratics.batches(CENTERS[:1])
    )
    np.testing.assert_allclose(
      got["closeness/mean_sq_dist"], 1e-6 * np.sum((THETA_VECTOR - CENTERS[0]) ** 2), rtol=1e-4
    )

  def test_compiles_once(self):
    traces = []

    def counting_loss(params, batch):
      traces.append(1)
      return quadratics.loss_fn(params, batch)

    measure = closeness.make_closeness(counting_loss, optax.sgd(LEARNING_RATE), num_steps=2)
    measure(quadratics.tree(THETA_VECTOR), quadratics.batches(CENTERS))
    first = len(traces)
    measure(quadratics.tree(THETA_VECTOR + 1.0), quadratics.batches(CENTERS + 1.0))
    self.assertEqual(len(traces), first)

  def test_bad_input(self):
    for kwargs, message in (
      ({"max_steps": 0}, "max_steps"),
      ({"learning_rate": -0.1}, "learning_rate"),
      ({"relative_drop": 1.0}, "relative_drop"),
      ({"relative_drop": 0}, "relative_drop"),
    ):
      with self.assertRaisesRegex(ValueError, message):
        closeness.make_sgd_closeness(quadratics.loss_fn, **{**SGD, **kwargs})
    with self.assertRaisesRegex(ValueError, "num_steps"):
      closeness.make_closeness(quadratics.loss_fn, optax.sgd(0.1), num_steps=0)
    with self.assertRaisesRegex(ValueError, "optax.GradientTransformation"):
      closeness.make_closeness(quadratics.loss_fn, 0.1, num_steps=2)


class SgdClosenessTest(absltest.TestCase):
  def test_stops_at_the_relative_drop_as_in_the_closed_form(self):
    measure = closeness.make_sgd_closeness(quadratics.loss_fn, **SGD)
    got = measure(quadratics.tree(THETA_VECTOR), quadratics.batches(CENTERS))
    before = 0.5 * np.sum((THETA_VECTOR - CENTERS) ** 2, axis=1)
    # Pure quadratics: the relative drop after n steps is 1 − (1 − η)^{2n} for every source.
    steps = steps_to_drop(1.0, 0.0, SGD["learning_rate"], SGD["relative_drop"])
    self.assertEqual(steps, 4)
    moved = 1 - (1 - SGD["learning_rate"]) ** steps
    minima = THETA_VECTOR + moved * (CENTERS - THETA_VECTOR)
    np.testing.assert_allclose(
      got["closeness/mean_sq_dist"], moved**2 * np.mean(2 * before), rtol=1e-5
    )
    np.testing.assert_allclose(
      got["closeness/spread"], np.mean(np.sum((minima - minima.mean(0)) ** 2, axis=1)), rtol=1e-5
    )
    self.assertEqual((got["closeness/mean_steps"], got["closeness/all_reached"]), (steps, 1.0))
    for k in range(3):
      self.assertEqual(got[f"closeness/steps/s{k}"], steps)
      np.testing.assert_allclose(
        got[f"closeness/loss_after/s{k}"], (1 - moved) ** 2 * before[k], rtol=1e-5
      )
      self.assertLessEqual(
        got[f"closeness/loss_after/s{k}"], (1 - SGD["relative_drop"]) * before[k]
      )

  def test_converges_to_the_per_source_minima(self):
    # A drop of 1 − 1e-10 is convergence: θ̂_k = c_k, the known per-source minima.
    measure = closeness.make_sgd_closeness(
      quadratics.loss_fn, learning_rate=0.5, relative_drop=1 - 1e-10, max_steps=100
    )
    got = measure(quadratics.tree(THETA_VECTOR), quadratics.batches(CENTERS))
    np.testing.assert_allclose(
      got["closeness/mean_sq_dist"], np.mean(np.sum((CENTERS - THETA_VECTOR) ** 2, 1)), rtol=1e-4
    )
    np.testing.assert_allclose(
      got["closeness/spread"], np.mean(np.sum((CENTERS - CENTERS.mean(0)) ** 2, 1)), rtol=1e-4
    )
    self.assertEqual(got["closeness/all_reached"], 1.0)

  def test_each_source_takes_the_steps_it_needs_from_the_full_batch(self):
    # Batches at c ± e: the full-batch gradient is θ − c, but the loss has a floor b = ½‖e‖², so a
    # source whose θ is farther from c (larger a) reaches the same relative drop sooner.
    offset = np.full(7, 0.5)
    got = closeness.make_sgd_closeness(quadratics.loss_fn, **SGD)(
      quadratics.tree(THETA_VECTOR), quadratics.batches(CENTERS, [offset, -offset])
    )
    b = 0.5 * np.sum(offset**2)
    expected = [
      steps_to_drop(
        0.5 * np.sum((THETA_VECTOR - c) ** 2), b, SGD["learning_rate"], SGD["relative_drop"]
      )
      for c in CENTERS
    ]
    self.assertGreater(len(set(expected)), 1)
    self.assertEqual([got[f"closeness/steps/s{k}"] for k in range(3)], expected)
    sq_dist = [
      (1 - (1 - SGD["learning_rate"]) ** n) ** 2 * np.sum((THETA_VECTOR - c) ** 2)
      for n, c in zip(expected, CENTERS)
    ]
    np.testing.assert_allclose(
      [got[f"closeness/sq_dist/s{k}"] for k in range(3)], sq_dist, rtol=1e-5
    )

  def test_a_diverging_descent_stops_at_once(self):
    # η = 2.5 multiplies θ − c by −1.5 per step: the loss grows, so the descent stops after one
    # step.
    got = closeness.make_sgd_closeness(quadratics.loss_fn, **{**SGD, "learning_rate": 2.5})(
      quadratics.tree(THETA_VECTOR), quadratics.batches(CENTERS[:1])
    )
    self.assertEqual((got["closeness/steps/s0"], got["closeness/reached/s0"]), (1, 0.0))
    self.assertGreater(got["closeness/loss_after/s0"], got["closeness/loss_before/s0"])

  def test_a_source_out_of_budget_is_reported(self):
    # With the floor b above the target, the drop is unreachable: the budget ends the descent.
    offset = np.full(7, 3.0)
    got = closeness.make_sgd_closeness(quadratics.loss_fn, **{**SGD, "max_steps": 7})(
      quadratics.tree(THETA_VECTOR), quadratics.batches(CENTERS[:1], [offset, -offset])
    )
    self.assertEqual(
      (got["closeness/steps/s0"], got["closeness/reached/s0"], got["closeness/all_reached"]),
      (7, 0.0, 0.0),
    )
    np.testing.assert_allclose(
      got["closeness/sq_dist/s0"],
      (1 - 0.9**7) ** 2 * np.sum((THETA_VECTOR - CENTERS[0]) ** 2),
      rtol=1e-5,
    )


if __name__ == "__main__":
  absltest.main()
