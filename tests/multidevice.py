"""The XLA settings of the test session and of the processes it starts (see tests/conftest.py)."""

import os
import subprocess
import sys
import textwrap

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tiny test programs compile far longer than they run: skip XLA's expensive backend passes.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def xla_flags(num_devices: int) -> str:
  """XLA_FLAGS for a test process with ``num_devices`` fake CPU devices."""
  return f"{FAST_COMPILE_FLAGS} --xla_force_host_platform_device_count={num_devices}"


def environment(num_devices: int = 1) -> dict:
  """The environment of a test subprocess: this one's (the session's compilation cache included),
  on ``num_devices`` CPU devices, with the repository importable."""
  env = dict(os.environ)
  env["JAX_PLATFORMS"] = "cpu"
  env["XLA_FLAGS"] = xla_flags(num_devices)
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  return env


def run_with_devices(code: str, num_devices: int = 8, timeout: float = 600) -> str:
  """Runs ``code`` in a fresh process with ``num_devices`` devices; returns stdout, raises with stderr.

  Only for what needs its own process; the session already has 8 devices in-process (conftest.py).
  """
  result = subprocess.run(
    [sys.executable, "-c", textwrap.dedent(code)],
    env=environment(num_devices),
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )
  if result.returncode != 0:
    raise AssertionError(
      f"subprocess failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
  return result.stdout
