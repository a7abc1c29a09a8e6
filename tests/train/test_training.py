"""Integration tests: the real entry point trains the tiny model, and the reliability promises hold
(SIGKILL resume, corrupted checkpoints, bad configs; the other faults are in test_faults.py)."""

import glob
import json
import os
import shutil
import tempfile
import time

from absl.testing import absltest
import pytest

from nexus.train import metrics as metrics_lib
from tests.train import harness


def records(workdir):
  return metrics_lib.read_metrics(workdir)


def train_records(workdir):
  return [r for r in records(workdir) if "train/loss" in r]


def make_workdir(test):
  path = tempfile.mkdtemp(prefix="nexus-run-")
  test.addCleanup(shutil.rmtree, path, ignore_errors=True)
  return path


def checkpoint_steps(workdir):
  return sorted(
    int(os.path.basename(p))
    for p in glob.glob(os.path.join(workdir, "checkpoints", "*"))
    if os.path.basename(p).isdigit()
  )


class TrainingTest(absltest.TestCase):
  @pytest.mark.slow
  def test_nexus_trains_logs_and_summarizes(self):
    workdir = make_workdir(self)
    result = harness.train(workdir, {"opt.learning_rate": 3e-3, "train.steps": 8})
    self.assertIn("Nexus training summary", result.stdout)
    self.assertIn("tokens/s", result.stdout)
    rows = train_records(workdir)
    self.assertEqual([r["step"] for r in rows], list(range(1, 9)))
    self.assertLess(rows[-1]["train/loss"], rows[0]["train/loss"])
    last = records(workdir)[-1]
    for key in ("eval/loss_micro", "eval/loss_macro", "eval/ood_loss_macro"):
      self.assertIn(key, last)
    self.assertTrue(any(k.startswith("train/loss/") for r in rows for k in r))
    self.assertIn("opt/alignment", rows[-1])
    self.assertTrue(os.path.isdir(os.path.join(workdir, "tb")))
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
      self.assertEqual(json.load(f)["opt"]["name"], "nexus")

  @pytest.mark.slow
  def test_sigkill_then_resume_equals_uninterrupted_run(self):
    settings = {"train.steps": 8, "checkpoint.every": 1, "eval.every": 0}
    reference = make_workdir(self)
    # In this process (the same program on one device), saving no checkpoint.
    harness.train_here(reference, {**settings, "checkpoint.every": 100})
    workdir = make_workdir(self)
    process = harness.start(workdir, settings)
    deadline = time.time() + 300
    while time.time() < deadline and not [s for s in checkpoint_steps(workdir) if s >= 3]:
      time.sleep(0.2)
    process.kill()  # SIGKILL: no chance to clean up
    process.wait()
    self.assertNotEmpty(checkpoint_steps(workdir))
    harness.train(workdir, settings)
    got, want = train_records(workdir), train_records(reference)
    self.assertEqual([r["step"] for r in got], list(range(1, 9)))
    for g, w in zip(got, want):
      self.assertEqual(g["train/loss"], w["train/loss"], g["step"])
      self.assertEqual(g["param_norm"], w["param_norm"], g["step"])

  @pytest.mark.slow
  def test_corrupted_latest_checkpoint_falls_back_to_previous(self):
    workdir = make_workdir(self)
    harness.train_here(workdir, {"train.steps": 4})
    self.assertEqual(checkpoint_steps(workdir), [2, 4])
    latest = os.path.join(workdir, "checkpoints", "4")
    for path in glob.glob(os.path.join(latest, "**", "*"), recursive=True):
      if os.path.isfile(path):
        with open(path, "wb") as f:
          f.write(b"garbage")
    with self.assertLogs(level="WARNING") as logs:
      harness.train_here(workdir, {"train.steps": 6}, allow_config_change=True)
    self.assertRegex(
      "\n".join(logs.output), r"Checkpoint step 4 in \S+ is unreadable .*; falling back to step 2\."
    )
    self.assertEqual([r["step"] for r in train_records(workdir)], list(range(1, 7)))
    self.assertIn(2, checkpoint_steps(workdir))


class BadConfigTest(absltest.TestCase):
  """A bad config is refused before any work, in one line naming the problem and the fix. The entry
  point's rendering is checked once (a subprocess); the trainer's own refusals in this process (the
  schema's every check: test_schema.py)."""

  def test_the_entry_point_prints_a_config_error_in_one_line(self):
    parent = make_workdir(self)
    result = harness.train(os.path.join(parent, "run"), {"opt.name": "adamax"}, check=False)
    self.assertEqual(result.returncode, 1, result.stderr[-2000:])
    self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
    self.assertStartsWith(result.stderr, "error: opt.name='adamax' is not one of (")
    self.assertNotIn("Traceback", result.stdout + result.stderr)
    self.assertEqual(os.listdir(parent), [])  # no workdir

  def test_an_unknown_config_field_is_one_line(self):
    result = harness.train(make_workdir(self), {"opt.no_such_field": 1}, check=False)
    self.assertEqual(result.returncode, 1, result.stderr[-2000:])
    self.assertEqual(
      result.stderr.strip().splitlines(),
      [
        "error: bad flag or config override (AttributeError: no_such_field); check the "
        "--config.<section>.<field> names in configs/base.py."
      ],
    )

  def assert_refused_before_any_work(self, overrides, message, workdir=None, **kwargs):
    parent = make_workdir(self)
    with self.assertRaisesRegex(ValueError, message) as refused:
      harness.train_here(workdir or os.path.join(parent, "run"), overrides, **kwargs)
    self.assertNotIn("\n", str(refused.exception))
    self.assertEqual(os.listdir(parent), [])

  def test_batch_not_divisible_by_data_axis(self):
    self.assert_refused_before_any_work(
      {"train.global_batch_size": 6},
      r"global_batch_size=6 is not divisible by the data x fsdp mesh size 8; use a multiple of 8",
      devices=8,
    )

  def test_sequence_longer_than_model(self):
    self.assert_refused_before_any_work(
      {"train.seq_len": 100000}, "seq_len=100000 exceeds config.model.max_seq_len"
    )

  def test_unwritable_workdir(self):
    self.assert_refused_before_any_work(
      {},
      r"cannot create workdir '/dev/null/run' \(Not a directory\); pass a writable --workdir",
      workdir="/dev/null/run",
    )


if __name__ == "__main__":
  absltest.main()
