"""The study's stage runner (``launch.study``): runs planned from a sweep's choice and paired by seed,
parallel jobs that try every run and report every failure, single-threaded logged subprocesses, and
the tuning section a report gains from ``launch.compare --sweep``."""

import json
import os
import sys
import tempfile
from unittest import mock

from absl.testing import absltest

from launch import study
from nexus.report import tuning

SWEEP = {
  "config": "configs/tiny.py",
  "overrides": {"train.steps": 500, "opt.schedule": "wsd"},
  "chosen": {
    "adamw": {"opt.learning_rate": 0.003, "opt.final_lr_fraction": 0.0},
    "nexus_leaf": {"opt.name": "nexus", "opt.normalize": "leaf"},
  },
}


def write(path: str, text: str) -> str:
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)
  return path


class PlanRunsTest(absltest.TestCase):
  def test_runs_take_each_methods_choice_and_pair_by_seed(self):
    runs = study.plan_runs(
      SWEEP,
      out="out",
      config=None,
      methods=None,
      seeds=["0", "1"],
      overrides={"train.steps": "1000", "checkpoint.keep": "5"},
      evaluate_flags=("--exact_match_problems=8",),
    )
    self.assertEqual(
      [r.workdir for r in runs],
      [f"out/{m}-seed{s}" for s in (0, 1) for m in ("adamw", "nexus_leaf")],
    )
    adamw, leaf = runs[2], runs[3]
    self.assertEqual(
      adamw.overrides,
      {
        "train.steps": "1000",
        "opt.schedule": "wsd",
        "checkpoint.keep": "5",
        "opt.name": "adamw",
        "opt.learning_rate": 0.003,
        "opt.final_lr_fraction": 0.0,
        "seed": "1",
      },
    )
    self.assertEqual(
      (leaf.overrides["opt.name"], leaf.overrides["opt.normalize"]), ("nexus", "leaf")
    )
    self.assertEqual(
      {(r.config, r.steps, r.evaluate_flags) for r in runs},
      {("configs/tiny.py", 1000, ("--exact_match_problems=8",))},
    )

  def test_methods_the_sweep_did_not_tune_are_refused(self):
    with self.assertRaisesRegex(ValueError, r"methods \['sgd'\] were not tuned by the sweep"):
      study.plan_runs(SWEEP, out="o", config=None, methods=["sgd"], seeds=["0"], overrides={})

  def test_an_unfinished_sweep_summary_is_a_one_line_error(self):
    root = tempfile.mkdtemp()
    for name, text, message in (
      ("missing.json", None, "cannot read"),
      ("bad.json", "{", "cannot read"),
      ("partial.json", json.dumps({"config": "c", "overrides": {}}), r"lacks \['chosen'\]"),
      ("open.json", json.dumps({**SWEEP, "chosen": {"adamw": None}}), r"a choice for \['adamw'\]"),
    ):
      path = os.path.join(root, name)
      if text is not None:
        write(path, text)
      with self.subTest(name=name):
        with self.assertRaisesRegex(SystemExit, f"^error: .*{message}") as caught:
          study.load_sweep(path)
        self.assertNotIn("\n", str(caught.exception))


class ParallelTest(absltest.TestCase):
  def test_every_item_runs_and_every_failure_is_reported(self):
    seen = []

    def work(item):
      seen.append(item)
      if item % 2:
        raise RuntimeError(f"run {item} failed")
      return item * 10

    self.assertEqual(study.parallel_map(work, [0, 2, 4], jobs=2), [0, 20, 40])
    with self.assertRaises(SystemExit) as caught:
      study.parallel_map(work, [1, 2, 3], jobs=2)
    self.assertEqual(str(caught.exception), "error: run 1 failed\nerror: run 3 failed")
    self.assertCountEqual(seen, [0, 2, 4, 1, 2, 3])

  def test_a_shared_cpu_run_is_single_threaded_and_logs_to_its_workdir(self):
    workdir = os.path.join(tempfile.mkdtemp(), "run")
    code = "import os, sys; print(os.environ['XLA_FLAGS']); sys.exit(3)"
    self.assertEqual(study.run_command([sys.executable, "-c", code], workdir, shared_cpu=True), 3)
    with open(os.path.join(workdir, study.LOG_NAME), encoding="utf-8") as f:
      self.assertIn(study.SINGLE_THREAD_XLA_FLAGS, f.read())

  def test_runs_on_an_accelerator_keep_xlas_cpu_threads(self):
    workdir = os.path.join(tempfile.mkdtemp(), "run")
    code = "import os; print('flags:', os.environ.get('XLA_FLAGS', ''))"
    for platforms, single_threaded in (("cuda", False), ("cuda,cpu", False), ("cpu", True)):
      with mock.patch.dict(os.environ, {"JAX_PLATFORMS": platforms, "XLA_FLAGS": ""}):
        self.assertEqual(study.computes_on_cpu(), single_threaded)
        study.run_command([sys.executable, "-c", code], workdir, shared_cpu=True)
      with open(os.path.join(workdir, study.LOG_NAME), encoding="utf-8") as f:
        last = f.read().strip().splitlines()[-1]
      self.assertEqual(study.SINGLE_THREAD_XLA_FLAGS in last, single_threaded, platforms)


class TuningSectionTest(absltest.TestCase):
  def test_the_sweep_summary_becomes_the_reports_tuning_section(self):
    root = tempfile.mkdtemp()
    report = write(os.path.join(root, "report.md"), "# Report\n\n## Curves\n")
    write(os.path.join(root, "sweep.md"), "# Sweep: selection\n\n| a |\n\n## adamw\n\n- note\n")
    tuning.append_to_report(report, os.path.join(root, "sweep.json"))
    with open(report, encoding="utf-8") as f:
      self.assertEqual(
        f.read(),
        "# Report\n\n## Curves\n\n## Tuning (launch.sweep, equal budgets): Sweep: selection\n"
        "\n| a |\n\n### adamw\n\n- note\n",
      )
    with self.assertRaisesRegex(ValueError, "sweep.md is missing"):
      tuning.append_to_report(report, os.path.join(tempfile.mkdtemp(), "sweep.json"))


if __name__ == "__main__":
  absltest.main()
