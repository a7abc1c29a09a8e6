"""Comparison at the same validation loss between annealed end points: levels, interpolation,
pairing, one-line errors."""

import dataclasses
import json
import os
import tempfile

from absl.testing import absltest
import numpy as np
import pytest

from launch import branches
from nexus.report import endpoints
from nexus.report import runs as runs_lib
from tests.train import harness

SEEDS = (0, 1, 2)
# Each (method, seed)'s end points lie on metric = OFFSET[method] + SLOPE · loss + seed, so at any
# level the interpolated value is exact and nexus − adamw is the OFFSET difference for every seed.
OFFSET = {"adamw": 1.0, "nexus": 0.75}
SLOPE = 2.0
OOD = "test/ood_loss/poetry"


def points(method: str, seed: int, losses, *, metric=None) -> list[endpoints.EndPoint]:
  metric = metric or (lambda loss: OFFSET[method] + SLOPE * loss + seed)
  return [
    endpoints.EndPoint(
      workdir=f"{method}-s{seed}-b{index}",
      method=method,
      seed=seed,
      stable=f"{method}-s{seed}",
      branch_step=100 * (index + 1),
      step=125 * (index + 1),
      validation_loss=loss,
      metrics={OOD: metric(loss), "test/ood_loss_macro": metric(loss)},
    )
    for index, loss in enumerate(losses)
  ]


def study(**ranges) -> list[endpoints.EndPoint]:
  """Three end points per (method, seed); ``ranges[method]`` = (highest, lowest) validation loss."""
  return [
    point
    for method, (high, low) in ranges.items()
    for seed in SEEDS
    for point in points(method, seed, [high + 0.1 * seed, (high + low) / 2, low - 0.1 * seed])
  ]


class CompareTest(absltest.TestCase):
  def test_levels_span_the_common_range_and_linear_metrics_are_exact(self):
    got = endpoints.compare_end_points(study(adamw=(3.0, 2.2), nexus=(2.8, 2.0)), num_levels=3)
    # Common range: the largest lowest loss (adamw seed 0: 2.2) to the smallest highest (nexus s0).
    np.testing.assert_allclose(got.levels, [2.8, 2.5, 2.2])
    self.assertEqual(got.baseline, "adamw")
    self.assertEqual(got.metrics, [OOD, "test/ood_loss_macro"])
    for index, level in enumerate(got.levels):
      for (method, seed), values in got.values[index].items():
        np.testing.assert_allclose(values[OOD], OFFSET[method] + SLOPE * level + seed)
      interval = got.differences[index]["nexus"][OOD]
      np.testing.assert_allclose([interval.mean, interval.low, interval.high], -0.25, atol=1e-12)
      self.assertEqual(interval.num_pairs, len(SEEDS))

  def test_interpolation_uses_the_two_bracketing_end_points(self):
    # A kinked metric: its value at each level is the chord between the end points around it.
    metric = {3.0: 10.0, 2.0: 4.0, 1.0: 3.0}
    data = [
      p
      for method in OFFSET
      for seed in (0, 1)
      for p in points(method, seed, [3.0, 2.0, 1.0], metric=metric.get)
    ]
    got = endpoints.compare_end_points(data, num_levels=5)
    np.testing.assert_allclose(got.levels, [3.0, 2.5, 2.0, 1.5, 1.0])
    self.assertEqual(
      [got.values[i][("nexus", 1)][OOD] for i in range(5)], [10.0, 7.0, 4.0, 3.5, 3.0]
    )
    self.assertEqual(got.differences[1]["nexus"][OOD].mean, 0.0)

  def test_end_points_are_ordered_by_loss_whatever_their_branch_order(self):
    # A later branch may end higher: the bracket is by validation loss, not by step.
    data = study(adamw=(3.0, 2.0), nexus=(3.0, 2.0))
    data[0], data[2] = data[2], data[0]
    got = endpoints.compare_end_points(data, num_levels=2)
    losses = [p.validation_loss for p in got.end_points[("adamw", 0)]]
    self.assertEqual(losses, sorted(losses, reverse=True))

  def test_section_reports_every_level(self):
    got = endpoints.compare_end_points(study(adamw=(3.0, 2.2), nexus=(2.8, 2.0)))
    text = endpoints.format_section(got)
    for heading in ("### Validation loss 2.8000", "### Validation loss 2.5000", "2.2000"):
      self.assertIn(heading, text)
    self.assertIn(
      "| nexus | test/ood_loss/poetry | -0.2500 | [-0.2500, -0.2500] | 3 | 95% t |", text
    )
    self.assertIn(
      "| adamw | 0 | 100 → 125 (3.0000), 200 → 250 (2.6000), 300 → 375 (2.2000) |", text
    )

  def test_the_section_goes_first_and_curve_matching_is_labelled_secondary(self):
    path = os.path.join(tempfile.mkdtemp(), "report.md")
    with open(path, "w", encoding="utf-8") as f:
      f.write(
        "# Comparison: a vs b\n\n2 run(s).\n\n## Runs\n\ntable\n\n## At matched training loss\n"
      )
    endpoints.insert_primary_section(path, "END POINTS")
    with open(path, encoding="utf-8") as f:
      self.assertEqual(
        f.read(),
        f"# Comparison: a vs b\n\n2 run(s).\n\n{endpoints.PRIMARY_HEADING}\n\nEND POINTS\n\n"
        f"{endpoints.SECONDARY_NOTE}\n\n## Runs\n\ntable\n\n## At matched training loss\n",
      )

  def test_one_line_errors(self):
    complete = study(adamw=(3.0, 2.0), nexus=(3.0, 2.0))
    for data, kwargs, message in (
      (
        [p for p in complete if (p.method, p.seed) != ("nexus", 2)],
        {},
        r"lack seeds \{'nexus': \[2\]\}",
      ),
      ([p for p in complete if p.seed == 0], {}, "two or more seeds"),
      (complete[2:], {}, r"\[\('adamw', 0\)\] have fewer than two end points"),
      (
        study(adamw=(3.0, 2.5), nexus=(2.0, 1.5)),
        {},
        "no validation loss lies between every",
      ),
      (complete, {"baseline": "sgd"}, "baseline 'sgd' is not among"),
      (
        complete[:-1] + [dataclasses.replace(complete[-1], stable="other")],
        {},
        r"branch from several stable runs \{\('nexus', 2\): \['nexus-s2', 'other'\]\}",
      ),
      (
        complete[:-1]
        + [endpoints.EndPoint("odd", "nexus", 2, "nexus-s2", 300, 375, 1.8, {OOD: 1.0})],
        {},
        "'odd' measured .* unlike the others",
      ),
    ):
      with self.subTest(message=message):
        with self.assertRaisesRegex(ValueError, message) as caught:
          endpoints.compare_end_points(data, **kwargs)
        self.assertNotIn("\n", str(caught.exception))


class FromDiskTest(absltest.TestCase):
  def run_dir(self, records: list[dict], *, steps=20, init_step=10, init_from="stable") -> str:
    workdir = tempfile.mkdtemp()
    config = {
      "opt": {"name": "adamw"},
      "seed": 0,
      "train": {"steps": steps, "init_from": init_from, "init_step": init_step},
    }
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
      json.dump(config, f)
    with open(os.path.join(workdir, "metrics.jsonl"), "w", encoding="utf-8") as f:
      f.writelines(json.dumps(r) + "\n" for r in records)
    return workdir

  def test_the_evaluate_record_at_the_last_step_is_the_end_point(self):
    measured = {
      "step": 20,
      "eval/loss_macro": 2.5,
      "test/ood_loss/poetry": 3.0,
      "test/ood_loss_macro": 3.0,
      "test/loss/code": 2.4,
      "downstream/add/accuracy": 0.1,
      "downstream/add/accuracy_chance": 0.05,
      "downstream/held_out_mean/answer_nll": 1.5,
      "downstream/add/answer_nll": 1.2,
      "closeness/mean_sq_dist": 4.0,
      "closeness/steps/code": 7.0,
      "geometry/sources": ["a", "b"],
    }
    workdir = self.run_dir([{"step": 20, "train/loss": 2.0, "eval/loss_macro": 2.6}, measured])
    got = endpoints.load_end_points([os.path.dirname(workdir) + "/" + os.path.basename(workdir)])
    self.assertEqual(
      (got[0].method, got[0].seed, got[0].stable, got[0].branch_step, got[0].step),
      ("adamw", 0, os.path.realpath("stable"), 10, 20),
    )
    self.assertEqual(got[0].validation_loss, 2.5)
    self.assertEqual(
      list(got[0].metrics),
      [
        "test/ood_loss/poetry",
        "test/ood_loss_macro",
        "downstream/add/accuracy",
        "downstream/add/answer_nll",
        "downstream/held_out_mean/answer_nll",
        "closeness/mean_sq_dist",
      ],
    )

  def test_a_directory_of_runs_stands_for_its_runs(self):
    parent = tempfile.mkdtemp()
    record = {"step": 20, "eval/loss_macro": 2.5, "closeness/mean_sq_dist": 4.0}
    for name in ("b", "a"):
      os.rename(self.run_dir([record]), os.path.join(parent, name))
    got = endpoints.load_end_points([parent])
    self.assertEqual([p.workdir for p in got], [os.path.join(parent, n) for n in ("a", "b")])

  def test_a_stable_runs_own_annealed_end_groups_with_its_branches(self):
    stable = self.run_dir(
      [{"step": 20, "eval/loss_macro": 2.0, "closeness/mean_sq_dist": 4.0}],
      init_from=None,
      init_step=None,
    )
    branch = self.run_dir(
      [{"step": 12, "eval/loss_macro": 2.5, "closeness/mean_sq_dist": 4.0}],
      steps=12,
      init_step=10,
      init_from=stable + "/",
    )
    got = endpoints.load_end_points([stable, branch])
    self.assertEqual([p.stable for p in got], [os.path.realpath(stable)] * 2)
    self.assertEqual([p.branch_step for p in got], [None, 10])
    section = endpoints.format_section(
      endpoints.compare_end_points(
        got + [dataclasses.replace(p, seed=1, workdir=p.workdir + "1") for p in got], num_levels=2
      )
    )
    self.assertIn("stable → 20 (2.0000)", section)
    self.assertIn("2 seeds: fewer than the protocol's 5", section)

  def test_unmeasured_or_unfinished_runs_are_refused(self):
    for records, message in (
      ([{"step": 20, "train/loss": 2.0}], "has no launch.evaluate measurement"),
      (
        [{"step": 15, "eval/loss_macro": 2.5, "closeness/mean_sq_dist": 4.0}],
        r"measured at step 15, not at its end \(train.steps=20\)",
      ),
    ):
      with self.subTest(message=message):
        with self.assertRaisesRegex(ValueError, message):
          endpoints.end_point(runs_lib.load_run(self.run_dir(records)))
    with self.assertRaisesRegex(ValueError, "neither a run workdir nor a directory"):
      endpoints.load_end_points([tempfile.mkdtemp()])


if __name__ == "__main__":
  absltest.main()


@pytest.mark.slow
class BranchPlanTest(absltest.TestCase):
  """``launch.branches``'s plan on a real stable run (trained once, in process; no branch runs)."""

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.stable = os.path.join(tempfile.mkdtemp(), "adamw-seed0")
    harness.train_here(cls.stable, {"opt.schedule": "wsd", "opt.decay_start": 4})

  def test_branches_decay_over_the_cooldown_fraction_of_their_steps(self):
    got = branches.plan([self.stable + "/"], [4, 2], 0.5, "out")
    self.assertEqual([b.workdir for b in got], ["out/adamw-seed0-from2", "out/adamw-seed0-from4"])
    self.assertEqual(
      got[1].overrides,
      {
        "name": "adamw-seed0-from4",
        "train.init_from": self.stable,
        "train.init_step": 4,
        "train.steps": 8,
        "opt.schedule": "wsd",
        "opt.decay_start": 4,
      },
    )
    self.assertEqual([branches.end_step(400, f) for f in (0.2, 0.1)], [500, 444])

  def test_bad_branches_are_refused_before_any_work(self):
    twin = os.path.join(tempfile.mkdtemp(), "adamw-seed0")
    os.symlink(self.stable, twin)
    for stables, steps, message in (
      ([self.stable], [3], r"saved no checkpoint at step 3 \(saved: \[2, 4, 6\]\)"),
      ([self.stable], [6], "step 6 of .* is outside its stable phase"),
      ([self.stable, twin], [2], "share a directory name"),
    ):
      with self.subTest(message=message):
        with self.assertRaisesRegex(ValueError, message):
          branches.plan(stables, steps, 0.2, "out")
    with self.assertRaisesRegex(ValueError, r"cooldown_fraction=1.0 must be in \(0, 1\)"):
      branches.end_step(4, 1.0)
