"""Cooldown branches: a run that starts from a saved step of another run (train.init_from)."""

import json
import os
import tempfile

from absl.testing import absltest
import jax
import numpy as np

from nexus.train import checkpoint as checkpoint_lib
from tests.train import harness

# A warmup-stable-decay run whose decay starts at step 4 of 6; checkpoints at steps 2, 4 and 6.
STABLE = {"opt.schedule": "wsd", "opt.decay_start": 4, "opt.final_lr_fraction": 0.1}


def records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f if '"train/loss"' in line]


class BranchTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.stable = tempfile.mkdtemp()
    harness.train_here(cls.stable, STABLE)

  def branch(self, overrides: dict) -> str:
    workdir = tempfile.mkdtemp()
    harness.train_here(workdir, {**STABLE, "train.init_from": self.stable, **overrides})
    return workdir

  def test_a_branch_with_the_same_schedule_continues_the_run_exactly(self):
    workdir = self.branch({"train.init_step": 2})
    for got, want in zip(
      jax.tree.leaves(checkpoint_lib.load_params(workdir)),
      jax.tree.leaves(checkpoint_lib.load_params(self.stable)),
    ):
      np.testing.assert_array_equal(got, want)
    self.assertEqual([r["step"] for r in records(workdir)], [3, 4, 5, 6])

  def test_an_earlier_cooldown_anneals_from_the_branch_point(self):
    workdir = self.branch({"train.init_step": 2, "opt.decay_start": 2, "train.steps": 4})
    rates = {r["step"]: r["learning_rate"] for r in records(workdir)}
    stable_rates = {r["step"]: r["learning_rate"] for r in records(self.stable)}
    peak = stable_rates[3]
    self.assertEqual(sorted(rates), [3, 4])
    # The decay runs from the peak at step 2 to 0.1 x peak at step 4; step t uses the rate at t - 1.
    np.testing.assert_allclose([rates[3], rates[4]], [peak, 0.55 * peak], rtol=1e-5)
    np.testing.assert_allclose(stable_rates[4], peak, rtol=1e-6)  # the stable run is still flat

  def test_bad_branches_are_one_line_errors_before_any_work(self):
    for overrides, message in (
      (
        {"train.init_step": 3},
        r"config.train.init_step=3 is not a saved step .* \(saved: \[2, 4, 6\]\)",
      ),
      ({"train.init_step": 2, "model.mlp_dim": 96}, r"was trained with other \['model.mlp_dim'\]"),
      ({"train.init_step": 2, "opt.learning_rate": 0.01}, r"other \['opt.learning_rate'\]"),
    ):
      workdir = tempfile.mkdtemp()
      with self.subTest(overrides=overrides):
        with self.assertRaisesRegex(ValueError, message):
          harness.train_here(workdir, {**STABLE, "train.init_from": self.stable, **overrides})
        self.assertEqual(os.listdir(workdir), [])


if __name__ == "__main__":
  absltest.main()
