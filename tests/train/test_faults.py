"""The fault matrix: every failure a user can cause or meet, with its exit code and first line of message.

| case                                        | exit | first line                                                    |
|---------------------------------------------|------|---------------------------------------------------------------|
| second trainer on a workdir                 | 1    | error: workdir '...' is in use by another trainer (pid P on host H, since T) ... |
| stale lock of a dead trainer                | -    | (taken over; warning naming the dead holder)                  |
| resume with a changed config                | 1    | error: config differs from the checkpoint's at step S: opt.learning_rate 0.001 -> 0.002; pass --allow_config_change ... |
| resume with a changed model shape or K      | 1    | error: config differs ...: model.d_model 32 -> 64, train.num_inner_steps 2 -> 4; ... |
| ... the same with --allow_config_change     | 1    | error: none of the checkpoints in ... could be restored; ...  |
| every step skipped (non-finite)             | 3    | error: 3 of 3 steps were skipped (non-finite loss or update), more than train.max_skipped_fraction=0.1; ... |
| SIGTERM (preemption), one or two processes  | 75   | (summary: "steps completed : S  (preempted: checkpoint saved)") |
| a bad hyperparameter (e.g. γ = 0)           | 1    | error: opt.inner_learning_rate must be in (0.0, inf), got 0.0; γ = 0 makes nexus train nothing; ... (no workdir, no corpus build) |
| Ctrl-C (SIGINT)                             | 130  | interrupted: run the same command again to resume from the last saved checkpoint. |
| missing config file                         | 1    | error: the config file F does not exist; pass an existing file, e.g. --config=configs/tiny.py. |
| config file with a syntax error             | 1    | error: the config file F has a syntax error at line N (...); fix it and run again. |
| disk full during a save                     | 1    | error: [Errno 28] disk full while saving checkpoint step S in D (No space left on device); ... |
| disk full while writing metrics             | 1    | error: [Errno 28] No space left on device while writing F; free space ... |
| torn last line of metrics.jsonl             | -    | (dropped; warning naming the file)                            |

Crash cases covered elsewhere: SIGKILL then resume, a corrupted latest checkpoint
(test_training.py), damaged, half-written and unreadable checkpoints (test_checkpoint.py).

Trainers run in this process where the message is the point, and as ``python -m launch.train``
subprocesses where the exit code, a signal or the terminal output is.
"""

import errno
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from unittest import mock

from absl.testing import absltest
import numpy as np
import portpicker
import pytest

from nexus.train import checkpoint as checkpoint_lib
from nexus.train import loop
from nexus.train import metrics as metrics_lib
from nexus.train import run_history
from nexus.train import workdir_lock
from tests.train import harness
from tests.train.test_training import checkpoint_steps
from tests.train.test_training import train_records

QUICK = {"eval.every": 0, "train.steps": 2}
TRAINED = {"train.steps": 4, "checkpoint.every": 2}
# A finite learning rate (the optimizer validation rejects inf) whose update norm overflows float32:
# every step after the warm-up's first (learning rate 0) is non-finite and skipped.
DIVERGING = {"opt.learning_rate": 1e30, "opt.name": "adamw", "train.steps": 3}


def make_workdir(test, parent=None) -> str:
  path = tempfile.mkdtemp(prefix="nexus-fault-", dir=parent)
  test.addCleanup(shutil.rmtree, path, ignore_errors=True)
  return path


def config_with(overrides: dict):
  return harness.config_with({**QUICK, **overrides})


def train_here(workdir: str, overrides: dict | None = None, **kwargs) -> dict:
  """Trains in this process, on one of its devices."""
  return harness.train_here(workdir, {**QUICK, **(overrides or {})}, **kwargs)


def launch(
  workdir: str, overrides: dict | None = None, *, extra_flags: tuple = (), config: str | None = None
):
  """Runs ``python -m launch.train`` to the end; returns the completed process."""
  command = harness.command(workdir, {**QUICK, **(overrides or {})}, extra_flags)
  if config is not None:
    command[3] = f"--config={config}"
  return subprocess.run(
    command,
    cwd=harness.REPO_ROOT,
    env=harness.environment(),
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )


@functools.cache
def _trained() -> tuple[str, dict]:
  """A 4-step run with checkpoints at 2 and 4, shared by the tests that copy it; also which train records
  were on disk when each checkpoint save started."""
  workdir = tempfile.mkdtemp(prefix="nexus-fault-trained-")
  logged_at_save = {}
  original = checkpoint_lib.Checkpointer.save

  def save(checkpointer, step, *args, **kwargs):
    logged_at_save[step] = [
      r["step"] for r in metrics_lib.read_metrics(workdir) if "train/loss" in r
    ]
    return original(checkpointer, step, *args, **kwargs)

  with mock.patch.object(checkpoint_lib.Checkpointer, "save", save):
    train_here(workdir, TRAINED)
  return workdir, logged_at_save


def trained_copy(test) -> str:
  """A private copy of the shared 4-step run."""
  workdir = os.path.join(make_workdir(test), "run")
  shutil.copytree(_trained()[0], workdir)
  return workdir


def dead_pid() -> int:
  process = subprocess.Popen([sys.executable, "-c", ""])
  process.wait()
  return process.pid


class WorkdirLockTest(absltest.TestCase):
  def test_second_trainer_exits_with_the_holders_pid_and_host(self):
    workdir = make_workdir(self)
    with workdir_lock.WorkdirLock(workdir):
      result = launch(workdir)
    self.assertEqual(result.returncode, 1, result.stderr[-2000:])
    self.assertStartsWith(
      result.stderr,
      f"error: workdir {workdir!r} is in use by another trainer (pid {os.getpid()} on host "
      f"{socket.gethostname()}, since ",
    )
    self.assertLen(result.stderr.strip().splitlines(), 1)
    self.assertEqual(
      sorted(os.listdir(workdir)), [workdir_lock.LOCK_NAME]
    )  # refused before any work

  def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(self):
    workdir = make_workdir(self)
    pid = dead_pid()
    with open(os.path.join(workdir, workdir_lock.LOCK_NAME), "w", encoding="utf-8") as f:
      json.dump({"pid": pid, "host": socket.gethostname(), "since": "earlier"}, f)
    with self.assertLogs(level="WARNING") as logs, workdir_lock.WorkdirLock(workdir):
      with open(os.path.join(workdir, workdir_lock.LOCK_NAME), encoding="utf-8") as f:
        self.assertEqual(json.load(f)["pid"], os.getpid())
    self.assertIn(f"pid {pid} on host {socket.gethostname()}", "\n".join(logs.output))

  def test_lock_is_released_on_exit_and_on_errors(self):
    workdir = make_workdir(self)
    with self.assertRaises(RuntimeError), workdir_lock.WorkdirLock(workdir):
      with self.assertRaises(workdir_lock.WorkdirLockedError):
        workdir_lock.WorkdirLock(workdir).acquire()
      raise RuntimeError("a failing run")
    with workdir_lock.WorkdirLock(workdir):  # free again
      pass
    with open(os.path.join(workdir, workdir_lock.LOCK_NAME), encoding="utf-8") as f:
      self.assertEqual(f.read(), "")  # no holder recorded after release


class ConfigIdentityTest(absltest.TestCase):
  @pytest.mark.slow
  def test_changed_config_is_refused_then_allowed_and_recorded(self):
    workdir = trained_copy(self)
    before = metrics_lib.read_metrics(workdir)
    changed = {**TRAINED, "opt.learning_rate": 0.002, "train.steps": 5}
    with self.assertRaises(run_history.ConfigChangedError) as refused:
      train_here(workdir, changed)
    self.assertStartsWith(
      str(refused.exception),
      "config differs from the checkpoint's at step 4: opt.learning_rate 0.001 -> 0.002, "
      "train.steps 4 -> 5; pass --allow_config_change to continue with the new config (recorded in ",
    )
    self.assertEqual(metrics_lib.read_metrics(workdir), before)  # nothing ran
    summary = train_here(workdir, changed, allow_config_change=True)
    self.assertEqual(summary["step"], 5)
    with open(os.path.join(workdir, run_history.HISTORY_NAME), encoding="utf-8") as f:
      history = [json.loads(line) for line in f]
    self.assertEqual(
      [entry["event"] for entry in history], ["start", "stop", "config_change", "resume", "stop"]
    )
    self.assertEqual(history[2]["changes"]["opt.learning_rate"], {"from": 0.001, "to": 0.002})
    self.assertEqual(history[2]["step"], 4)

  def test_neutral_fields_may_change(self):
    saved = config_with({}).to_dict()
    current = config_with(
      {"checkpoint.every": 7, "train.log_every": 5, "mesh.data": 1, "eval.every": 3}
    ).to_dict()
    self.assertEqual(run_history.config_changes(saved, current), [])
    current["opt"]["b1"] = float("nan")
    self.assertEqual(
      [field for field, _, _ in run_history.config_changes(saved, current)], ["opt.b1"]
    )
    saved["opt"]["b1"] = float("nan")
    self.assertEqual(run_history.config_changes(saved, current), [])

  @pytest.mark.slow
  def test_changed_model_shape_or_k_is_one_line_without_asyncio_noise(self):
    workdir = trained_copy(self)
    changed = {**TRAINED, "model.d_model": 64, "train.num_inner_steps": 4}
    refused = launch(workdir, changed)
    self.assertEqual(refused.returncode, 1)
    self.assertEqual(
      refused.stderr.strip().splitlines(),
      [
        f"error: config differs from the checkpoint's at step 4: model.d_model 32 -> 64, train.num_inner_steps 2 -> 4; "
        f"pass --allow_config_change to continue with the new config (recorded in {workdir}/history.jsonl), or use "
        "a new --workdir."
      ],
    )
    forced = launch(workdir, changed, extra_flags=("--allow_config_change",))
    self.assertEqual(forced.returncode, 1)
    lines = forced.stderr.strip().splitlines()
    self.assertStartsWith(
      lines[-1],
      f"error: none of the checkpoints in {workdir}/checkpoints (steps [4, 2]) could be restored",
    )
    self.assertTrue(
      all("Traceback" not in line and "Event loop" not in line for line in lines), lines
    )
    self.assertLessEqual(
      len(lines), 3, lines
    )  # the error and at most the fallback warning per step


class ExitCodeTest(absltest.TestCase):
  @pytest.mark.slow
  def test_a_run_that_skips_every_step_exits_3_with_the_count(self):
    workdir = make_workdir(self)
    result = launch(workdir, DIVERGING)
    self.assertEqual(result.returncode, 3, result.stderr[-2000:])
    match = re.search(r"steps skipped\s+: (\d+)", result.stdout)
    self.assertIsNotNone(match, result.stdout)
    skipped = int(match.group(1))
    self.assertGreaterEqual(skipped, 2)
    self.assertEqual(
      result.stderr.strip().splitlines(),
      [
        f"error: {skipped} of 3 steps were skipped (non-finite loss or update), more than "
        "train.max_skipped_fraction=0.1; lower the learning rate (or raise the fraction) and train again."
      ],
    )
    rows = train_records(workdir)
    self.assertEqual(
      rows[-2]["param_norm"], rows[-1]["param_norm"]
    )  # a skipped step left the state as it was

  def test_skipped_fraction_rule(self):
    self.assertFalse(loop._too_many_skipped(0, 10, 0.1))
    self.assertFalse(loop._too_many_skipped(1, 10, 0.1))
    self.assertTrue(loop._too_many_skipped(2, 10, 0.1))
    self.assertTrue(loop._too_many_skipped(10, 10, 1.0))  # all skipped fails whatever the fraction
    self.assertFalse(loop._too_many_skipped(0, 0, 0.0))

  @pytest.mark.slow
  def test_nonfinite_stop_is_one_line(self):
    with self.assertRaisesRegex(
      loop.NonFiniteError,
      r"^non-finite loss or update at step \d+; the state was kept at step \d+\. ",
    ):
      train_here(make_workdir(self), {**DIVERGING, "train.nonfinite": "stop"})

  @pytest.mark.slow
  def test_sigterm_saves_a_checkpoint_and_exits_75(self):
    workdir = make_workdir(self)
    process = harness.start(
      workdir, {"train.steps": 100000, "checkpoint.every": 100000, "eval.every": 0}
    )
    deadline = time.time() + 300
    while time.time() < deadline and len(train_records(workdir)) < 2:
      time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=300)
    self.assertEqual(process.returncode, 75, stderr[-3000:])
    self.assertRegex(stdout, r"steps completed\s+: \d+  \(preempted: checkpoint saved\)")
    saved = checkpoint_steps(workdir)
    self.assertLen(saved, 1)
    self.assertEqual(train_records(workdir)[-1]["step"], saved[0])  # its record is in the log

  def test_ctrl_c_is_raised_between_steps_and_a_second_one_at_once(self):
    before = signal.getsignal(signal.SIGINT)
    with loop._Interrupt() as interrupt:  # pylint: disable=protected-access
      interrupt.check()  # nothing yet
      os.kill(os.getpid(), signal.SIGINT)  # recorded, not raised here
      with self.assertRaises(KeyboardInterrupt):
        interrupt.check()
      with self.assertRaises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler runs in this thread at the next bytecode
    self.assertIs(signal.getsignal(signal.SIGINT), before)

  @pytest.mark.slow
  def test_ctrl_c_exits_130_in_one_line_and_releases_the_lock(self):
    workdir = make_workdir(self)
    process = harness.start(
      workdir, {"train.steps": 100000, "checkpoint.every": 1, "eval.every": 0}
    )
    deadline = time.time() + 300
    while time.time() < deadline and not checkpoint_steps(workdir):
      time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    self.assertEqual(process.returncode, 130, stderr[-3000:])
    self.assertEqual(
      stderr.strip().splitlines(),
      ["interrupted: run the same command again to resume from the last saved checkpoint."],
    )
    with workdir_lock.WorkdirLock(workdir):  # released
      pass


class OneLineErrorTest(absltest.TestCase):
  def test_missing_config_file(self):
    result = launch(make_workdir(self), config="configs/no_such_config.py")
    self.assertEqual(result.returncode, 1)
    self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
    self.assertStartsWith(
      result.stderr,
      "error: the config file configs/no_such_config.py does not exist; pass an "
      "existing file, e.g. --config=configs/tiny.py.",
    )

  def test_config_file_with_a_syntax_error(self):
    directory = make_workdir(self)
    path = os.path.join(directory, "broken.py")
    with open(path, "w", encoding="utf-8") as f:
      f.write("def get_config(:\n  pass\n")
    result = launch(make_workdir(self), config=path)
    self.assertEqual(result.returncode, 1)
    self.assertEqual(
      result.stderr.strip().splitlines(),
      [
        f"error: the config file {path} has a syntax error at line 1 (invalid syntax); fix it and run again."
      ],
    )

  def test_bad_hyperparameter_fails_before_any_work(self):
    parent = make_workdir(self)
    workdir, cache = os.path.join(parent, "run"), os.path.join(parent, "cache")
    with mock.patch.dict(os.environ, {"NEXUS_CACHE_DIR": cache}):
      with self.assertRaisesRegex(
        ValueError, r"inner_learning_rate"
      ):  # the optimizer API's own check
        loop.train(config_with({"opt.inner_learning_rate": 0.0}), workdir)
    self.assertEqual(os.listdir(parent), [])  # no workdir, no corpus build

  @pytest.mark.slow
  def test_disk_full_during_a_save_is_one_line(self):
    mount = make_workdir(self)
    if _mount_tmpfs(mount, "700k"):
      self.addCleanup(subprocess.run, ["umount", "-l", mount], check=False)
      workdir = os.path.join(mount, "run")
      result = launch(
        workdir, {"train.steps": 6}
      )  # checkpoint 2 fits (about 0.5 MB on disk), checkpoint 4 does not
      self.assertEqual(result.returncode, 1, result.stderr[-3000:])
      lines = result.stderr.strip().splitlines()
      self.assertLen(lines, 1)
      message = lines[0]
    else:  # not root: the same failure, simulated where orbax writes (say so in the report)
      workdir = make_workdir(self)
      full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      with mock.patch(
        "orbax.checkpoint.CheckpointManager.save", side_effect=RuntimeError("writer failed")
      ) as save:
        save.side_effect.__cause__ = full
        with self.assertRaises(checkpoint_lib.CheckpointWriteError) as error:
          train_here(workdir, {"train.steps": 6})
      message = f"error: {error.exception}"
    # The checkpoint writer usually meets the full disk first; the metrics log, TensorBoard or the
    # run's log file may instead (then the launcher's generic ENOSPC line, with the same fix).
    self.assertRegex(
      message,
      r"^error: \[Errno 28\] (disk full while saving checkpoint step \d+ in \S+checkpoints "
      r"\(No space left on device\); free space|No space left on device while writing "
      r"|No space left on device; free space, then run again)",
    )


def _mount_tmpfs(path: str, size: str) -> bool:
  """Mounts a small tmpfs at ``path`` when this process may (root); False otherwise."""
  if os.geteuid() != 0:
    return False
  result = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True, check=False
  )
  return result.returncode == 0


class MetricsConsistencyTest(absltest.TestCase):
  def test_torn_last_line_is_dropped_with_a_warning_naming_the_file(self):
    workdir = make_workdir(self)
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path, "w", encoding="utf-8") as f:
      f.write(
        '{"step": 1, "train/loss": 2.0}\n{"step": 2, "train/loss": 1.5}\n{"step": 3, "train/lo'
      )
    with self.assertLogs(level="WARNING") as logs:
      self.assertEqual([r["step"] for r in metrics_lib.read_metrics(workdir)], [1, 2])
    self.assertIn(path, "\n".join(logs.output))
    metrics_lib.truncate_metrics(workdir, 1)
    with open(path, encoding="utf-8") as f:
      self.assertEqual(f.read(), '{"step": 1, "train/loss": 2.0}\n')

  def test_a_damaged_line_inside_the_log_names_the_file_and_line(self):
    workdir = make_workdir(self)
    path = os.path.join(workdir, "metrics.jsonl")
    with open(path, "w", encoding="utf-8") as f:
      f.write('{"step": 1}\nnot json\n{"step": 3}\n')
    with self.assertRaisesRegex(ValueError, f"^{path} line 2 is not a metrics record"):
      metrics_lib.read_metrics(workdir)

  @pytest.mark.slow
  def test_a_steps_record_is_durable_before_its_checkpoint_save_starts(self):
    self.assertEqual(_trained()[1], {2: [1, 2], 4: [1, 2, 3, 4]})

  @pytest.mark.slow
  def test_resume_after_a_kill_has_every_record_once_and_in_order(self):
    workdir = trained_copy(self)
    shutil.rmtree(
      os.path.join(workdir, "checkpoints", "4")
    )  # killed before step 4's checkpoint committed
    with open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8") as f:
      f.write('{"step": 5, "train/lo')  # ... and mid-write of a later record
    train_here(workdir, TRAINED)
    self.assertEqual([r["step"] for r in train_records(workdir)], [1, 2, 3, 4])


@pytest.mark.slow
class MultiHostPreemptionTest(absltest.TestCase):
  def test_sigterm_to_one_of_two_processes_stops_both_at_the_same_step_and_resumes_exactly(self):
    settings = {
      "train.steps": 12,
      "eval.every": 0,
      "checkpoint.every": 1000,
      "mesh.data": 2,
      "mesh.fsdp": 4,
    }
    reference = make_workdir(self)
    harness.train_here(reference, settings, devices=8)  # one process of the session's 8 devices
    workdir = make_workdir(self)
    processes = _start_two_processes(workdir, settings)
    deadline = time.time() + 300
    while time.time() < deadline and len(train_records(workdir)) < 2:
      time.sleep(0.1)
    processes[1].send_signal(signal.SIGTERM)
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (_, stderr) in zip(processes, outputs):
      self.assertEqual(process.returncode, 75, stderr[-3000:])
    saved = checkpoint_steps(workdir)
    self.assertLen(saved, 1)
    self.assertLess(saved[0], settings["train.steps"])
    for process in _start_two_processes(workdir, settings):
      _, stderr = process.communicate(timeout=300)
      self.assertEqual(process.returncode, 0, stderr[-3000:])
    got = train_records(workdir)
    self.assertEqual([r["step"] for r in got], list(range(1, settings["train.steps"] + 1)))
    np.testing.assert_allclose(
      [r["train/loss"] for r in got], [r["train/loss"] for r in train_records(reference)], rtol=2e-5
    )


def _start_two_processes(workdir: str, settings: dict) -> list[subprocess.Popen]:
  port = portpicker.pick_unused_port()
  return [
    subprocess.Popen(
      harness.command(
        workdir,
        settings,
        extra_flags=(
          f"--coordinator_address=127.0.0.1:{port}",
          "--num_processes=2",
          f"--process_id={i}",
        ),
      ),
      cwd=harness.REPO_ROOT,
      env=harness.environment(num_devices=4),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]


if __name__ == "__main__":
  absltest.main()
