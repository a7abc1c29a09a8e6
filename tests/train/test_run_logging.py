"""Uncaught exceptions of background threads: on the terminal only when our code raised them."""

import json
import logging
import threading
from unittest import mock

from absl.testing import absltest

from nexus import config_fields
from nexus.train import run_logging


def level_of_thread_exception(target) -> int:
  """The level ``run_logging`` logs the uncaught exception of a thread running ``target`` at."""
  records = []
  handler = logging.Handler()
  handler.emit = records.append
  logger = logging.getLogger("nexus.threads")
  logger.addHandler(handler)
  level, logger.level = logger.level, logging.INFO  # as quiet_terminal sets the root logger
  try:
    with mock.patch.object(threading, "excepthook", run_logging._log_thread_exception):  # pylint: disable=protected-access
      thread = threading.Thread(target=target)
      thread.start()
      thread.join()
  finally:
    logger.removeHandler(handler)
    logger.setLevel(level)
  (record,) = records
  return record.levelno


class ThreadExceptionTest(absltest.TestCase):
  def test_a_library_thread_dying_goes_to_the_log_file_only(self):
    # json's decoder raises: a library frame, like TensorBoard's writer on a full disk.
    self.assertEqual(level_of_thread_exception(lambda: json.loads("{")), logging.INFO)

  def test_our_own_thread_dying_reaches_the_terminal(self):
    failing = lambda: config_fields.positive_int("config.train.steps", 0)
    self.assertEqual(level_of_thread_exception(failing), logging.ERROR)


if __name__ == "__main__":
  absltest.main()
