"""Matched-training-loss interpolation on synthetic curves with known answers."""

from absl.testing import absltest
import numpy as np

from nexus.report import matched


class MonotoneCurveTest(absltest.TestCase):
  def test_running_minimum(self):
    np.testing.assert_allclose(
      matched.monotone_loss_curve([3.0, 2.0, 2.5, 1.5]), [3.0, 2.0, 2.0, 1.5]
    )

  def test_trailing_mean_then_minimum(self):
    # Trailing means over 2: 3, 2.5, 2.25, 2, 2.5 -> running minimum.
    np.testing.assert_allclose(
      matched.monotone_loss_curve([3.0, 2.0, 2.5, 1.5, 3.5], window=2), [3.0, 2.5, 2.25, 2.0, 2.0]
    )

  def test_loss_between_logged_steps_is_linear_in_step(self):
    got = matched.loss_at_steps([0, 10, 20], [4.0, 3.0, 3.5], [5, 15, 20, 25])
    np.testing.assert_allclose(got, [3.5, 3.0, 3.0, np.nan])


class InterpolateAtLevelsTest(absltest.TestCase):
  def test_linear_in_loss_without_extrapolation(self):
    got = matched.interpolate_at_levels(
      [4.0, 3.0, 2.0], [10.0, 20.0, 40.0], [3.5, 2.5, 3.0, 4.0, 4.5, 1.5]
    )
    np.testing.assert_allclose(got, [15.0, 30.0, 20.0, 10.0, np.nan, np.nan])

  def test_plateau_resolves_to_the_first_evaluation_reaching_the_level(self):
    np.testing.assert_allclose(
      matched.interpolate_at_levels([4.0, 3.0, 3.0, 2.0], [0.0, 1.0, 5.0, 9.0], [3.0]), [1.0]
    )

  def test_missing_values_are_skipped(self):
    got = matched.interpolate_at_levels([4.0, 3.0, 2.0], [10.0, np.nan, 30.0], [3.0])
    np.testing.assert_allclose(got, [20.0])

  def test_metric_linear_in_loss_is_recovered_exactly(self):
    # Loss 5 − 0.01·step logged every 10 steps (with an upward spike the running minimum removes);
    # the metric 2·loss + 1 at evaluation steps, one off the logging grid.
    loss_steps = np.arange(0, 301, 10)
    losses = 5.0 - 0.01 * loss_steps
    losses[12] += 0.3
    metric_steps = np.asarray([50, 105, 150, 200, 300])
    metric = 2 * (5.0 - 0.01 * metric_steps) + 1
    got = matched.matched_metric(
      loss_steps, losses, metric_steps, metric, [4.2, 3.0, 2.25, 4.6, 1.9]
    )
    np.testing.assert_allclose(got, [9.4, 7.0, 5.5, np.nan, np.nan], rtol=1e-12)

  def test_bad_input(self):
    with self.assertRaisesRegex(ValueError, "strictly increasing"):
      matched.loss_at_steps([0, 10, 10], [3.0, 2.0, 1.0], [5])
    with self.assertRaisesRegex(ValueError, "window"):
      matched.monotone_loss_curve([1.0], window=0)
    with self.assertRaisesRegex(ValueError, "non-increasing"):
      matched.interpolate_at_levels([2.0, 3.0], [1.0, 1.0], [2.5])
    with self.assertRaisesRegex(ValueError, "finite"):
      matched.monotone_loss_curve([1.0, np.nan])


class LevelsAndAggregateTest(absltest.TestCase):
  def test_common_levels(self):
    got = matched.common_loss_levels([[4.0, 3.0, 2.0], [3.5, 2.5, 1.8]], 3)
    np.testing.assert_allclose(got, [3.5, 2.75, 2.0])
    np.testing.assert_allclose(
      matched.common_loss_levels([[4.0, 3.0, 2.0], [3.5, 2.5, 1.8]], 1), [2.0]
    )
    self.assertEmpty(matched.common_loss_levels([[4.0, 3.0], [2.5, 1.8]], 2))

  def test_aggregate(self):
    got = matched.aggregate([1.0, 3.0, np.nan])
    self.assertEqual((got.mean, got.count), (2.0, 2))
    np.testing.assert_allclose(got.std, np.sqrt(2.0))
    single = matched.aggregate([5.0])
    self.assertEqual((single.mean, single.count), (5.0, 1))
    self.assertTrue(np.isnan(single.std))
    self.assertEqual(matched.aggregate([np.nan]).count, 0)


if __name__ == "__main__":
  absltest.main()
