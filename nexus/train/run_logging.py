"""Where a run's log records go: the terminal gets this project's warnings, a file gets everything.

The main job's terminal should show the progress display, the corpus build and the summary, not the
hundreds of INFO lines of orbax, absl and JAX, nor the tracebacks that orbax's background threads
and asyncio print when a save fails or the interpreter shuts down (the error that matters reaches
the user as one line, see ``launch/train.py``). So:

- ``quiet_terminal`` (called once by a launcher) filters the terminal handler: records from
  ``nexus`` and ``launch`` at WARNING and above only, or, with ``verbose``, every library's records
  at INFO; Python warnings, uncaught exceptions of background threads and "Exception ignored in ..."
  messages (asyncio's "Event loop is closed") become log records instead of raw stderr output.
- ``log_to_file`` (used by the trainer for the length of a run) sends every record at INFO and above
  to ``<workdir>/train.log`` (``train.<process>.log`` on processes other than 0), records from
  before the workdir existed included.
"""

import contextlib
import logging
import logging.handlers
import os
import sys
import threading

from absl import logging as absl_logging
import jax

_NEXUS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OUR_DIRS = (_NEXUS_DIR + os.sep, os.path.join(os.path.dirname(_NEXUS_DIR), "launch") + os.sep)
_EARLY_RECORDS = 10_000
_FORMAT = "%(levelname).1s%(asctime)s %(process)d %(name)s %(filename)s:%(lineno)d] %(message)s"

_early = logging.handlers.MemoryHandler(
  _EARLY_RECORDS, flushLevel=logging.CRITICAL + 1, flushOnClose=False
)


def _is_ours(record: logging.LogRecord) -> bool:
  return os.path.abspath(record.pathname).startswith(_OUR_DIRS)


class _TerminalFilter(logging.Filter):
  """Lets our WARNING+ records through, or every INFO+ record when verbose."""

  def __init__(self, verbose: bool):
    super().__init__()
    self.verbose = verbose

  def filter(self, record: logging.LogRecord) -> bool:
    if self.verbose:
      return record.levelno >= logging.INFO
    return record.levelno >= logging.WARNING and _is_ours(record)


def _log_thread_exception(args) -> None:
  """An uncaught exception of a background thread: on the terminal only if our code raised it.

  A library's thread (orbax, TensorBoard's event writer) that dies while a failing run shuts down
  (e.g. on a full disk) only repeats the error the user already got in one line: file only.
  """
  innermost = args.exc_traceback
  while innermost is not None and innermost.tb_next is not None:
    innermost = innermost.tb_next
  ours = innermost is not None and os.path.abspath(
    innermost.tb_frame.f_code.co_filename
  ).startswith(_OUR_DIRS)
  logging.getLogger("nexus.threads").log(
    logging.ERROR if ours else logging.INFO,
    "Uncaught exception in thread %s",
    getattr(args.thread, "name", "?"),
    exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
  )


def _log_unraisable(unraisable) -> None:
  logging.getLogger("nexus.unraisable").info(
    "Exception ignored in %r: %s: %s",
    unraisable.object,
    getattr(unraisable.exc_type, "__name__", "?"),
    unraisable.exc_value,
  )


def quiet_terminal(verbose: bool = False) -> None:
  """Routes library noise away from the terminal (see the module docstring). Call once, early."""
  root = logging.getLogger()
  root.setLevel(logging.INFO)
  absl_logging.set_verbosity(
    absl_logging.INFO
  )  # records reach the file; the handler filters the terminal
  terminal = absl_logging.get_absl_handler()
  if terminal not in root.handlers:
    root.addHandler(terminal)
  for old in [f for f in terminal.filters if isinstance(f, _TerminalFilter)]:
    terminal.removeFilter(old)
  terminal.addFilter(_TerminalFilter(verbose))
  if _early not in root.handlers:
    root.addHandler(_early)
  logging.captureWarnings(True)
  logging.raiseExceptions = (
    False  # a log file on a full disk must not print tracebacks to the terminal
  )
  threading.excepthook = _log_thread_exception
  sys.unraisablehook = _log_unraisable


@contextlib.contextmanager
def log_to_file(workdir: str):
  """Sends every INFO+ record to the run's log file while the ``with`` block runs; yields its path."""
  index = jax.process_index()
  path = os.path.join(workdir, "train.log" if index == 0 else f"train.{index}.log")
  handler = logging.FileHandler(path, encoding="utf-8")
  handler.setLevel(logging.INFO)
  handler.setFormatter(logging.Formatter(_FORMAT))
  root = logging.getLogger()
  if _early in root.handlers:  # the records from before the workdir existed, once
    root.removeHandler(_early)
    _early.setTarget(handler)
    _early.flush()
    _early.setTarget(None)
  root.addHandler(handler)
  try:
    yield path
  finally:
    root.removeHandler(handler)
    handler.close()
