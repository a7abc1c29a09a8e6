"""Sweeps on closed-form objectives: equal budgets, bracketing extensions, bounds, seeds, summaries."""

import json
import math

from absl.testing import absltest

from nexus.report import tuning


def bowl(best_lr, best_gamma=0.1):
  """A validation loss with its minimum at (best_lr, best_gamma), quadratic in log10(lr) and γ."""
  calls = []

  def evaluate(method, settings, seed):
    calls.append((method, json.dumps(settings, sort_keys=True), seed))
    lr = settings["opt.learning_rate"]
    gamma = settings.get("opt.inner_learning_rate", best_gamma)
    return (math.log10(lr) - math.log10(best_lr)) ** 2 + (gamma - best_gamma) ** 2 + 0.01 * seed

  return evaluate, calls


class SweepTest(absltest.TestCase):
  def test_interior_optimum_needs_no_extension(self):
    evaluate, calls = bowl(1e-3)
    result = tuning.sweep_method("adamw", {"opt.learning_rate": [3e-4, 1e-3, 3e-3]}, evaluate)
    self.assertEqual(result.chosen, {"opt.learning_rate": 1e-3})
    self.assertTrue(result.bracketed)
    self.assertLen(calls, 3)
    self.assertEqual(result.notes, [])

  def test_edge_optimum_is_extended_geometrically_until_bracketed(self):
    evaluate, _ = bowl(3.2e-3)
    result = tuning.sweep_method(
      "adamw", {"opt.learning_rate": [1e-4, 3e-4, 1e-3]}, evaluate, max_extensions=5
    )
    tried = [p["settings"]["opt.learning_rate"] for p in result.points]
    # 1e-3 at the upper edge -> 1e-3·(1e-3/3e-4) = 3.33e-3 (better) -> 1.11e-2 (worse): bracketed.
    self.assertLen(tried, 5)
    self.assertAlmostEqual(tried[3], 1e-3 * 1e-3 / 3e-4)
    self.assertAlmostEqual(tried[4], tried[3] ** 2 / 1e-3)
    self.assertEqual(result.chosen["opt.learning_rate"], tried[3])
    self.assertTrue(result.bracketed)
    self.assertEqual([p["extension"] for p in result.points], [False] * 3 + [True] * 2)
    self.assertLen(result.notes, 2)
    self.assertIn("extended opt.learning_rate", result.notes[0])

  def test_extension_limit_is_reported(self):
    evaluate, _ = bowl(1.0)
    result = tuning.sweep_method(
      "adamw", {"opt.learning_rate": [1e-4, 1e-3]}, evaluate, max_extensions=2
    )
    self.assertLen(result.points, 4)
    self.assertFalse(result.bracketed)
    self.assertIn("NOT bracketed", result.notes[-1])

  def test_two_fields_extend_along_the_line_through_the_best_setting(self):
    evaluate, _ = bowl(1e-3, best_gamma=0.35)
    result = tuning.sweep_method(
      "nexus",
      {"opt.learning_rate": [3e-4, 1e-3, 3e-3], "opt.inner_learning_rate": [0.1, 0.2]},
      evaluate,
    )
    extensions = [p["settings"] for p in result.points if p["extension"]]
    # γ = 0.2 at the upper edge -> 0.4 (positive values: geometric), better -> 0.8, worse:
    # bracketed. The learning rate stays at its best value, which the grid already brackets.
    self.assertEqual(
      extensions,
      [
        {"opt.learning_rate": 1e-3, "opt.inner_learning_rate": 0.4},
        {"opt.learning_rate": 1e-3, "opt.inner_learning_rate": 0.8},
      ],
    )
    self.assertEqual(result.chosen, {"opt.learning_rate": 1e-3, "opt.inner_learning_rate": 0.4})
    self.assertTrue(result.bracketed)

  def test_bound_stops_an_extension(self):
    def evaluate(method, settings, seed):
      return settings["opt.final_lr_fraction"]  # lower is better, down to the bound 0

    result = tuning.sweep_method(
      "adamw",
      {"opt.final_lr_fraction": [0.0, 0.1]},
      evaluate,
      bounds={"opt.final_lr_fraction": (0.0, 1.0)},
    )
    self.assertLen(result.points, 2)
    self.assertFalse(result.bracketed)
    self.assertIn("outside its bound", result.notes[0])

  def test_integer_and_categorical_fields(self):
    def evaluate(method, settings, seed):
      return -settings["train.num_inner_steps"] + (settings["opt.normalize"] == "leaf")

    result = tuning.sweep_method(
      "nexus",
      {"train.num_inner_steps": [2, 4], "opt.normalize": ["global", "leaf"]},
      evaluate,
      max_extensions=1,
    )
    self.assertEqual(
      result.points[-1]["settings"], {"train.num_inner_steps": 8, "opt.normalize": "global"}
    )
    self.assertIsInstance(result.points[-1]["settings"]["train.num_inner_steps"], int)

  def test_seeds_are_averaged_and_divergence_loses(self):
    def evaluate(method, settings, seed):
      lr = settings["opt.learning_rate"]
      return float("nan") if lr > 5e-3 else -lr + seed

    result = tuning.sweep_method(
      "adamw", {"opt.learning_rate": [1e-3, 3e-3, 1e-2]}, evaluate, seeds=(0, 2)
    )
    self.assertEqual(result.chosen, {"opt.learning_rate": 3e-3})
    self.assertAlmostEqual(result.score, 1.0 - 3e-3)
    self.assertEqual(result.points[2]["score"], math.inf)
    self.assertEqual(result.num_runs, 6)
    with self.assertRaisesRegex(ValueError, "diverged"):
      tuning.sweep_method("adamw", {"opt.learning_rate": [1e-2]}, evaluate)

  def test_step_beyond(self):
    self.assertAlmostEqual(tuning.step_beyond([0.01, 0.03], 1), 0.09)
    self.assertAlmostEqual(tuning.step_beyond([0.01, 0.03], -1), 0.01 / 3)
    self.assertAlmostEqual(
      tuning.step_beyond([-1.0, 0.5], 1), 2.0
    )  # arithmetic when not all positive
    self.assertEqual(
      tuning.step_beyond([1, 2], -1), 0
    )  # integer fields stay integers (round(0.5) = 0)
    self.assertEqual(tuning.step_beyond([3, 4], 1), 5)


class SpecAndSummaryTest(absltest.TestCase):
  SPEC = tuning.SweepSpec(
    methods={
      "adamw": {"opt.learning_rate": [3e-4, 1e-3, 3e-3]},
      "nexus": {"opt.learning_rate": [1e-3, 3e-3, 1e-2]},
    }
  )

  def test_run_sweep_is_deterministic_and_summarized(self):
    evaluate, calls = bowl(1e-3)
    first = tuning.run_sweep(self.SPEC, evaluate)
    runs = list(calls)
    second = tuning.run_sweep(self.SPEC, evaluate)
    self.assertEqual(
      calls[len(runs) :], runs
    )  # the same runs in the same order: a caching runner resumes
    self.assertEqual(tuning.summary_json(self.SPEC, first), tuning.summary_json(self.SPEC, second))
    summary = tuning.summary_json(self.SPEC, first)
    self.assertEqual(
      summary["chosen"],
      {"adamw": {"opt.learning_rate": 1e-3}, "nexus": {"opt.learning_rate": 1e-3}},
    )
    self.assertEqual(
      summary["methods"]["nexus"]["num_runs"], 4
    )  # 1e-3 at the lower edge: one extension
    json.dumps(summary)
    text = tuning.summary_markdown(self.SPEC, first)
    self.assertIn("| adamw | opt.learning_rate=0.001 |", text)
    self.assertIn("Runs per method differ", text)

  def test_methods_mapped_by_a_runner_give_the_same_results(self):
    evaluate, _ = bowl(1e-3)
    mapped = []

    def reversed_map(sweep, methods):  # a runner free to sweep the methods in any order
      mapped.extend(methods)
      return [sweep(m) for m in reversed(methods)][::-1]

    results = tuning.run_sweep(self.SPEC, evaluate, map_methods=reversed_map)
    self.assertEqual(mapped, ["adamw", "nexus"])
    self.assertEqual(
      tuning.summary_json(self.SPEC, results),
      tuning.summary_json(self.SPEC, tuning.run_sweep(self.SPEC, bowl(1e-3)[0])),
    )

  def test_parse_grids(self):
    self.assertEqual(
      tuning.parse_grids(
        [
          "nexus:opt.normalize=leaf,global",
          "nexus:train.num_inner_steps=4",
          "adamw:opt.learning_rate=1e-3,3e-3",
        ]
      ),
      {
        "nexus": {"opt.normalize": ["leaf", "global"], "train.num_inner_steps": [4]},
        "adamw": {"opt.learning_rate": [1e-3, 3e-3]},
      },
    )
    with self.assertRaisesRegex(ValueError, "METHOD:FIELD=V1,V2"):
      tuning.parse_grids(["adamw-opt.learning_rate"])

  def test_bad_specs(self):
    with self.assertRaisesRegex(ValueError, "same number of runs"):
      tuning.SweepSpec(
        methods={"adamw": {"opt.learning_rate": [1e-3]}, "nexus": {"opt.learning_rate": [1, 2]}}
      )
    with self.assertRaisesRegex(ValueError, "non-empty list"):
      tuning.SweepSpec(methods={"adamw": {"opt.learning_rate": 1e-3}})
    with self.assertRaisesRegex(ValueError, "repeats"):
      tuning.SweepSpec(methods={"adamw": {"opt.learning_rate": [1e-3, 1e-3]}})
    with self.assertRaisesRegex(ValueError, "at least one method"):
      tuning.SweepSpec(methods={})
    with self.assertRaisesRegex(ValueError, "seeds"):
      tuning.SweepSpec(methods={"adamw": {"opt.learning_rate": [1e-3]}}, seeds=(0, 0))
    with self.assertRaisesRegex(ValueError, "low < high"):
      tuning.SweepSpec(
        methods={"adamw": {"opt.learning_rate": [1e-3]}}, bounds={"opt.learning_rate": (1, 0)}
      )


if __name__ == "__main__":
  absltest.main()
