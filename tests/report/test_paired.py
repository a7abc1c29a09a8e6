"""Paired differences by seed: coverage of the intervals, the gain from pairing, exact cases, tables."""

from absl.testing import absltest
import numpy as np
from scipy import stats

from nexus.report import paired

TRUE_DIFFERENCE = 0.3


def coverage(num_seeds, num_trials, **kwargs):
  """Fraction of synthetic studies whose interval covers the true mean difference (normal noise)."""
  rng = np.random.default_rng(0)
  covered = 0
  for _ in range(num_trials):
    d = TRUE_DIFFERENCE + rng.normal(0.0, 1.0, num_seeds)
    interval = paired.interval_of_mean(d, **kwargs)
    covered += interval.low <= TRUE_DIFFERENCE <= interval.high
  return covered / num_trials


class IntervalTest(absltest.TestCase):
  def test_t_interval_covers_the_true_difference_95_percent_of_the_time_at_five_seeds(self):
    # 2000 trials: the Monte Carlo standard error of a 95% coverage is 0.005.
    self.assertBetween(coverage(5, 2000), 0.935, 0.965)

  def test_bootstrap_covers_at_many_seeds_but_not_at_five(self):
    # Why t is the default: at 5 seeds the percentile bootstrap is too narrow (about 84%); at 40
    # seeds it is near its level (slightly under: normal tails; 1000 trials give a standard error of
    # 0.007).
    self.assertBetween(coverage(40, 1000, method="bootstrap", num_resamples=1000), 0.9, 0.965)
    self.assertLess(coverage(5, 1000, method="bootstrap", num_resamples=1000), 0.88)

  def test_pairing_removes_a_shared_seed_offset(self):
    rng = np.random.default_rng(1)
    offsets = rng.normal(0.0, 1.0, 6)  # per-seed difficulty, shared by both methods
    baseline = {s: 2.0 + offsets[s] + rng.normal(0.0, 0.01) for s in range(6)}
    method = {s: 2.0 + TRUE_DIFFERENCE + offsets[s] + rng.normal(0.0, 0.01) for s in range(6)}
    got = paired.paired_difference(method, baseline)
    self.assertLess(got.low, TRUE_DIFFERENCE)
    self.assertGreater(got.high, TRUE_DIFFERENCE)
    # Welch's unpaired interval keeps the offsets' spread in the error bars.
    a, b = np.asarray(list(method.values())), np.asarray(list(baseline.values()))
    unpaired = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    self.assertLess(got.high - got.low, 0.1 * (unpaired.high - unpaired.low))
    self.assertLess(unpaired.low, 0.0)  # unpaired, the effect is not even resolved

  def test_a_constant_difference_has_a_zero_width_interval(self):
    baseline = {0: 1.0, 1: 1.5, 2: 0.7}
    for method in paired.METHODS:
      same = paired.paired_difference(baseline, baseline, method=method)
      self.assertEqual((same.mean, same.low, same.high), (0.0, 0.0, 0.0))
      shifted = paired.paired_difference(
        {s: v + 0.25 for s, v in baseline.items()}, baseline, method=method
      )
      np.testing.assert_allclose([shifted.mean, shifted.low, shifted.high], 0.25, atol=1e-12)

  def test_t_interval_matches_the_formula(self):
    d = np.asarray([0.1, -0.2, 0.4, 0.3])
    got = paired.interval_of_mean(d, confidence=0.9)
    half = stats.t.ppf(0.95, 3) * np.std(d, ddof=1) / 2.0
    np.testing.assert_allclose([got.low, got.high], [d.mean() - half, d.mean() + half])
    self.assertEqual((got.num_pairs, got.method, got.confidence), (4, "t", 0.9))

  def test_bootstrap_is_deterministic_and_seeded(self):
    d = [0.1, -0.2, 0.4, 0.3, 0.05]
    first = paired.interval_of_mean(d, method="bootstrap", num_resamples=500)
    self.assertEqual(first, paired.interval_of_mean(d, method="bootstrap", num_resamples=500))
    self.assertNotEqual(
      first, paired.interval_of_mean(d, method="bootstrap", num_resamples=500, seed=1)
    )

  def test_bad_input(self):
    with self.assertRaisesRegex(ValueError, "at least two finite"):
      paired.interval_of_mean([0.1])
    with self.assertRaisesRegex(ValueError, "at least two finite"):
      paired.interval_of_mean([0.1, float("nan")])
    with self.assertRaisesRegex(ValueError, "confidence"):
      paired.interval_of_mean([0.1, 0.2], confidence=95)
    with self.assertRaisesRegex(ValueError, "method"):
      paired.interval_of_mean([0.1, 0.2], method="z")
    with self.assertRaisesRegex(ValueError, "same seeds"):
      paired.paired_difference({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0})


class TableTest(absltest.TestCase):
  MEASUREMENTS = {
    ("adamw", 0): {"ood/docs": 2.0, "ood/math": 1.0},
    ("adamw", 1): {"ood/docs": 2.2, "ood/math": 1.4},
    ("adamw", 2): {"ood/docs": 2.1, "ood/math": 1.1},
    ("nexus", 0): {"ood/docs": 1.9, "ood/math": 1.2},
    ("nexus", 1): {"ood/docs": 2.1, "ood/math": 1.62},
    ("nexus", 2): {"ood/docs": 1.98, "ood/math": 1.3},
  }

  def test_per_metric_and_macro_rows(self):
    table = paired.paired_table(
      self.MEASUREMENTS,
      baseline="adamw",
      metrics=["ood/docs", "ood/math"],
      macros={"ood/macro": ["ood/docs", "ood/math"]},
    )
    self.assertEqual(list(table), ["nexus"])
    rows = table["nexus"]
    self.assertEqual(list(rows), ["ood/docs", "ood/math", "ood/macro"])
    np.testing.assert_allclose(rows["ood/docs"].mean, -0.1066667, rtol=1e-5)
    np.testing.assert_allclose(rows["ood/math"].mean, 0.2066667, rtol=1e-5)
    # Opposite moves of two sources: the macro is their mean, which hides both.
    np.testing.assert_allclose(
      rows["ood/macro"].mean, (rows["ood/docs"].mean + rows["ood/math"].mean) / 2
    )
    self.assertLess(rows["ood/docs"].high, 0.0)
    self.assertGreater(rows["ood/math"].low, 0.0)
    text = paired.format_table(table, baseline="adamw")
    self.assertIn("| nexus | ood/math | +0.2067 |", text)
    self.assertIn("95% t | higher |", text)
    self.assertIn("| nexus | ood/docs | -0.1067 |", text)
    self.assertEqual(
      [paired.reading(rows[m]) for m in ("ood/docs", "ood/math")], ["lower", "higher"]
    )
    straddling = paired.Interval(
      mean=0.1, low=-0.2, high=0.4, num_pairs=5, confidence=0.95, method="t"
    )
    self.assertEqual(paired.reading(straddling), "no detected difference")

  def test_missing_metric_or_baseline_is_an_error(self):
    broken = dict(self.MEASUREMENTS)
    broken[("nexus", 1)] = {"ood/docs": 2.0}
    with self.assertRaisesRegex(ValueError, "ood/math"):
      paired.paired_table(broken, baseline="adamw", metrics=["ood/math"])
    with self.assertRaisesRegex(ValueError, "macro 'm'"):
      paired.paired_table(
        broken, baseline="adamw", metrics=[], macros={"m": ["ood/docs", "ood/math"]}
      )
    with self.assertRaisesRegex(ValueError, "baseline 'sgd'"):
      paired.paired_table(self.MEASUREMENTS, baseline="sgd", metrics=["ood/docs"])


if __name__ == "__main__":
  absltest.main()
