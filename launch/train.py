r"""Trains a Nexus (or baseline) language model: the main job.

  python -m launch.train --config=configs/tiny.py --workdir=runs/tiny \
      [--config.opt.name=adamw] [--config.opt.inner_learning_rate=0.02] [--config.train.steps=400]

Resumes automatically from the latest checkpoint in --workdir. On several processes (a TPU pod, a GPU
cluster), pass --coordinator_address/--num_processes/--process_id, or --distributed to let
jax.distributed.initialize() detect them (TPU VMs, SLURM); see launch/tpu_pod.sh and launch/gpu_slurm.sh.
"""

import os

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a configs/<name>.py file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and TensorBoard logs.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with auto-detection.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process runs).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-process runs).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-process runs).")


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


def print_summary(summary: dict) -> None:
  metrics = summary["metrics_last"]
  print("\n=== Nexus training summary ===")
  print(f"steps completed      : {summary['step']}" + ("  (preempted: checkpoint saved)" if summary["preempted"] else ""))
  print(f"final train loss     : {metrics.get('train/loss', float('nan')):.4f}")
  for key in sorted(metrics):
    if key.startswith(("train/loss/", "eval/")):
      value = metrics[key]
      if isinstance(value, (int, float)):
        print(f"{key:21s}: {value:.4f}")
  print(f"throughput           : {summary['tokens_per_second']:.0f} tokens/s")
  print(f"checkpoints          : {summary['checkpoints']}")
  print(f"metrics (JSONL)      : {summary['metrics']}")
  print(f"TensorBoard          : tensorboard --logdir {summary['workdir']}/tb")


def parse_flags(argv: list[str]) -> list[str]:
  """Parses the flags; a bad flag or config override (e.g. an unknown field) is a one-line error."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as error:
    message = str(error).strip("\"'")
    raise SystemExit(
        f"error: bad flag or config override ({type(error).__name__}: {message}); "
        "check the --config.<section>.<field> names in configs/base.py."
    ) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if _CONFIG.value is None:
    raise app.UsageError("--config is required, e.g. --config=configs/tiny.py")
  if not _WORKDIR.value:
    raise app.UsageError("--workdir is required, e.g. --workdir=runs/tiny")
  initialize_distributed()
  from nexus.train import loop  # pylint: disable=g-import-not-at-top

  try:
    summary = loop.train(_CONFIG.value, _WORKDIR.value)
  except (ValueError, loop.NonFiniteError) as error:  # bad configuration, or a stop on a non-finite step
    raise SystemExit(f"error: {error}") from None
  import jax  # pylint: disable=g-import-not-at-top

  if jax.process_index() == 0:
    print_summary(summary)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
