"""Runs a test snippet in a fresh Python process that sees N fake CPU devices.

JAX fixes its device count when it initializes, so sharding tests run their body in a subprocess
with ``--xla_force_host_platform_device_count`` set, keeping the rest of the suite on one device.
"""

import os
import subprocess
import sys
import textwrap

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_with_devices(code: str, num_devices: int = 8, timeout: float = 600) -> str:
  """Runs ``code`` with ``num_devices`` CPU devices; returns stdout, raises with stderr on failure."""
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={num_devices}".strip()
  )
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  result = subprocess.run(
    [sys.executable, "-c", textwrap.dedent(code)],
    env=env,
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
