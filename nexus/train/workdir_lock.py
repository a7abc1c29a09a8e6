"""One writer per workdir: an advisory lock file, ``<workdir>/.lock``, held for the whole run.

The lock is an ``fcntl.flock`` on the file, so the kernel (or the NFS lock manager on a shared
filesystem) releases it when the holder dies, however it dies: a crashed or SIGKILLed run leaves no
lock behind that needs a human. The file's content names the holder (pid, host, start time) so that
a second trainer can say who holds the workdir; content left by a dead holder is only a record, and
the next trainer overwrites it (with a warning naming the dead holder).

The file is never deleted (deleting a lock file races with a trainer that has just opened it); on
release its content is cleared. Where the filesystem has no ``flock`` (some FUSE mounts), the lock
falls back to the file's content: a holder on this host whose pid is gone is stale and is taken
over, any other holder is live.

In a multi-process run only process 0 takes the lock (the workdir is one shared directory per run);
``acquire`` is a collective so that every process stops when process 0 cannot take it.
"""

import datetime
import errno
import fcntl
import json
import os
import socket

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

LOCK_NAME = ".lock"


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


class WorkdirLockedError(RuntimeError):
  """Another live trainer holds the workdir."""


def _holder_text() -> str:
  return json.dumps(
    {
      "pid": os.getpid(),
      "host": socket.gethostname(),
      "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
  )


def _read_holder(fd: int) -> dict | None:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 4096).decode(errors="replace").strip()
  if not text:
    return None
  try:
    holder = json.loads(text)
  except json.JSONDecodeError:
    return {"pid": "?", "host": "?", "since": "?"}
  return holder if isinstance(holder, dict) else None


def _describe(holder: dict | None) -> str:
  if holder is None:
    return "an unknown process"
  return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, since {holder.get('since', '?')}"


def _pid_alive(pid) -> bool:
  if not isinstance(pid, int) or pid <= 0:
    return True  # unknown: assume alive
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # it exists, under another user
  return True


class WorkdirLock:
  """The lock of one workdir; a context manager. See the module docstring."""

  def __init__(self, workdir: str):
    self.workdir = workdir
    self.path = os.path.join(workdir, LOCK_NAME)
    self._fd: int | None = None

  def acquire(self) -> "WorkdirLock":
    """Takes the lock (process 0 only), or raises ``WorkdirLockedError`` on every process.

    Raises:
      WorkdirLockedError: a live trainer holds the workdir (one line naming its pid and host).
    """
    error = None
    if jax.process_index() == 0:
      try:
        self._acquire_here()
      except WorkdirLockedError as caught:
        error = caught
    if jax.process_count() > 1:
      all_acquired = np.asarray(
        multihost_utils.process_allgather(np.array(error is None, np.int32))
      ).min()
      if error is None and not all_acquired:
        self.release()
        error = WorkdirLockedError(
          f"workdir {self.workdir!r} is in use by another trainer (see process 0's error)."
        )
    if error is not None:
      raise error
    return self

  def _acquire_here(self) -> None:
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder = _read_holder(fd)
      except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
          raise WorkdirLockedError(self._locked_message(_read_holder(fd))) from None
        if error.errno not in (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK):
          raise
        # No flock on this filesystem: a holder counts as live unless it is a gone pid on this host.
        holder = _read_holder(fd)
        if holder is not None and not (
          holder.get("host") == socket.gethostname() and not _pid_alive(holder.get("pid"))
        ):
          raise WorkdirLockedError(self._locked_message(holder)) from None
      if holder is not None:
        logging.warning(
          "Took over the lock of %s left by %s, which is no longer running.",
          self.workdir,
          _describe(holder),
        )
      os.ftruncate(fd, 0)
      os.lseek(fd, 0, os.SEEK_SET)
      os.write(fd, _holder_text().encode())
      os.fsync(fd)
    except BaseException:
      os.close(fd)
      raise
    self._fd = fd

  def _locked_message(self, holder: dict | None) -> str:
    return (
      f"workdir {self.workdir!r} is in use by another trainer ({_describe(holder)}); wait for it to "
      f"finish or stop it, or pass another --workdir."
    )

  def release(self) -> None:
    """Clears the holder record and releases the lock (idempotent)."""
    if self._fd is None:
      return
    try:
      os.ftruncate(self._fd, 0)
      fcntl.flock(self._fd, fcntl.LOCK_UN)
    except OSError:
      pass  # the process is exiting anyway; the kernel drops the lock with the descriptor
    finally:
      os.close(self._fd)
      self._fd = None

  def __enter__(self) -> "WorkdirLock":
    return self.acquire()

  def __exit__(self, *exc) -> None:
    self.release()
