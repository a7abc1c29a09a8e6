"""The XLA settings of the test session and of the processes it starts (see tests/conftest.py)."""

import os
import subprocess
import sys
import textwrap

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Tiny test programs compile far longer than they run: skip XLA's expensive backend passes.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
# XLA's CPU fusion emitters compile the tiny trainer's step about twice as slowly as the older kernel
# emitter (measured with jaxlib 0.10.2: 5.7 s -> 2.7 s of backend compile; the suite's summed test
# time 1285 s -> 785 s). XLA aborts the process on a flag it does not know, so it is probed once.
OPTIONAL_FAST_COMPILE_FLAG = "--xla_cpu_use_fusion_emitters=false"
_PROBED = (
  "NEXUS_TESTS_FAST_COMPILE_FLAGS"  # the probe's answer, inherited by workers and subprocesses
)


def fast_compile_flags() -> str:
  """FAST_COMPILE_FLAGS, plus OPTIONAL_FAST_COMPILE_FLAG where this jaxlib accepts it."""
  if _PROBED not in os.environ:
    candidate = f"{FAST_COMPILE_FLAGS} {OPTIONAL_FAST_COMPILE_FLAG}"
    probe = subprocess.run(
      [sys.executable, "-c", "import jax; jax.devices()"],
      env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": candidate},
      capture_output=True,
      check=False,
    )
    os.environ[_PROBED] = candidate if probe.returncode == 0 else FAST_COMPILE_FLAGS
  return os.environ[_PROBED]


def xla_flags(num_devices: int) -> str:
  """XLA_FLAGS for a test process with ``num_devices`` fake CPU devices."""
  return f"{fast_compile_flags()} --xla_force_host_platform_device_count={num_devices}"


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
