"""Trains the tiny model for real: in this process (``train_here``) or through the real entry point
(``python -m launch.train``) in a subprocess, where the exit code, a signal or the terminal output
is the point.

The config is ``tests/train/tiny_config.py``; its corpus is built once per test session.
"""

import contextlib
import functools
import os
import subprocess
import sys
import tempfile
from unittest import mock

import jax

from nexus.train import loop
from nexus.train import mesh as mesh_lib
from tests import multidevice
from tests.train import tiny_config

REPO_ROOT = multidevice.REPO_ROOT


@functools.cache
def cache_dir() -> str:
  """A per-session cache for the small corpus (shared by the subprocesses of this test process)."""
  return tempfile.mkdtemp(prefix="nexus-train-tests-")


def command(workdir: str, overrides: dict | None = None, extra_flags: tuple = ()) -> list[str]:
  """The trainer's command line: ``tests/train/tiny_config.py`` plus ``overrides`` as flags."""
  return [
    sys.executable,
    "-m",
    "launch.train",
    "--config=tests/train/tiny_config.py",
    f"--workdir={workdir}",
    *[f"--config.{key}={value}" for key, value in (overrides or {}).items()],
    *extra_flags,
  ]


def environment(num_devices: int = 1) -> dict:
  return {**multidevice.environment(num_devices), "NEXUS_CACHE_DIR": cache_dir()}


def config_with(overrides: dict | None = None):
  """The tiny config (``tiny_config``) with ``overrides`` ({"section.field": value}) applied."""
  config = tiny_config.get_config()
  for dotted, value in (overrides or {}).items():
    section, field = dotted.split(".")
    config[section][field] = value
  return config


@contextlib.contextmanager
def one_device():
  """Pins the trainer's mesh to the first of the session's 8 devices (faster when not about sharding)."""
  pinned = functools.partial(mesh_lib.make_mesh, devices=jax.devices()[:1])
  with mock.patch.object(loop, "make_mesh", pinned):
    yield


def train_here(workdir: str, overrides: dict | None = None, *, devices: int = 1, **kwargs) -> dict:
  """Trains in this process with the tests' corpus cache, on 1 device or all 8 (``devices=8``)."""
  pin = one_device() if devices == 1 else contextlib.nullcontext()
  with mock.patch.dict(os.environ, {"NEXUS_CACHE_DIR": cache_dir()}), pin:
    return loop.train(config_with(overrides), workdir, **kwargs)


def train(
  workdir: str,
  overrides: dict | None = None,
  *,
  num_devices: int = 1,
  extra_flags: tuple = (),
  check: bool = True,
  timeout: float = 600,
) -> subprocess.CompletedProcess:
  """Trains in a subprocess; returns the completed process (raises on failure when ``check``)."""
  result = subprocess.run(
    command(workdir, overrides, extra_flags),
    cwd=REPO_ROOT,
    env=environment(num_devices),
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )
  if check and result.returncode != 0:
    raise AssertionError(
      f"training failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
  return result


def start(workdir: str, overrides: dict | None = None, *, num_devices: int = 1) -> subprocess.Popen:
  """Starts training in the background (for kill/preemption tests)."""
  return subprocess.Popen(
    command(workdir, overrides),
    cwd=REPO_ROOT,
    env=environment(num_devices),
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
