"""The comparison report and ``launch.compare`` on synthetic workdirs with known table values."""

import json
import os
import subprocess
import sys
import tempfile

from absl.testing import absltest
import numpy as np
import pytest

from nexus.report import comparison
from nexus.report import matched
from nexus.report import runs as runs_lib

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_tempdir(test):
  """A temporary directory removed when ``test`` ends (works under pytest and absltest alike)."""
  directory = tempfile.TemporaryDirectory(prefix="nexus-report-tests-")
  test.addCleanup(directory.cleanup)
  return directory.name


def write_run(root, name, *, optimizer, seed, slope, ood_offset, cosine, spread):
  """Train loss 5 − slope·step every 10 steps; evaluations every 50 steps with OOD loss = loss + offset."""
  workdir = os.path.join(root, name)
  os.makedirs(workdir)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"name": "tiny", "seed": seed, "opt": {"name": optimizer, "learning_rate": 1e-3}}, f)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    for step in range(10, 301, 10):
      loss = 5.0 - slope * step
      f.write(
        json.dumps({"step": step, "tokens": 64 * step, "train/loss": loss, "train/loss/web": loss})
        + "\n"
      )
      if step % 50 == 0:
        record = {
          "step": step,
          "eval/loss/web": loss + 0.1,
          "eval/loss_micro": loss + 0.1,
          "eval/loss_macro": loss + 0.1,
          "eval/ood_loss/poetry": loss + ood_offset,
          "eval/ood_loss_macro": loss + ood_offset,
          "downstream/gsm/accuracy": (5.0 - loss) / 10,
          "geometry/mean_cosine": cosine,
          "geometry/sources": ["web", "code"],
          "geometry/cosine_matrix": [[1.0, cosine], [cosine, 1.0]],
        }
        if step == 300:
          record.update({"closeness/mean_sq_dist": 2 * spread, "closeness/spread": spread})
        f.write(json.dumps(record) + "\n")
  return workdir


def write_runs(root):
  return [
    write_run(
      root,
      "adamw_s1",
      optimizer="adamw",
      seed=1,
      slope=0.008,
      ood_offset=0.7,
      cosine=0.1,
      spread=0.3,
    ),
    write_run(
      root,
      "nexus_s0",
      optimizer="nexus",
      seed=0,
      slope=0.01,
      ood_offset=0.3,
      cosine=0.5,
      spread=0.1,
    ),
    write_run(
      root,
      "adamw_s0",
      optimizer="adamw",
      seed=0,
      slope=0.008,
      ood_offset=0.5,
      cosine=0.2,
      spread=0.2,
    ),
    write_run(
      root,
      "nexus_s1",
      optimizer="nexus",
      seed=1,
      slope=0.01,
      ood_offset=0.5,
      cosine=0.6,
      spread=0.1,
    ),
  ]


def cells(rows, label, optimizer):
  (row,) = [row for row in rows if row.label == label and row.optimizer == optimizer]
  return {column: (cell.mean, cell.std, cell.count) for column, cell in row.cells.items()}


class ReportTest(absltest.TestCase):
  def setUp(self):
    super().setUp()
    self.root = make_tempdir(self)
    self.runs = [runs_lib.load_run(workdir) for workdir in write_runs(self.root)]
    self.out = os.path.join(self.root, "report")

  def test_matched_table_values(self):
    result = comparison.write_report(self.runs, self.out, target_losses=[3.0, 4.0])
    np.testing.assert_allclose(result.levels, [4.0, 3.0])
    nexus, adamw = (
      cells(result.matched_rows, "3", "nexus"),
      cells(result.matched_rows, "3", "adamw"),
    )
    np.testing.assert_allclose(nexus["step"][:2], [200.0, 0.0])  # 5 − 0.01·step = 3
    np.testing.assert_allclose(adamw["step"][:2], [250.0, 0.0])  # 5 − 0.008·step = 3
    np.testing.assert_allclose(nexus["eval/ood_loss_macro"][:2], [3.4, np.sqrt(0.02)], rtol=1e-9)
    np.testing.assert_allclose(adamw["eval/ood_loss_macro"][:2], [3.6, np.sqrt(0.02)], rtol=1e-9)
    np.testing.assert_allclose(nexus["downstream/gsm/accuracy"][0], 0.2, rtol=1e-9)
    np.testing.assert_allclose(nexus["geometry/mean_cosine"][:2], [0.55, np.sqrt(0.005)], rtol=1e-9)
    self.assertEqual(nexus["closeness/spread"][2], 0)  # measured only at the end: not bracketed
    np.testing.assert_allclose(cells(result.matched_rows, "4", "adamw")["step"][0], 125.0)
    with open(result.path) as f:
      text = f.read()
    self.assertIn(
      "| 3 | nexus | 200 ± 0 | 3.4 ± 0.14 | 3.1 ± 0 | 0.2 ± 0 | 0.55 ± 0.071 | – | – |", text
    )
    self.assertIn("| adamw | 0, 1 |", text)

  def test_final_table_and_plots(self):
    result = comparison.write_report(self.runs, self.out)
    final = cells(result.final_rows, "final", "adamw")
    np.testing.assert_allclose(final["closeness/spread"][:2], [0.25, np.sqrt(0.005)], rtol=1e-9)
    np.testing.assert_allclose(final["train/loss"][0], 5.0 - 0.008 * 300)
    np.testing.assert_allclose(
      result.levels, [4.5, 3.55, 2.6]
    )  # the range both groups' evaluations span
    self.assertLen(result.plots, 4)
    for path in result.plots:
      with open(path, "rb") as f:
        self.assertEqual(f.read(8), PNG_SIGNATURE)
    with open(result.path) as f:
      text = f.read()
    for path in result.plots:
      self.assertIn(f"]({os.path.basename(path)})", text)
    self.assertIn("## Paired differences at the end of training", text)
    self.assertIn("| nexus | eval/ood_loss_macro | -0.8000 |", text)

  def test_paired_differences_by_seed(self):
    groups = runs_lib.group_by_optimizer(self.runs)
    text = comparison.paired_section(groups, comparison.paired_keys(self.runs), None)
    # OOD offsets 0.3/0.5 (nexus) vs 0.5/0.7 (adamw) and final losses 2.0 vs 2.6: −0.8 on both
    # seeds.
    self.assertIn(
      "| nexus | eval/ood_loss_macro | -0.8000 | [-0.8000, -0.8000] | 2 | 95% t |", text
    )
    self.assertIn("| nexus | geometry/mean_cosine | +0.4000 |", text)  # 0.5 − 0.2 and 0.6 − 0.1
    self.assertIn("| nexus | downstream/gsm/accuracy |", text)
    self.assertNotIn("eval/loss/web", text)  # per training source: not a paired row
    with self.assertRaisesRegex(ValueError, "baseline 'sgd'"):
      comparison.paired_section(groups, comparison.paired_keys(self.runs), "sgd")
    # Seeds that differ between methods cannot be paired: the section says so instead.
    unpaired = runs_lib.group_by_optimizer(self.runs[:3])
    self.assertIn(
      "Not computed",
      comparison.paired_section(unpaired, comparison.paired_keys(self.runs[:3]), None),
    )

  def test_chance_levels_are_tabled_per_accuracy(self):
    def run(name, records):
      return runs_lib.RunRecord(name, name, "adamw", 0, tuple(records))

    first = run(
      "a",
      [
        {"step": 5, "downstream/add/accuracy_chance": 0.5},
        {
          "step": 9,
          "downstream/add/accuracy_chance": 0.25,
          "downstream/add/answer_token_chance": 0.3,
        },
      ],
    )
    second = run("b", [{"step": 9, "downstream/add/answer_token_chance": 0.4}])
    self.assertEqual(
      comparison.chance_section([first, second]).splitlines()[2:],
      [
        "| downstream/add/accuracy | 0.25 |",
        "| downstream/add/answer_token_accuracy | 0.3 to 0.4 |",
      ],
    )
    self.assertIsNone(comparison.chance_section([run("c", [{"step": 1, "train/loss": 2.0}])]))

  def test_format_cell(self):
    self.assertEqual(comparison.format_cell(matched.Aggregate(1.5, float("nan"), 1), 1), "1.5")
    self.assertEqual(
      comparison.format_cell(matched.Aggregate(1.5, float("nan"), 1), 3), "1.5 (n=1/3)"
    )
    self.assertEqual(
      comparison.format_cell(matched.Aggregate(float("nan"), float("nan"), 0), 2), "–"
    )

  def test_bad_options(self):
    with self.assertRaisesRegex(ValueError, "logged no 'eval/nothing'"):
      comparison.write_report(self.runs, self.out, loss_key="eval/nothing")
    with self.assertRaisesRegex(ValueError, "num_levels"):
      comparison.write_report(self.runs, self.out, num_levels=0)
    with self.assertRaisesRegex(ValueError, "distinct seeds"):
      comparison.write_report(self.runs + self.runs[:1], self.out)


class LoadRunTest(absltest.TestCase):
  def test_groups_seeds_by_optimizer(self):
    runs = [runs_lib.load_run(workdir) for workdir in write_runs(make_tempdir(self))]
    groups = runs_lib.group_by_optimizer(runs)
    self.assertEqual(list(groups), ["adamw", "nexus"])
    self.assertEqual([run.seed for run in groups["adamw"]], [0, 1])
    self.assertEqual(runs[0].last("geometry/cosine_matrix"), [[1.0, 0.1], [0.1, 1.0]])

  def test_missing_or_malformed_files(self):
    root = make_tempdir(self)
    with self.assertRaisesRegex(ValueError, "does not exist"):
      runs_lib.load_run(os.path.join(root, "nope"))
    workdir = write_run(
      root, "run", optimizer="adamw", seed=0, slope=0.01, ood_offset=0.1, cosine=0.0, spread=0.0
    )
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump({"seed": 0, "opt": {}}, f)
    with self.assertRaisesRegex(ValueError, "opt.name"):
      runs_lib.load_run(workdir)
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
      f.write("{not json\n")
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump({"seed": 0, "opt": {"name": "adamw"}}, f)
    with self.assertRaisesRegex(ValueError, "metrics.jsonl:37 is not valid JSON"):
      runs_lib.load_run(workdir)
    os.remove(os.path.join(workdir, "metrics.jsonl"))
    with self.assertRaisesRegex(ValueError, "metrics.jsonl is missing"):
      runs_lib.load_run(workdir)


@pytest.mark.slow
class CompareCommandTest(absltest.TestCase):
  def run_compare(self, *args):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
      [sys.executable, "-m", "launch.compare", *args],
      cwd=REPO_ROOT,
      env=env,
      capture_output=True,
      text=True,
      timeout=120,
    )

  def test_writes_report_and_reports_missing_workdirs_in_one_line(self):
    root = make_tempdir(self)
    workdirs = write_runs(root)
    out = os.path.join(root, "out")
    done = self.run_compare(*workdirs, f"--out={out}", "--target_losses=3.0")
    self.assertEqual(done.returncode, 0, done.stderr)
    self.assertTrue(os.path.exists(os.path.join(out, "report.md")))
    self.assertTrue(os.path.exists(os.path.join(out, "cosine_heatmaps.png")))
    failed = self.run_compare(workdirs[0], os.path.join(root, "missing"), f"--out={out}")
    self.assertEqual(failed.returncode, 1)
    self.assertRegex(
      failed.stderr.strip().splitlines()[-1], r"^error: workdir .*missing' does not exist"
    )


if __name__ == "__main__":
  absltest.main()
