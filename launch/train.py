r"""Trains a Nexus (or baseline) language model: the main job.

  python -m launch.train --config=configs/tiny.py --workdir=runs/tiny \
      [--config.opt.name=adamw] [--config.opt.inner_learning_rate=0.02] [--config.train.steps=400]

Resumes automatically from the latest checkpoint in --workdir. On several processes (a TPU pod, a
GPU cluster), pass --coordinator_address/--num_processes/--process_id, or --distributed to let
jax.distributed.initialize() detect them (TPU VMs, SLURM); see launch/tpu_pod.sh and
launch/gpu_slurm.sh.

One trainer per workdir (a second one exits with an error naming the holder). Resuming with a config
that differs from the checkpoint's is refused unless --allow_config_change is given (the change is
recorded in <workdir>/history.jsonl). The terminal shows the progress, the summary and this
project's warnings; every library's log is in <workdir>/train.log (--verbose shows it on the
terminal too).

Exit codes (for schedulers and scripts):
  0   finished: every step ran (and at most train.max_skipped_fraction of them were skipped)
  1   error: one line on stderr saying what is wrong and what to do (bad flags or config, workdir in
      use, changed config, disk full, unreadable checkpoints, a stop on a non-finite step)
  3   trained, but too many steps were skipped as non-finite (all of them, or more than
      train.max_skipped_fraction); the checkpoints and metrics are kept
  75  preempted (SIGTERM): a checkpoint was saved; run the same command again to resume
      (75 is EX_TEMPFAIL from sysexits.h: a temporary failure, try again)
  130 interrupted (Ctrl-C): no extra checkpoint; run again to resume from the last saved one
"""

import errno
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Path to a configs/<name>.py file.", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Directory for checkpoints, metrics and TensorBoard logs."
)
_DISTRIBUTED = flags.DEFINE_bool(
  "distributed", False, "Call jax.distributed.initialize() with auto-detection."
)
_COORDINATOR = flags.DEFINE_string(
  "coordinator_address", None, "host:port of process 0 (multi-process runs)."
)
_NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes", None, "Number of processes (multi-process runs)."
)
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).")
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
  "allow_config_change",
  False,
  "Resume even if the config differs from the checkpoint's; the change is recorded in <workdir>/history.jsonl.",
)
_VERBOSE = flags.DEFINE_bool(
  "verbose", False, "Also show every library's INFO logs on the terminal."
)

EXIT_ERROR = 1
EXIT_TOO_MANY_SKIPPED = 3
EXIT_PREEMPTED = 75
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


def initialize_distributed() -> None:
  """Starts the multi-process runtime when asked to (before any other JAX call)."""
  import jax  # pylint: disable=g-import-not-at-top

  if _COORDINATOR.value is not None:
    if _NUM_PROCESSES.value is None or _PROCESS_ID.value is None:
      raise app.UsageError("--coordinator_address needs --num_processes and --process_id.")
    if os.environ.get("JAX_PLATFORMS", "") == "cpu":
      # Several CPU processes (e.g. tests on one machine) need a collectives backend.
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  elif _DISTRIBUTED.value:
    jax.distributed.initialize()


def _mfu(tokens_per_second: float) -> str:
  """MFU of the run (``nexus.model.flops``), against every device's bf16 peak, naming the device."""
  import jax  # pylint: disable=g-import-not-at-top

  from nexus import model as model_lib  # pylint: disable=g-import-not-at-top
  from nexus.train import schema  # pylint: disable=g-import-not-at-top

  config, kind = schema.from_config_dict(_CONFIG.value), jax.devices()[0].device_kind
  flops = model_lib.model_flops_per_token(config.model, config.train.seq_len)
  peak = model_lib.device_peak_flops()
  if peak is None:
    return f"n/a (no bf16 peak known for {kind}; {tokens_per_second * flops / 1e9:.1f} GFLOP/s)"
  return f"{100 * tokens_per_second * flops / (peak * jax.device_count()):.1f}% of {jax.device_count()} x {kind}"


def print_summary(summary: dict) -> None:
  metrics = summary["metrics_last"]
  print("\n=== Nexus training summary ===")
  print(
    f"steps completed      : {summary['step']}"
    + ("  (preempted: checkpoint saved)" if summary["preempted"] else "")
  )
  print(
    f"steps skipped        : {summary['skipped_steps']}  (non-finite loss or update; state kept)"
  )
  print(f"final train loss     : {metrics.get('train/loss', float('nan')):.4f}")
  for key in sorted(metrics):
    if key.startswith(("train/loss/", "eval/")):
      value = metrics[key]
      if isinstance(value, (int, float)):
        print(f"{key:21s}: {value:.4f}")
  print(f"throughput           : {summary['tokens_per_second']:.0f} tokens/s")
  print(f"model FLOPs util.    : {_mfu(summary['tokens_per_second'])}")
  print(f"checkpoints          : {summary['checkpoints']}")
  print(f"metrics (JSONL)      : {summary['metrics']}")
  print(f"TensorBoard          : tensorboard --logdir {summary['workdir']}/tb")
  print(f"log                  : {summary['log']}")


def parse_flags(argv: list[str]) -> list[str]:
  """Parses the flags; a bad flag or config override (e.g. an unknown field) is a one-line error."""
  try:
    remaining = flags.FLAGS(argv)
    if _CONFIG.value is not None:
      _CONFIG.value.get("train")  # a config file that failed to load raises its error on first use
  except (
    flags.Error,
    AttributeError,
    KeyError,
    TypeError,
    ValueError,
    SyntaxError,
    OSError,
  ) as error:
    raise SystemExit(_flag_error(error, argv)) from None
  return remaining


def _config_path(argv: list[str]) -> str:
  """The --config value as given on the command line (the flag itself may be unusable)."""
  path = "?"
  for index, arg in enumerate(argv):
    if arg.startswith("--config="):
      path = arg.split("=", 1)[1]
    elif arg == "--config" and index + 1 < len(argv):
      path = argv[index + 1]
  return path


def _flag_error(error: Exception, argv: list[str]) -> str:
  """One line for a bad flag: a missing or broken config file, or a bad override."""
  cause = error.__cause__ or error.__context__
  if isinstance(cause, SyntaxError) or isinstance(error, SyntaxError):
    syntax = cause if isinstance(cause, SyntaxError) else error
    return (
      f"error: the config file {syntax.filename} has a syntax error at line {syntax.lineno} "
      f"({syntax.msg}); fix it and run again."
    )
  message = " ".join(str(error).strip("\"'").split())
  if (
    isinstance(error, FileNotFoundError)
    or isinstance(cause, FileNotFoundError)
    or "No such file" in message
  ):
    return (
      f"error: the config file {_config_path(argv)} does not exist; pass an existing file, "
      "e.g. --config=configs/tiny.py."
    )
  return (
    f"error: bad flag or config override ({type(error).__name__}: {message}); "
    "check the --config.<section>.<field> names in configs/base.py."
  )


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=configs/tiny.py")
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required, e.g. --workdir=runs/tiny")
  from nexus.train import run_logging  # pylint: disable=g-import-not-at-top

  run_logging.quiet_terminal(verbose=_VERBOSE.value)
  initialize_distributed()
  from nexus.train import loop  # pylint: disable=g-import-not-at-top
  from nexus.train import workdir_lock  # pylint: disable=g-import-not-at-top

  try:
    summary = loop.train(
      _CONFIG.value, _WORKDIR.value, allow_config_change=_ALLOW_CONFIG_CHANGE.value
    )
  # Bad config, workdir in use, changed config, unreadable checkpoints, full disk, non-finite stop.
  except (ValueError, OSError, loop.NonFiniteError, workdir_lock.WorkdirLockedError) as error:
    message = " ".join(str(error).split())
    if isinstance(error, OSError) and error.errno == errno.ENOSPC and "free space" not in message:
      message += "; free space, then run again to resume from the last saved checkpoint"
    print(f"error: {message}", file=sys.stderr, flush=True)
    _exit(EXIT_ERROR)
  except KeyboardInterrupt:
    print(
      "\ninterrupted: run the same command again to resume from the last saved checkpoint.",
      file=sys.stderr,
      flush=True,
    )
    _exit(EXIT_INTERRUPTED)
  import jax  # pylint: disable=g-import-not-at-top

  if jax.process_index() == 0:
    print_summary(summary)
  if summary["status"] == loop.PREEMPTED:
    _exit(EXIT_PREEMPTED)
  if summary["status"] == loop.SKIPPED:
    print(
      f"error: {summary['skipped_steps']} of {summary['step']} steps were skipped (non-finite loss or update), "
      f"more than train.max_skipped_fraction={summary['max_skipped_fraction']}; lower the learning rate "
      "(or raise the fraction) and train again.",
      file=sys.stderr,
      flush=True,
    )
    _exit(EXIT_TOO_MANY_SKIPPED)


def _exit(code: int) -> None:
  sys.stdout.flush()
  raise SystemExit(code)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
