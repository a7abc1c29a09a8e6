"""Checkpoints of the whole training state with orbax: asynchronous, keep-last-N, robust resume.

A checkpoint of step N is the orbax step directory ``<directory>/N`` holding two items:

- ``state``: the train-state pytree (parameters, optimizer state, step, RNG key data ...), saved with
  ``StandardSave`` and restored straight into the shardings of an abstract state, so no array is ever
  gathered on one device;
- ``metadata``: JSON ``{"process_metadata": [m_0, m_1, ...]}``, the small dict each process passed to
  ``save`` (its data-iterator position differs per process; orbax writes JSON from process 0 only, so
  the dicts are gathered there first).

Robustness, the reason this wrapper exists:

- orbax writes into ``N.orbax-checkpoint-tmp...`` and renames it on commit, so a save cut short (SIGKILL,
  preemption) leaves no step N; the leftover is ignored, and replaced when step N is saved again.
- A committed checkpoint can still be damaged afterwards (truncated or deleted files, a bad disk).
  ``restore_latest`` tries the steps newest first; any failure is logged as a warning naming the step,
  and the previous step is tried. Nothing is deleted: a step found unreadable stays on disk until the
  resumed run saves that step again (it is then replaced) or keep-last-N retires it.
- If checkpoints exist but none can be restored, ``restore_latest`` raises a one-line ``ValueError``
  instead of returning None: silently training from scratch would mix a new run into the old one's
  directory. The usual cause is a changed model or optimizer config.
- With several processes, all of them restore the same step: each reads process-locally and a step counts
  as readable only when every process read it (a damaged shard may be read by one process only).
- A save that cannot be written (a full disk, a lost mount) raises ``CheckpointWriteError``: one line
  naming the step, the directory and the reason, instead of the tracebacks of orbax's writer threads.
"""

import contextlib
import errno
import json
import os
from typing import Any

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

_STATE = "state"
_METADATA = "metadata"


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (one line: step, directory, reason, what to do)."""


_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "RESOURCE_EXHAUSTED")


def _chain(error: BaseException) -> list[BaseException]:
  """``error`` and its causes and contexts (orbax and TensorStore wrap the writer's error)."""
  chain = []
  while error is not None and all(error is not seen for seen in chain):
    chain.append(error)
    error = error.__cause__ or error.__context__
  return chain


def _write_error_errno(error: BaseException) -> int | None:
  """ENOSPC when the chain says the disk is full (TensorStore raises ValueError: RESOURCE_EXHAUSTED ...)."""
  for link in _chain(error):
    if isinstance(link, OSError) and link.errno in (errno.ENOSPC, errno.EDQUOT):
      return errno.ENOSPC
    if any(text in str(link) for text in _DISK_FULL_TEXTS):
      return errno.ENOSPC
  return None


class Checkpointer:
  """Saves and restores ``(step, state, metadata)`` in one directory; see the module docstring.

  Every process of a multi-process run must make the same calls, in the same order.
  """

  def __init__(self, directory: str, *, keep: int = 3, async_save: bool = True):
    """Opens (and creates) ``directory``.

    Args:
      directory: where the step directories live (a local path or any path orbax/epath supports).
      keep: how many of the most recent checkpoints to keep.
      async_save: write checkpoints in a background thread; ``save`` returns once the arrays are
        copied off the devices, so the caller may donate or overwrite them right away.

    Raises:
      ValueError: ``keep`` is not a positive integer, or ``directory`` cannot be created or written.
    """
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 1:
      raise ValueError(
        f"keep={keep!r} must be a positive integer (the number of checkpoints to keep)."
      )
    if "://" not in str(directory):  # orbax needs absolute local paths; URLs (gs://...) are kept
      directory = os.path.abspath(directory)
    self._directory = str(directory)
    _check_writable(epath.Path(directory))
    self._manager = ocp.CheckpointManager(
      epath.Path(directory),
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=async_save),
    )
    self._unreadable_steps: set[int] = set()
    self._saving_step: int | None = None

  @contextlib.contextmanager
  def _writing(self, step: int | None):
    """Turns any failure to write step ``step`` into a one-line ``CheckpointWriteError``."""
    try:
      yield
    except CheckpointWriteError:
      raise
    except Exception as error:  # pylint: disable=broad-except  # orbax raises many types from its writers
      step_text = f"step {step}" if step is not None else "a checkpoint"
      if _write_error_errno(error) == errno.ENOSPC:
        raise CheckpointWriteError(
          errno.ENOSPC,
          f"disk full while saving checkpoint {step_text} in {self._directory} ({os.strerror(errno.ENOSPC)}); "
          "free space or lower --config.checkpoint.keep, then run again to resume from the last saved step.",
        ) from None
      raise CheckpointWriteError(
        errno.EIO,
        f"could not save checkpoint {step_text} in {self._directory} ({_one_line(error)}); check the directory, "
        "then run again to resume from the last saved step.",
      ) from None

  def save(self, step: int, state: Any, metadata: dict, *, force: bool = False) -> None:
    """Saves ``state`` and ``metadata`` as step ``step``, keeping the last ``keep`` checkpoints.

    Saving a step that is already saved (or being saved) is a no-op, so the preemption handler may save
    the step that a periodic save has just written. A step that ``restore_latest`` found unreadable is
    replaced instead.

    Args:
      step: the completed step number (a non-negative int).
      state: a pytree of (possibly sharded) jax arrays.
      metadata: a JSON-serialisable dict (data-iterator state, config, ...); tuples come back as lists.
      force: the preemption save: also block until the checkpoint is committed, since the process is
        about to exit.

    Raises:
      ValueError: ``step`` is not a non-negative int or ``metadata`` is not a JSON-serialisable dict.
    """
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
      raise ValueError(
        f"checkpoint step {step!r} must be a non-negative int; pass the completed step number."
      )
    step = int(step)
    metadata_json = _metadata_json(metadata)
    if step in self._manager.all_steps():
      if step not in self._unreadable_steps:
        logging.info(
          "Checkpoint step %d is already saved in %s; not saving it again.", step, self._directory
        )
        if force:
          self.wait()
        return
      logging.warning(
        "Replacing the unreadable checkpoint of step %d in %s.", step, self._directory
      )
      self._manager.delete(step)
      self._unreadable_steps.discard(step)
    process_metadata = [json.loads(text) for text in _gather_from_processes(metadata_json)]
    with self._writing(step):
      self._manager.save(
        step,
        args=ocp.args.Composite(
          **{
            _STATE: ocp.args.StandardSave(state),
            _METADATA: ocp.args.JsonSave({"process_metadata": process_metadata}),
          }
        ),
        force=True,  # the caller decides when to save; orbax's save-interval policy is not used
      )
    self._saving_step = step
    if force:
      self.wait()

  def latest_step(self) -> int | None:
    """The newest saved step (including a save still in flight), or None when there is none."""
    return self._manager.latest_step()

  def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict] | None:
    """Restores the newest readable checkpoint, falling back past damaged ones with a warning.

    Args:
      abstract_state: the state's pytree of ``jax.ShapeDtypeStruct`` with ``sharding`` set; arrays are
        restored directly into those shardings (and dtypes).

    Returns:
      ``(step, state, metadata)`` with this process's metadata dict, or None when there is no checkpoint.

    Raises:
      ValueError: a leaf of ``abstract_state`` has no sharding, or checkpoints exist but none of them
        could be restored (one line naming the directory and the newest checkpoint's error).
    """
    _check_abstract_state(abstract_state)
    self.wait()
    reader = _process_local_reader(self._directory)
    try:
      return self._restore_newest_readable(reader, abstract_state)
    finally:
      reader.close()

  def _restore_newest_readable(self, reader: ocp.CheckpointManager, abstract_state: Any):
    """Tries the steps newest first; see ``restore_latest``."""
    steps = sorted(reader.all_steps(), reverse=True)
    if not steps:
      return None
    newest_error = None
    for index, step in enumerate(steps):
      try:
        restored = reader.restore(
          step,
          args=ocp.args.Composite(
            **{
              _STATE: ocp.args.StandardRestore(abstract_state),
              _METADATA: ocp.args.JsonRestore(),
            }
          ),
        )
        metadata = _this_process_metadata(restored[_METADATA])
        error = None
      except Exception as caught:  # pylint: disable=broad-except  # any failure makes the step unusable
        error = caught
      if _all_processes_succeeded(error is None):
        if index:
          logging.warning(
            "Resumed from checkpoint step %d in %s after skipping unreadable steps %s.",
            step,
            self._directory,
            steps[:index],
          )
        return step, restored[_STATE], metadata
      error = error or RuntimeError("another process could not read it")
      newest_error = newest_error or error
      self._unreadable_steps.add(step)
      next_try = (
        f"falling back to step {steps[index + 1]}"
        if index + 1 < len(steps)
        else "no earlier step is left"
      )
      logging.warning(
        "Checkpoint step %d in %s is unreadable (%s); %s. It is left on disk.",
        step,
        self._directory,
        _one_line(error),
        next_try,
      )
    raise ValueError(
      f"none of the checkpoints in {self._directory} (steps {steps}) could be restored; the newest failed "
      f"with {_one_line(newest_error)}. If the model, optimizer or process count changed, use a new "
      "directory; otherwise move the damaged steps out of it."
    )

  def latest_metadata(self) -> tuple[int, dict] | None:
    """``(step, this process's metadata)`` of the newest checkpoint whose metadata reads, or None.

    Reads no arrays, so a run can check what it is about to resume (e.g. its config) before restoring.
    """
    self.wait()
    reader = _process_local_reader(self._directory)
    try:
      for step in sorted(reader.all_steps(), reverse=True):
        try:
          restored = reader.restore(
            step, args=ocp.args.Composite(**{_METADATA: ocp.args.JsonRestore()})
          )
          return step, _this_process_metadata(restored[_METADATA])
        except Exception as error:  # pylint: disable=broad-except  # restore_latest reports damaged steps
          logging.info("Metadata of checkpoint step %d is unreadable (%s).", step, _one_line(error))
      return None
    finally:
      reader.close()

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are committed.

    Raises:
      CheckpointWriteError: a pending save failed (e.g. the disk is full).
    """
    with self._writing(self._saving_step):
      self._manager.wait_until_finished()

  def close(self) -> None:
    """Finishes pending saves and releases orbax's resources.

    Raises:
      CheckpointWriteError: a pending save failed (e.g. the disk is full).
    """
    with self._writing(self._saving_step):
      self._manager.close()


def _process_local_reader(directory: str) -> ocp.CheckpointManager:
  """A manager that restores without orbax's cross-process barriers.

  A damaged file may be read by one process only; with orbax's barriers inside the restore, that process
  would then skip barriers the others wait at, and the processes could end up on different steps. Reading
  process-locally and then agreeing with ``_all_processes_succeeded`` keeps them on the same step.
  """
  this_process = jax.process_index()
  return ocp.CheckpointManager(
    epath.Path(directory),
    options=ocp.CheckpointManagerOptions(
      create=False,
      multiprocessing_options=ocp.options.MultiprocessingOptions(
        primary_host=this_process, active_processes={this_process}
      ),
    ),
  )


def _check_writable(directory: epath.Path) -> None:
  """Creates ``directory`` and writes a probe file, so a bad path fails here rather than at the first save."""
  probe = directory / f".write-probe-{jax.process_index()}-{os.getpid()}"
  try:
    directory.mkdir(parents=True, exist_ok=True)
    probe.write_text("")
    probe.unlink()
  except Exception as error:  # pylint: disable=broad-except  # OSError locally, other types on cloud storage
    reason = getattr(error, "strerror", None) or _one_line(error)
    raise ValueError(
      f"checkpoint directory {str(directory)!r} is not writable ({reason}); fix its permissions or "
      "choose a writable directory."
    ) from None


def _metadata_json(metadata: Any) -> str:
  if not isinstance(metadata, dict):
    raise ValueError(
      f"checkpoint metadata must be a dict, got {type(metadata).__name__}; wrap it in a dict."
    )
  try:
    return json.dumps(metadata)
  except (TypeError, ValueError) as error:
    raise ValueError(
      f"checkpoint metadata is not JSON-serialisable ({error}); convert it to dicts, lists, str and numbers."
    ) from None


def _check_abstract_state(abstract_state: Any) -> None:
  for path, leaf in jax.tree_util.tree_leaves_with_path(abstract_state):
    if getattr(leaf, "sharding", None) is None:
      raise ValueError(
        f"abstract_state leaf {jax.tree_util.keystr(path)} has no sharding; build it as "
        "jax.ShapeDtypeStruct(shape, dtype, sharding=...) (e.g. from jax.eval_shape plus the state shardings)."
      )


def _gather_from_processes(text: str) -> list[str]:
  """Every process's ``text``, in process order. A collective: every process must call it."""
  if jax.process_count() == 1:
    return [text]
  data = np.frombuffer(text.encode(), np.uint8)
  lengths = np.asarray(multihost_utils.process_allgather(np.array(data.size, np.int32))).ravel()
  padded = np.zeros(int(lengths.max()), np.uint8)
  padded[: data.size] = data
  rows = np.asarray(multihost_utils.process_allgather(padded))
  return [bytes(row[:length]).decode() for row, length in zip(rows, lengths)]


def _all_processes_succeeded(succeeded: bool) -> bool:
  """True when ``succeeded`` holds on every process. A collective: every process must call it."""
  if jax.process_count() == 1:
    return succeeded
  return bool(np.asarray(multihost_utils.process_allgather(np.array(succeeded, np.int32))).min())


def _this_process_metadata(saved: Any) -> dict:
  """Picks this process's dict out of the saved ``{"process_metadata": [...]}``."""
  per_process = saved["process_metadata"]
  if len(per_process) != jax.process_count():
    raise ValueError(
      f"saved by {len(per_process)} processes but this run has {jax.process_count()}"
    )
  metadata = per_process[jax.process_index()]
  if not isinstance(metadata, dict):
    raise ValueError(f"the saved metadata of process {jax.process_index()} is not a dict")
  return metadata


def _one_line(error: BaseException) -> str:
  """``Type: first line of the message``, short enough for a log line."""
  lines = str(error).strip().splitlines()
  message = lines[0] if lines else ""
  return f"{type(error).__name__}: {message[:200]}"
