"""Runs the real training entry point (``python -m launch.train``) on a tiny model and corpus.

Every integration test trains for real: the tiny config shrunk further (2 layers, d_model 32, 16-token
sequences) on the built-in corpus at its smallest size, cached once per test session.
"""

import functools
import os
import subprocess
import sys
import tempfile

from tests import multidevice

REPO_ROOT = multidevice.REPO_ROOT


@functools.cache
def cache_dir() -> str:
  """A per-session cache for the small corpus (shared by the subprocesses of this test process)."""
  return tempfile.mkdtemp(prefix="nexus-train-tests-")


TINY_OVERRIDES = {
  "model.num_layers": 2,
  "model.d_model": 32,
  "model.num_heads": 2,
  "model.num_kv_heads": 2,
  "model.head_dim": 16,
  "model.mlp_dim": 64,
  "data.corpus_bytes_per_source": 20_000,
  "train.seq_len": 16,
  "train.global_batch_size": 8,
  "train.num_inner_steps": 2,
  "train.steps": 6,
  "train.log_every": 1,
  "opt.warmup_steps": 1,
  "eval.every": 3,
  "eval.batch_size": 4,
  "eval.num_batches": 1,
  "checkpoint.every": 2,
  "checkpoint.async_save": False,
}


def command(workdir: str, overrides: dict | None = None, extra_flags: tuple = ()) -> list[str]:
  """The trainer's command line: ``tests/train/tiny_config.py`` (TINY_OVERRIDES) plus ``overrides`` as flags."""
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
  env = dict(os.environ)
  env["NEXUS_CACHE_DIR"] = cache_dir()
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
  return env


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
