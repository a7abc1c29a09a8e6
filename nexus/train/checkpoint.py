"""Checkpoints of a training run with orbax: separate items, asynchronous, keep-last-N, robust resume.

A checkpoint of step N is the orbax step directory ``<directory>/N`` holding one item per part:

- ``params``: the model parameters (a pure dict of arrays). ``load_params`` reads this item alone,
  with shapes from orbax's metadata, so evaluation builds neither the optimizer nor the schedule;
- ``opt_state``: the optimizer state;
- ``counters``: the train state's other fields (step, skipped-step count), a dict by field name;
- ``data``: the data iterator's position, written by grain's own orbax handler
  (``grain.checkpoint``) as one JSON file per process (``process_<i>-of-<n>.json``), so every
  process resumes its own stream;
- ``config``: the run's config as JSON, which ``run_history`` compares with a resumed run's config.

Arrays are saved with ``StandardSave`` and restored straight into the shardings of an abstract
state, so no array is ever gathered on one device. The train state is a NamedTuple with ``params``
and ``opt_state`` fields (``nexus.train.step.TrainState``).

Robustness, the reason this wrapper exists:

- orbax writes into ``N.orbax-checkpoint-tmp...`` and renames it on commit, so a save cut short
  (SIGKILL, preemption) leaves no step N; the leftover is ignored, and replaced when step N is saved
  again.
- A committed checkpoint can still be damaged afterwards (truncated or deleted files, a bad disk).
  ``restore_latest`` tries the steps newest first; a step counts only when every item reads. Any
  failure is logged as a warning naming the step, and the previous step is tried. Nothing is
  deleted: a step found unreadable stays on disk until the resumed run saves that step again (it is
  then replaced) or keep-last-N retires it.
- If checkpoints exist but none can be restored, ``restore_latest`` raises a one-line ``ValueError``
  instead of returning None: silently training from scratch would mix a new run into the old one's
  directory. The usual cause is a changed model or optimizer config.
- Checkpoints of the older layout (one ``state`` item plus a ``metadata`` blob) are refused with a
  one-line ``ValueError``, for the same reason.
- With several processes, all of them restore the same step: each reads process-locally and a step
  counts as readable only when every process read it (a damaged shard may be read by one process
  only).
- A save that cannot be written (a full disk, a lost mount) raises ``CheckpointWriteError``: one
  line naming the step, the directory and the reason, instead of the tracebacks of orbax's writer
  threads.
"""

import contextlib
import errno
import json
import os
from typing import Any

from absl import logging
from etils import epath
import grain
import grain.checkpoint
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

SUBDIRECTORY = "checkpoints"  # where a run keeps its checkpoints, inside its workdir

_PARAMS = "params"
_OPT_STATE = "opt_state"
_COUNTERS = "counters"
_DATA = "data"
_CONFIG = "config"
_OLD_LAYOUT_ITEM = "state"  # the single train-state item of checkpoints from before the split


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (one line: step, directory, reason, what to do)."""


_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "RESOURCE_EXHAUSTED")


def _chain(error: BaseException) -> list[BaseException]:
  """``error`` and its causes and contexts (orbax and TensorStore wrap the writer's error)."""
  chain: list[BaseException] = []
  link: BaseException | None = error
  while link is not None and all(link is not seen for seen in chain):
    chain.append(link)
    link = link.__cause__ or link.__context__
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
  """Saves and restores ``(step, train state, data iterator, config)`` in one directory.

  See the module docstring. Every process of a multi-process run must make the same calls, in the
  same order.
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
    self._directory = _absolute(directory)
    _check_writable(epath.Path(self._directory))
    self._manager = ocp.CheckpointManager(
      epath.Path(self._directory),
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

  def save(
    self,
    step: int,
    state: Any,
    *,
    data_iterator: grain.DatasetIterator,
    config: dict,
    force: bool = False,
  ) -> None:
    """Saves ``state``, the position of ``data_iterator`` and ``config`` as step ``step``.

    Keeps the last ``keep`` checkpoints. Saving a step that is already saved (or being saved) is a
    no-op, so the preemption handler may save the step that a periodic save has just written. A step
    that ``restore_latest`` found unreadable is replaced instead.

    Args:
      step: the completed step number (a non-negative int).
      state: the train state, a NamedTuple with ``params`` and ``opt_state`` fields whose leaves are
        (possibly sharded) jax arrays.
      data_iterator: this process's grain iterator; its position is read before ``save`` returns.
      config: the run's config, a JSON-serialisable dict (tuples come back as lists).
      force: the preemption save: also block until the checkpoint is committed, since the process is
        about to exit.

    Raises:
      ValueError: a bad ``step``, ``state``, ``data_iterator`` or ``config``.
    """
    if not isinstance(step, (int, np.integer)) or isinstance(step, bool) or step < 0:
      raise ValueError(
        f"checkpoint step {step!r} must be a non-negative int; pass the completed step number."
      )
    step = int(step)
    items = _state_items(state)
    if not isinstance(data_iterator, grain.DatasetIterator):
      raise ValueError(
        f"data_iterator must be a grain.DatasetIterator, got {type(data_iterator).__name__}; pass the "
        "stream of nexus.data.make_train_stream."
      )
    _check_json(config)
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
    with self._writing(step):
      self._manager.save(
        step,
        args=ocp.args.Composite(
          **{name: ocp.args.StandardSave(tree) for name, tree in _non_empty(items).items()},
          **{
            _DATA: grain.checkpoint.CheckpointSave(data_iterator),
            _CONFIG: ocp.args.JsonSave(config),
          },
        ),
        force=True,  # the caller decides when to save; orbax's save-interval policy is not used
      )
    self._saving_step = step
    if force:
      self.wait()

  def latest_step(self) -> int | None:
    """The newest saved step (including a save still in flight), or None when there is none."""
    return self._manager.latest_step()

  def restore_latest(
    self, abstract_state: Any, data_iterator: grain.DatasetIterator, *, step: int | None = None
  ) -> tuple[int, Any] | None:
    """Restores the newest readable checkpoint, falling back past damaged ones with a warning.

    Args:
      abstract_state: the train state's pytree of ``jax.ShapeDtypeStruct`` with ``sharding`` set;
        arrays are restored directly into those shardings (and dtypes).
      data_iterator: this process's grain iterator, set to the restored step's position in place.
      step: restore exactly this saved step instead (no fallback), e.g. the stable-phase checkpoint a
        cooldown branch starts from; a step that is not saved is a one-line ValueError.

    Returns:
      ``(step, state)``, or None when there is no checkpoint (``data_iterator`` is then untouched).

    Raises:
      ValueError: a leaf of ``abstract_state`` has no sharding, the checkpoints have the old layout,
        or checkpoints exist but none of them could be restored (one line naming the directory and
        the newest checkpoint's error).
    """
    items = _state_items(abstract_state)
    _check_abstract_state(abstract_state)
    self.wait()
    reader = _process_local_reader(self._directory)
    try:
      steps = _readable_layout_steps(reader, self._directory)
      if step is not None:
        if step not in steps:
          raise ValueError(
            f"step {step} is not saved in {self._directory} (saved: {sorted(steps)}); pass one of them."
          )
        steps = [step]
      restore_args = ocp.args.Composite(
        **{name: ocp.args.StandardRestore(tree) for name, tree in _non_empty(items).items()},
        **{
          _DATA: grain.checkpoint.CheckpointRestore(data_iterator),
          _CONFIG: ocp.args.JsonRestore(),
        },
      )
      found = self._restore_newest_readable(reader, steps, restore_args)
    finally:
      reader.close()
    if found is None:
      return None
    step, restored = found
    items.update({name: restored[name] for name in _non_empty(items)})
    return step, abstract_state._replace(
      params=items[_PARAMS], opt_state=items[_OPT_STATE], **items[_COUNTERS]
    )

  def _restore_newest_readable(self, reader: ocp.CheckpointManager, steps: list[int], args):
    """Tries ``steps`` newest first; returns ``(step, restored items)``; see ``restore_latest``."""
    if not steps:
      return None
    newest_error: Exception = RuntimeError("no step was tried")
    for index, step in enumerate(steps):
      try:
        restored = reader.restore(step, args=args)
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
        return step, restored
      error = error or RuntimeError("another process could not read it")
      if index == 0:
        newest_error = error
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

  def latest_config(self) -> tuple[int, dict] | None:
    """``(step, saved config)`` of the newest checkpoint whose config reads, or None.

    Reads no arrays, so a run can check what it is about to resume before restoring.

    Raises:
      ValueError: the checkpoints have the old layout.
    """
    self.wait()
    reader = _process_local_reader(self._directory)
    try:
      for step in _readable_layout_steps(reader, self._directory):
        try:
          restored = reader.restore(
            step, args=ocp.args.Composite(**{_CONFIG: ocp.args.JsonRestore()})
          )
          return step, restored[_CONFIG]
        except Exception as error:  # pylint: disable=broad-except  # restore_latest reports damaged steps
          logging.info("Config of checkpoint step %d is unreadable (%s).", step, _one_line(error))
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


def saved_steps(workdir: str) -> list[int]:
  """The committed checkpoint steps of the run in ``workdir``, oldest first.

  Raises:
    ValueError: ``workdir`` has no checkpoints (one line naming the directory and the fix), or they
      have the old layout.
  """
  directory = _run_directory(workdir)
  if not epath.Path(directory).is_dir():
    raise ValueError(
      f"{directory} does not exist; pass the --workdir of a run made by launch.train."
    )
  reader = _process_local_reader(directory)
  try:
    steps = _readable_layout_steps(reader, directory)
  finally:
    reader.close()
  if not steps:
    raise ValueError(f"no checkpoint in {directory}; train the run first.")
  return sorted(steps)


def load_params(workdir: str, step: int | None = None, *, shardings: Any = None) -> dict:
  """The model parameters of the run in ``workdir`` at ``step`` (default: the newest checkpoint).

  Reads only the ``params`` item, with shapes and dtypes from orbax's metadata: no model, optimizer
  or schedule is built.

  Args:
    workdir: a run directory made by ``launch.train``.
    step: a saved step (see ``saved_steps``); None for the newest.
    shardings: a pytree of ``jax.sharding.Sharding`` matching the params to restore into (e.g. a
      run's ``state_shardings.params``); None puts every array on the default device.

  Returns:
    The params as a pure dict of jax arrays (what ``nnx.merge(graphdef, params)`` takes).

  Raises:
    ValueError: no checkpoint, no such step, or the step's params cannot be read (one line each).
  """
  steps, directory = saved_steps(workdir), _run_directory(workdir)
  if step is None:
    step = steps[-1]
  elif step not in steps:
    raise ValueError(
      f"step {step!r} is not saved in {directory} (saved: {steps}); pass one of them, or step=None "
      "for the newest."
    )
  reader = _process_local_reader(directory)
  try:
    metadata = ocp.StandardCheckpointHandler().metadata(epath.Path(directory) / str(step) / _PARAMS)
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    abstract = jax.tree.map(
      lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
      metadata.tree,
      jax.tree.map(lambda _: default, metadata.tree) if shardings is None else shardings,
    )
    restored = reader.restore(
      step, args=ocp.args.Composite(**{_PARAMS: ocp.args.StandardRestore(abstract)})
    )
  except Exception as error:  # pylint: disable=broad-except  # damaged files, mismatched shardings ...
    raise ValueError(
      f"the params of checkpoint step {step} in {directory} could not be read ({_one_line(error)}); "
      f"pass another saved step (saved: {steps}) or check the files."
    ) from None
  finally:
    reader.close()
  return restored[_PARAMS]


def _absolute(directory: str) -> str:
  """orbax needs absolute local paths; URLs (gs://...) are kept."""
  return str(directory) if "://" in str(directory) else os.path.abspath(directory)


def _run_directory(workdir: str) -> str:
  return _absolute(os.path.join(workdir, SUBDIRECTORY))


def _state_items(state: Any) -> dict[str, Any]:
  """The train state's orbax items: ``params``, ``opt_state`` and ``counters`` (the other fields)."""
  fields = getattr(state, "_fields", ())
  if _PARAMS not in fields or _OPT_STATE not in fields:
    raise ValueError(
      f"the train state must be a NamedTuple with params and opt_state fields, got "
      f"{type(state).__name__}; pass a nexus.train.step.TrainState."
    )
  counters = {
    name: value for name, value in state._asdict().items() if name not in (_PARAMS, _OPT_STATE)
  }
  return {_PARAMS: state.params, _OPT_STATE: state.opt_state, _COUNTERS: counters}


def _non_empty(items: dict[str, Any]) -> dict[str, Any]:
  """The items with arrays: orbax refuses to save an empty tree (e.g. a stateless optimizer's)."""
  return {name: tree for name, tree in items.items() if jax.tree.leaves(tree)}


def _readable_layout_steps(reader: ocp.CheckpointManager, directory: str) -> list[int]:
  """The committed steps, newest first; refuses checkpoints of the old single-``state`` layout."""
  steps = sorted(reader.all_steps(), reverse=True)
  old = [step for step in steps if (epath.Path(directory) / str(step) / _OLD_LAYOUT_ITEM).exists()]
  if old:
    raise ValueError(
      f"checkpoints {sorted(old)} in {directory} have the old layout (one 'state' item) that this "
      "version cannot read; use a new --workdir, or finish that run with the Nexus version that wrote it."
    )
  return steps


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


def _check_json(config: Any) -> None:
  if not isinstance(config, dict):
    raise ValueError(
      f"the checkpoint's config must be a dict, got {type(config).__name__}; pass config.to_dict()."
    )
  try:
    json.dumps(config)
  except (TypeError, ValueError) as error:
    raise ValueError(
      f"the checkpoint's config is not JSON-serialisable ({error}); convert it to dicts, lists, str and "
      "numbers."
    ) from None


def _check_abstract_state(abstract_state: Any) -> None:
  for path, leaf in jax.tree_util.tree_leaves_with_path(abstract_state):
    if getattr(leaf, "sharding", None) is None:
      raise ValueError(
        f"abstract_state leaf {jax.tree_util.keystr(path)} has no sharding; build it as "
        "jax.ShapeDtypeStruct(shape, dtype, sharding=...) (e.g. from jax.eval_shape plus the state shardings)."
      )


def _all_processes_succeeded(succeeded: bool) -> bool:
  """True when ``succeeded`` holds on every process. A collective: every process must call it."""
  if jax.process_count() == 1:
    return succeeded
  return bool(np.asarray(multihost_utils.process_allgather(np.array(succeeded, np.int32))).min())


def _one_line(error: BaseException) -> str:
  """``Type: first line of the message``, short enough for a log line."""
  lines = str(error).strip().splitlines()
  message = lines[0] if lines else ""
  return f"{type(error).__name__}: {message[:200]}"
