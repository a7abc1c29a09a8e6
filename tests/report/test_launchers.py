"""``launch.sweep`` and ``launch.evaluate`` end to end on one tiny real run: the sweep's summary, resuming
without retraining, the checkpoint measurements of the protocol, and one-line errors.

The run is trained once for the class (a one-point sweep of 2 steps of a one-layer model) and
measured once; the tests read what those commands left. The subprocesses share the session's JAX
compilation cache (tests/conftest.py), so ``launch.evaluate`` reuses the evaluation programs the
trainer compiled instead of compiling them again (and its test split reuses those of its validation
split).
"""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import pytest

from tests.train import harness

CONFIG = "tests/train/tiny_config.py"
OVERRIDES = {"train.steps": 2, "eval.every": 2, "checkpoint.every": 2}
EVALUATE_FLAGS = (
  "--downstream_problems=3",
  "--exact_match_problems=2",
  "--max_new_tokens=4",
  "--closeness_max_steps=3",
  "--closeness_batches=1",
)


def read_records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8") as f:
    return [json.loads(line) for line in f]


@pytest.mark.slow
class LaunchersTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.TemporaryDirectory(prefix="nexus-launchers-")
    cls.addClassCleanup(cls.root.cleanup)
    cls.env = harness.environment()
    cls.out = os.path.join(cls.root.name, "sweep")
    os.makedirs(cls.out)
    cls.spec = os.path.join(cls.out, "spec.json")
    with open(cls.spec, "w", encoding="utf-8") as f:
      json.dump(
        {
          "config": CONFIG,
          "overrides": OVERRIDES,
          "methods": {"adamw": {"opt.learning_rate": [0.003]}},
        },
        f,
      )
    cls.workdir = os.path.join(cls.out, "runs", "adamw", "opt.learning_rate=0.003,seed=0")
    cls.first = cls.sweep(f"--spec={cls.spec}")
    cls.trained = read_records(cls.workdir) if cls.first.returncode == 0 else []
    cls.again = cls.sweep(f"--spec={cls.spec}")
    cls.measured = cls.launch("launch.evaluate", f"--workdir={cls.workdir}", *EVALUATE_FLAGS)

  @classmethod
  def launch(cls, module, *flags):
    return subprocess.run(
      [sys.executable, "-m", module, *flags],
      cwd=harness.REPO_ROOT,
      env=cls.env,
      capture_output=True,
      text=True,
      timeout=600,
      check=False,
    )

  @classmethod
  def sweep(cls, *flags):
    return cls.launch("launch.sweep", f"--out={cls.out}", *flags)

  def test_sweep_trains_and_writes_the_choice(self):
    self.assertEqual(self.first.returncode, 0, self.first.stderr[-3000:])
    self.assertIn("[sweep] training", self.first.stdout)
    with open(os.path.join(self.out, "sweep.json"), encoding="utf-8") as f:
      summary = json.load(f)
    self.assertEqual(summary["chosen"], {"adamw": {"opt.learning_rate": 0.003}})
    self.assertEqual(summary["metric"], "eval/loss_macro")
    with open(os.path.join(self.workdir, "config.json"), encoding="utf-8") as f:
      config = json.load(f)
    self.assertEqual(
      (config["opt"]["name"], config["opt"]["learning_rate"], config["train"]["steps"]),
      ("adamw", 0.003, 2),
    )
    final = [
      r["eval/loss_macro"] for r in self.trained if "eval/loss_macro" in r and r["step"] == 2
    ]
    self.assertEqual(summary["methods"]["adamw"]["score"], final[-1])

  def test_rerun_resumes_without_training(self):
    self.assertEqual(self.again.returncode, 0, self.again.stderr[-3000:])
    self.assertNotIn("[sweep] training", self.again.stdout)
    self.assertIn("[sweep] done", self.again.stdout)

  def test_rerun_with_other_flags_is_a_one_line_error(self):
    changed = self.sweep(f"--spec={self.spec}", "--override=opt.weight_decay=0.0")
    self.assertEqual(changed.returncode, 1)
    self.assertRegex(changed.stderr.strip().splitlines()[-1], r"^error: .* other flags")

  def test_unequal_grids_are_a_one_line_error(self):
    unequal = self.launch(
      "launch.sweep",
      f"--out={os.path.join(self.root.name, 'unequal')}",
      "--grid=adamw:opt.learning_rate=1e-3",
      "--grid=nexus:opt.learning_rate=1e-3,3e-3",
    )
    self.assertEqual(unequal.returncode, 1)
    self.assertRegex(unequal.stderr.strip().splitlines()[-1], r"^error: .*same number of runs")

  def test_evaluate_appends_the_protocol_measurements(self):
    self.assertEqual(self.measured.returncode, 0, self.measured.stderr[-3000:])
    metrics = read_records(self.workdir)[-1]
    self.assertEqual(metrics["step"], 2)
    self.assertLess(
      abs(metrics["test/loss_macro"] - metrics["eval/loss_macro"]), 1.0
    )  # both splits, both losses
    self.assertNotEqual(metrics["test/loss_macro"], metrics["eval/loss_macro"])
    self.assertBetween(metrics["closeness/mean_steps"], 1, 3)
    for family in ("add_sub", "cost_equation"):
      self.assertGreater(metrics[f"downstream/{family}/completion_nll"], 0.0)
      self.assertBetween(metrics[f"downstream/{family}/accuracy_chance"], 1 / 3, 1.0)
    self.assertEqual(
      metrics["downstream/cost_equation/truncated"], 1.0
    )  # longer than the 16-token context


if __name__ == "__main__":
  absltest.main()
