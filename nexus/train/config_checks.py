"""Checks of a training config that must fail in one line before any data, model or compile work."""

import os

NONFINITE_POLICIES = ("skip", "stop")


def _positive(value, name: str) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"config.{name}={value!r} must be a positive integer.")


def check_workdir(workdir: str) -> None:
  """The workdir must exist or be creatable, and be writable."""
  if not workdir:
    raise ValueError("--workdir is required: pass a directory for checkpoints and logs.")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as error:
    raise ValueError(
      f"cannot create workdir {workdir!r} ({error.strerror}); pass a writable --workdir."
    ) from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise ValueError(
      f"workdir {workdir!r} is not writable; fix its permissions or pass another --workdir."
    )


def check_train_config(config, *, num_devices: int, process_count: int, batch_shards: int) -> None:
  """Validates the train/eval/checkpoint sections against the mesh and processes.

  Args:
    config: the full experiment ConfigDict.
    num_devices: devices in the mesh.
    process_count: JAX processes.
    batch_shards: the product of the mesh axes the batch is split over (data × fsdp).
  """
  del num_devices
  train = config.train
  for name in ("steps", "num_inner_steps", "global_batch_size", "seq_len", "log_every"):
    _positive(train[name], f"train.{name}")
  _positive(config.eval.batch_size, "eval.batch_size")
  _positive(config.eval.num_batches, "eval.num_batches")
  _positive(config.checkpoint.every, "checkpoint.every")
  _positive(config.checkpoint.keep, "checkpoint.keep")
  if config.eval.every < 0:
    raise ValueError(f"config.eval.every={config.eval.every} must be >= 0 (0 disables evaluation).")
  fraction = train.max_skipped_fraction
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
    raise ValueError(
      f"config.train.max_skipped_fraction={fraction!r} must be a number in [0, 1] (the share of non-finite "
      "steps a run may skip before it counts as failed)."
    )
  if train.nonfinite not in NONFINITE_POLICIES:
    raise ValueError(
      f"config.train.nonfinite={train.nonfinite!r} is not one of {NONFINITE_POLICIES}."
    )
  if train.global_batch_size % batch_shards:
    raise ValueError(
      f"config.train.global_batch_size={train.global_batch_size} is not divisible by the data x fsdp "
      f"mesh size {batch_shards}; use a multiple of {batch_shards}."
    )
  if train.global_batch_size % process_count:
    raise ValueError(
      f"config.train.global_batch_size={train.global_batch_size} is not divisible by the "
      f"{process_count} processes; use a multiple of {process_count}."
    )
  if train.seq_len > config.model.max_seq_len:
    raise ValueError(
      f"config.train.seq_len={train.seq_len} exceeds config.model.max_seq_len={config.model.max_seq_len}; "
      "shorten the sequences or enlarge the model's max_seq_len."
    )
