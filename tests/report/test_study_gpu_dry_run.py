"""launch/study_gpu.sh: its dry run (the whole GPU recipe on CPU, tiny shapes) on what a stock JAX
image plus the carried wheels provide, and its one-line errors before any work.

The stock image is emulated: every installed distribution other than jax, jaxlib, flax, optax,
orbax-checkpoint, absl-py and what they require, and the pins of ``launch/gpu_wheels.txt``, is
hidden from the script's processes (importing it fails, as it would there). So the dry run also
checks that the wheel list is complete for every stage.
"""

import importlib.metadata
import os
import re
import subprocess
import sys

import pytest

from tests import multidevice

SCRIPT = "launch/study_gpu.sh"
STOCK_IMAGE = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "absl-py")
ALWAYS_THERE = ("pip", "setuptools", "wheel", "nexus-jax")  # the installer; this repository


def _name(text: str) -> str:
  return re.split(r"[\s;<>=!~\[(]", text.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _required_closure(roots) -> set[str]:
  """``roots`` and every distribution they require, as installed here (extras not followed)."""
  seen: set[str] = set()
  todo = [_name(root) for root in roots]
  while todo:
    name = todo.pop()
    if name in seen:
      continue
    try:
      requires = importlib.metadata.distribution(name).requires or []
    except importlib.metadata.PackageNotFoundError:
      continue
    seen.add(name)
    todo.extend(_name(r) for r in requires if "extra ==" not in r)
  return seen


def carried_wheels() -> set[str]:
  """The distributions of ``launch/gpu_wheels.txt``."""
  with open(os.path.join(multidevice.REPO_ROOT, "launch", "gpu_wheels.txt"), encoding="utf-8") as f:
    return {_name(line) for line in f if line.strip() and not line.startswith("#")}


def write_guard(directory, present: set[str]) -> str:
  """A ``sitecustomize`` in ``directory`` hiding every top-level module of a distribution not in
  ``present``; returns ``directory`` for PYTHONPATH."""
  hidden = sorted(
    module
    for module, dists in importlib.metadata.packages_distributions().items()
    if not any(_name(d) in present for d in dists)
  )
  directory.mkdir()
  (directory / "sitecustomize.py").write_text(
    f"import sys\nfor name in {hidden!r}:\n  sys.modules[name] = None\n"
  )
  return str(directory)


def run_script(tmp_path, *args, guard: str, timeout: float = 60) -> subprocess.CompletedProcess:
  env = {
    **os.environ,
    "OUT": str(tmp_path / "out"),
    "NEXUS_CACHE_DIR": str(tmp_path / "cache"),
    "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
    "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": multidevice.xla_flags(1),  # one device, as on the GPU it stands in for
    "PYTHON": sys.executable,
    "PYTHONPATH": guard,
    "WHEELS": str(tmp_path / "no_wheels"),  # what is missing must be reported, not installed
  }
  return subprocess.run(
    ["bash", SCRIPT, *args],
    env=env,
    cwd=multidevice.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )


@pytest.mark.slow
def test_the_setup_runs_on_a_stock_image_with_the_wheels(tmp_path):
  """Every import of the study (and what each imports) on a stock image plus the wheels, and the
  corpus build; the next test checks the stages' commands, and the stages themselves are the tiny
  study's (tests/report/test_study_stages.py, tests/report/test_launchers.py). The whole dry run,
  ``bash launch/study_gpu.sh --dry_run``, takes minutes on 2 cores (docs/study.md)."""
  stock = _required_closure(STOCK_IMAGE) | carried_wheels() | set(ALWAYS_THERE)
  guard = write_guard(tmp_path / "guard", stock)
  result = run_script(tmp_path, "--dry_run", "setup", guard=guard, timeout=600)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert os.listdir(tmp_path / "cache")  # the corpus was built
  times = (tmp_path / "out" / "wall_times.txt").read_text().splitlines()
  assert times[-1].startswith("[study_gpu] setup: ") and len(times) == 2, times


def test_every_stage_runs_the_tiny_studys_launchers_at_the_gpu_sizes(tmp_path):
  """The GPU run's commands, recorded by a stand-in Python that runs only the setup checks (faking
  the GPU) and logs every launcher command instead of running it."""
  log = tmp_path / "commands.txt"
  stub = tmp_path / "python"
  stub.write_text(
    "#!/usr/bin/env bash\n"
    'if [[ "$2" == launch.study_gpu_setup ]]; then\n'
    f'  [[ "$3" == missing ]] && exit 0; echo 1000; exit 0\n'
    "fi\n"
    f'echo "$*" >> {log}\n'
  )
  stub.chmod(0o755)
  result = subprocess.run(
    ["bash", SCRIPT],
    env={
      **{k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"},  # the script's default
      "OUT": str(tmp_path / "out"),
      "PYTHON": str(stub),
      "JOBS": "3",
    },
    cwd=multidevice.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=60,
    check=False,
  )
  assert result.returncode == 0, result.stderr
  commands = log.read_text().splitlines()
  assert [c.split()[1] for c in commands] == [
    "launch.build_corpus",
    "launch.sweep",
    "launch.reproduce",
    "launch.branches",
    "launch.compare",
  ], commands
  build, sweep, stable, branches, report = commands
  assert build.endswith("--bytes_per_source=1000")
  assert "--spec=launch/sweeps/study_gpu.json" in sweep and "--jobs=3" in sweep
  for flag in ("--seeds=0,1,2,3,4", "--override=train.steps=400", "--override=checkpoint.every=80"):
    assert flag in stable.split(), stable
  assert "--branch_steps=160,240" in branches.split(), branches
  for command in (stable, branches):  # the tiny study's measurements at every end point
    assert "--evaluate_flag=--exact_match_problems=32" in command.split(), command
  assert f"--out={tmp_path}/out/report" in report.split(), report
  with open(tmp_path / "out" / "wall_times.txt", encoding="utf-8") as f:
    assert "JOBS=3, on cuda,cpu" in f.read()


def test_missing_imports_without_wheels_are_a_one_line_error(tmp_path):
  guard = write_guard(tmp_path / "guard", _required_closure(STOCK_IMAGE) | set(ALWAYS_THERE))
  result = run_script(tmp_path, "--dry_run", guard=guard)
  assert result.returncode == 1, result.stderr
  error = result.stderr.strip().splitlines()
  assert len(error) == 1 and error[0].startswith("error: "), result.stderr
  for words in ("grain", "ml_collections", "tensorflow_datasets", "launch/gpu_wheels.sh"):
    assert words in error[0]
  assert not (tmp_path / "out").exists()  # nothing started


def test_the_recipe_refuses_to_run_off_a_gpu(tmp_path):
  result = run_script(tmp_path, guard="")  # JAX_PLATFORMS=cpu: what a machine without a GPU has
  assert result.returncode == 1, result.stderr
  assert (
    result.stderr.strip().splitlines()[-1].startswith("error: JAX computes on cpu, not a GPU")
  ), result.stderr
  assert not (tmp_path / "out").exists()  # nothing started


def test_an_unknown_argument_is_a_one_line_error(tmp_path):
  result = run_script(tmp_path, "--dry-run", guard="")
  assert result.returncode == 2
  error = result.stderr.splitlines()
  assert len(error) == 1 and error[0].startswith("error: unknown argument '--dry-run'"), error
