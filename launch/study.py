"""Runs a set of training runs resumably, each followed by its checkpoint measurements.

Shared by ``launch.reproduce`` (the stable runs of a study), ``launch.sweep`` (equal-budget tuning)
and ``launch.branches`` (the cooldown branches of stable runs).
Each run is a subprocess of ``launch.train`` then ``launch.evaluate`` in its own workdir; a run whose
training reached its last step is not retrained, and one already measured is not re-measured, so an
interrupted study resumes where it stopped.

``jobs > 1`` runs that many subprocesses at once, each with XLA on one CPU thread and its output in
``<workdir>/study.log``: on the 2-core development machine two single-threaded tiny-config runs train
1.3x the tokens/s of one run using both cores (9.2k vs 7.0k tokens/s, docs/study.md), with the same
numbers (XLA's CPU results do not depend on its thread count here; see ``tests/launch``). Runs that
compute on an accelerator (``JAX_PLATFORMS`` naming another platform first, as ``launch/study_gpu.sh``
sets it) keep XLA's CPU threads: there the processes share the accelerator, not the cores.
"""

from collections.abc import Callable
from collections.abc import Sequence
import concurrent.futures
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from typing import TypeVar

from nexus.data import config as data_config
from nexus.train import metrics as metrics_lib

# XLA flags of a run that shares the CPU with other runs: one thread for its matmuls and its ops.
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
LOG_NAME = "study.log"

_T = TypeVar("_T")
_R = TypeVar("_R")


def config_steps(config_path: str) -> int:
  """``train.steps`` of a config file (the step a finished run reaches)."""
  spec = importlib.util.spec_from_file_location("study_config", config_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config().train.steps


def _last_train_step(workdir: str) -> int:
  steps = [r["step"] for r in metrics_lib.read_metrics(workdir) if "train/loss" in r]
  return max(steps, default=0)


def _measured(workdir: str) -> bool:
  return any("closeness/mean_sq_dist" in r for r in metrics_lib.read_metrics(workdir))


def compilation_cache_dir() -> str:
  """``$JAX_COMPILATION_CACHE_DIR``, by default ``$NEXUS_CACHE_DIR/jax`` (``~/.cache/nexus/jax``).

  A study's runs share their shapes, so every run after the first loads its evaluation (and most
  training) programs from this cache instead of compiling them again.
  """
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return os.environ["JAX_COMPILATION_CACHE_DIR"]
  return os.path.join(os.path.dirname(data_config.default_corpus_dir()), "jax")


def computes_on_cpu() -> bool:
  """Whether the runs' JAX computes on the CPU: ``JAX_PLATFORMS`` unset, or naming ``cpu`` first."""
  return os.environ.get("JAX_PLATFORMS", "").split(",")[0].strip() in ("", "cpu")


def run_command(command: Sequence[str], workdir: str, *, shared_cpu: bool) -> int:
  """Runs ``command`` with the study's compilation cache; with ``shared_cpu``, with its output in the
  workdir's log and, when it computes on the CPU, on one XLA thread. Returns the exit code."""
  env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": compilation_cache_dir()}
  if not shared_cpu:
    return subprocess.run(command, env=env, check=False).returncode
  os.makedirs(workdir, exist_ok=True)
  if computes_on_cpu():
    env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA_FLAGS}"
  with open(os.path.join(workdir, LOG_NAME), "a", encoding="utf-8") as log:
    return subprocess.run(
      command, stdout=log, stderr=subprocess.STDOUT, env=env, check=False
    ).returncode


@dataclasses.dataclass(frozen=True)
class Run:
  """A run of a study: ``config`` with ``overrides`` in ``workdir``, finished at ``steps``."""

  workdir: str
  config: str
  overrides: dict
  steps: int
  evaluate_flags: tuple = ()


def run_and_measure(run: Run, *, shared_cpu: bool = False) -> None:
  """Trains ``run`` (resuming) unless finished, then measures its final checkpoint unless measured."""
  where = f" (log: {os.path.join(run.workdir, LOG_NAME)})" if shared_cpu else ""
  if _last_train_step(run.workdir) < run.steps:
    print(f"[study] training {run.workdir}{where}", flush=True)
    flags = [f"--config.{key}={value}" for key, value in run.overrides.items()]
    command = [
      sys.executable,
      "-m",
      "launch.train",
      f"--config={run.config}",
      f"--workdir={run.workdir}",
      *flags,
    ]
    if run_command(command, run.workdir, shared_cpu=shared_cpu):
      raise RuntimeError(f"training {run.workdir} failed; see its output{where}.")
  if not _measured(run.workdir):
    print(f"[study] measuring {run.workdir}{where}", flush=True)
    command = [
      sys.executable,
      "-m",
      "launch.evaluate",
      f"--workdir={run.workdir}",
      *run.evaluate_flags,
    ]
    if run_command(command, run.workdir, shared_cpu=shared_cpu):
      raise RuntimeError(f"measuring {run.workdir} failed; see its output{where}.")


def parallel_map(function: Callable[[_T], _R], items: Sequence[_T], jobs: int) -> list[_R]:
  """``[function(item) for item in items]``, ``jobs`` at a time; every item is tried.

  Failures are raised together at the end, as one ``SystemExit`` line per failed item, so that one
  bad run does not stop the others of a long stage.
  """
  if jobs < 1:
    raise SystemExit(f"error: --jobs={jobs} must be at least 1.")
  with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    futures = [pool.submit(function, item) for item in items]
    concurrent.futures.wait(futures)
  errors = [str(f.exception()) for f in futures if f.exception() is not None]
  if errors:
    raise SystemExit("error: " + "\nerror: ".join(errors))
  return [f.result() for f in futures]


def run_all(runs: Sequence[Run], *, jobs: int = 1) -> None:
  """Runs and measures every run, ``jobs`` at a time (one CPU thread each when ``jobs > 1``)."""
  parallel_map(lambda run: run_and_measure(run, shared_cpu=jobs > 1), runs, jobs)


def load_sweep(path: str) -> dict:
  """The parts of a ``launch.sweep`` summary a study uses: config, overrides, chosen settings."""
  try:
    with open(path, encoding="utf-8") as f:
      summary = json.load(f)
  except (OSError, json.JSONDecodeError) as error:
    raise SystemExit(
      f"error: cannot read --sweep={path}: {error}; pass launch.sweep's sweep.json."
    ) from None
  missing = {"config", "overrides", "chosen"} - set(summary)
  unchosen = sorted(m for m, chosen in summary.get("chosen", {}).items() if not chosen)
  if missing or unchosen:
    raise SystemExit(
      f"error: --sweep={path} lacks {sorted(missing) or f'a choice for {unchosen}'}; "
      "rerun launch.sweep until it writes its summary."
    )
  return summary


def plan_runs(
  sweep: dict | None,
  *,
  out: str,
  config: str | None,
  methods: Sequence[str] | None,
  seeds: Sequence[str],
  overrides: dict,
  evaluate_flags: tuple = (),
) -> list[Run]:
  """Every (method, seed) run ``<out>/<method>-seed<seed>`` of a study, seeds outermost.

  Each run's overrides are, in order of precedence: the seed, the method's chosen settings in
  ``sweep`` (a ``load_sweep`` summary, or None), ``opt.name``, ``overrides``, the sweep's own common
  overrides. ``config`` (default: the sweep's) is every run's config file.
  """
  config = config or (sweep["config"] if sweep else None)
  if config is None:
    raise ValueError("no config: pass --config or --sweep.")
  chosen = sweep["chosen"] if sweep else {}
  methods = list(methods or chosen or ["adamw", "nexus"])
  untuned = [m for m in methods if sweep and m not in chosen]
  if untuned:
    raise ValueError(f"methods {untuned} were not tuned by the sweep (tuned: {list(chosen)}).")
  common = {**(sweep["overrides"] if sweep else {}), **overrides}
  steps = int(common.get("train.steps") or config_steps(config))
  return [
    Run(
      os.path.join(out, f"{method}-seed{seed}"),
      config,
      {**common, "opt.name": method, **chosen.get(method, {}), "seed": seed},
      steps,
      evaluate_flags,
    )
    for seed in seeds
    for method in methods
  ]
