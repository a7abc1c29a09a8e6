"""``launch.sweep`` and ``launch.evaluate`` end to end on one tiny real run: the sweep's summary, resuming
without retraining, the checkpoint measurements of the protocol, and one-line errors."""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest

from tests.train import harness

CONFIG = "tests/train/tiny_config.py"
OVERRIDES = {"train.steps": 2, "eval.every": 2, "checkpoint.every": 2}


def launch(module, *flags):
  return subprocess.run(
    [sys.executable, "-m", module, *flags],
    cwd=harness.REPO_ROOT,
    env=harness.environment(),
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )


def sweep(out, *flags):
  return launch("launch.sweep", f"--out={out}", *flags)


class LaunchersTest(absltest.TestCase):
  def test_sweep_then_evaluate(self):
    out = tempfile.mkdtemp(prefix="nexus-sweep-")
    spec = os.path.join(out, "spec.json")
    with open(spec, "w", encoding="utf-8") as f:
      json.dump(
        {
          "config": CONFIG,
          "overrides": OVERRIDES,
          "methods": {"adamw": {"opt.learning_rate": [0.003]}},
        },
        f,
      )
    first = sweep(out, f"--spec={spec}")
    self.assertEqual(first.returncode, 0, first.stderr[-3000:])
    self.assertIn("[sweep] training", first.stdout)
    with open(os.path.join(out, "sweep.json"), encoding="utf-8") as f:
      summary = json.load(f)
    self.assertEqual(summary["chosen"], {"adamw": {"opt.learning_rate": 0.003}})
    self.assertEqual(summary["metric"], "eval/loss_macro")
    workdir = os.path.join(out, "runs", "adamw", "opt.learning_rate=0.003,seed=0")
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
      config = json.load(f)
    self.assertEqual(
      (config["opt"]["name"], config["opt"]["learning_rate"], config["train"]["steps"]),
      ("adamw", 0.003, 2),
    )
    records = [
      json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8")
    ]
    final = [r["eval/loss_macro"] for r in records if "eval/loss_macro" in r and r["step"] == 2]
    self.assertEqual(summary["methods"]["adamw"]["score"], final[-1])

    again = sweep(out, f"--spec={spec}")
    self.assertEqual(again.returncode, 0, again.stderr[-3000:])
    self.assertNotIn("[sweep] training", again.stdout)
    self.assertIn("[sweep] done", again.stdout)

    changed = sweep(out, f"--spec={spec}", "--override=opt.weight_decay=0.0")
    self.assertEqual(changed.returncode, 1)
    self.assertIn("other flags", changed.stderr)

    measured = launch(
      "launch.evaluate",
      f"--workdir={workdir}",
      "--downstream_problems=3",
      "--exact_match_problems=2",
      "--max_new_tokens=4",
      "--closeness_max_steps=3",
      "--closeness_batches=1",
    )
    self.assertEqual(measured.returncode, 0, measured.stderr[-3000:])
    records = [
      json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"), encoding="utf-8")
    ]
    metrics = records[-1]
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

  def test_unequal_grids_are_a_one_line_error(self):
    unequal = sweep(
      tempfile.mkdtemp(),
      "--grid=adamw:opt.learning_rate=1e-3",
      "--grid=nexus:opt.learning_rate=1e-3,3e-3",
    )
    self.assertEqual(unequal.returncode, 1)
    self.assertIn("same number of runs", unequal.stderr)


if __name__ == "__main__":
  absltest.main()
