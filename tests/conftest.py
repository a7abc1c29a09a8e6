"""The test session's JAX, set before jax is imported: 8 fake CPU devices, fast compiles, one cache.

- 8 CPU devices in this process, so sharding tests run in-process; trainer tests that are not about
  sharding pin a 1-device mesh (``tests/train/harness.one_device``), which compiles and runs faster.
- XLA's backend optimizations and its CPU fusion emitters are off (``multidevice.fast_compile_flags``):
  the tests' tiny programs run a few steps, so compile time dominates (each halves it); the numerics
  stay within float32 rounding of an optimized build.
- One persistent compilation cache for the session (its subprocesses and xdist workers inherit the
  environment): the suite compiles the same tiny trainer many times, and a cached compile is ~1 s.
  Every program is cached, not only those compiling for over a second (JAX's default): the tests'
  many sub-second compiles repeat too (measured: the suite's summed test time 859 s -> 821 s).
"""

import atexit
import os
import shutil
import tempfile

from tests import multidevice

os.environ["JAX_PLATFORMS"] = "cpu"
os.environ["XLA_FLAGS"] = multidevice.xla_flags(8)
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="nexus-tests-jax-cache-")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def pytest_collection_modifyitems(items):
  """Runs the tests marked slow first: with two xdist workers, a long test started last leaves one
  worker idle until it ends, while short tests fill any gap at the end."""
  items.sort(key=lambda item: item.get_closest_marker("slow") is None)
