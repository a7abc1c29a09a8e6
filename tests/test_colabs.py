"""The Colab notebooks of ``colabs/``: in sync with their sources, clean, and runnable on tiny settings.

Each notebook ``colabs/<name>.ipynb`` is generated from the jupytext percent-format source
``colabs/<name>.py`` (``jupytext --update --to ipynb colabs/<name>.py``), which is what gets edited,
linted and reviewed. Each has one cell tagged ``parameters``; the execution tests rewrite its
assignments (e.g. ``STEPS = 200`` becomes ``STEPS = 4``) before running the notebook with nbclient
in a kernel on this interpreter.
"""

import json
import os
import re
import sys

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
import jupytext
import nbclient
import nbformat
import pytest

from tests import multidevice
from tests.train import harness
from tests.train import tiny_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLABS_DIR = os.path.join(REPO_ROOT, "colabs")
NOTEBOOKS = ("quickstart", "train_lm", "analyze")
CELL_TIMEOUT_S = 600

# A model and corpus small enough for a CI CPU: the integration tests' settings (the notebooks set
# the number of steps themselves), evaluated every 2 steps.
TINY_LM_OVERRIDES = {
  key: value for key, value in tiny_config.TINY_OVERRIDES.items() if key != "train.steps"
}
TINY_LM_OVERRIDES["eval.every"] = 2


def read_notebook(name: str) -> nbformat.NotebookNode:
  return nbformat.read(os.path.join(COLABS_DIR, f"{name}.ipynb"), as_version=4)


def cell_contents(notebook: nbformat.NotebookNode) -> list[tuple[str, str, list[str]]]:
  """What a notebook's source determines: each cell's type, source and tags (no ids, no outputs)."""
  return [
    (cell.cell_type, cell.source, list(cell.metadata.get("tags", []))) for cell in notebook.cells
  ]


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
  cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
  assert len(cells) == 1, "a notebook needs exactly one cell tagged 'parameters'"
  return cells[0]


def set_parameters(notebook: nbformat.NotebookNode, **values) -> None:
  """Replaces ``NAME = ...`` lines of the parameters cell by ``NAME = repr(value)``."""
  cell = parameters_cell(notebook)
  for name, value in values.items():
    pattern = re.compile(rf"^{name} = .*$", re.MULTILINE)
    assert pattern.search(cell.source), f"parameter {name} is not assigned in the parameters cell"
    cell.source = pattern.sub(lambda _, v=value, n=name: f"{n} = {v!r}", cell.source)


def kernel_manager(tmp_path) -> KernelManager:
  """A kernel on this interpreter: the 'python3' spec if it resolves here, else a spec written for it."""
  manager = KernelManager(kernel_name="python3")
  try:
    if manager.format_kernel_cmd()[0] == sys.executable:
      return manager
  except Exception:  # pylint: disable=broad-except
    pass  # No usable 'python3' kernelspec: fall through to our own.
  spec_dir = tmp_path / "kernels" / "nexus-test-python"
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(
    json.dumps(
      {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "nexus tests",
        "language": "python",
      }
    )
  )
  specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
  return KernelManager(kernel_name="nexus-test-python", kernel_spec_manager=specs)


def execute(notebook: nbformat.NotebookNode, tmp_path) -> nbformat.NotebookNode:
  """Runs every cell in ``tmp_path`` (relative workdirs land there); raises on the first error."""
  client = nbclient.NotebookClient(
    notebook,
    km=kernel_manager(tmp_path),
    timeout=CELL_TIMEOUT_S,
    resources={"metadata": {"path": str(tmp_path)}},
  )
  client.execute()
  return notebook


def text_outputs(notebook: nbformat.NotebookNode) -> str:
  """Everything the cells printed, and the markdown they displayed."""
  return "\n".join(
    output.get("text", "") + output.get("data", {}).get("text/markdown", "")
    for cell in notebook.cells
    if cell.cell_type == "code"
    for output in cell.get("outputs", [])
  )


def figures(notebook: nbformat.NotebookNode) -> int:
  return sum(
    "image/png" in output.get("data", {})
    for cell in notebook.cells
    if cell.cell_type == "code"
    for output in cell.get("outputs", [])
  )


@pytest.fixture
def kernel_env(monkeypatch):
  """The kernel finds this checkout, draws with a non-GUI backend, runs on one CPU device (as a
  notebook user would) and shares the session's corpus and compilation caches."""
  monkeypatch.setenv(
    "PYTHONPATH", os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")]))
  )
  monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  monkeypatch.setenv("XLA_FLAGS", multidevice.xla_flags(1))  # conftest's fast compiles, 1 device
  monkeypatch.setenv("NEXUS_CACHE_DIR", harness.cache_dir())  # the tiny corpus is built once


# --- Static checks (always run)
# ---------------------------------------------------------------------


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_clean_and_colab_ready(name):
  notebook = read_notebook(name)
  nbformat.validate(notebook)
  assert notebook.nbformat == 4
  for cell in notebook.cells:
    if cell.cell_type == "code":
      assert not cell.outputs and cell.execution_count is None, (
        "commit notebooks with outputs cleared"
      )
  first_code = next(c for c in notebook.cells if c.cell_type == "code")
  assert notebook.cells.index(first_code) <= 1, "the install cell comes first"
  assert 'importlib.util.find_spec("nexus") is None' in first_code.source
  assert "%pip install -q -e {checkout}" in first_code.source
  assert "%pip install -q {wheel}" in first_code.source
  parameters_cell(notebook)


def test_every_source_has_its_notebook():
  names = {os.path.splitext(f) for f in os.listdir(COLABS_DIR)}
  sources = {stem for stem, ext in names if ext == ".py"}
  notebooks = {stem for stem, ext in names if ext == ".ipynb"}
  assert sources == notebooks == set(NOTEBOOKS), (
    f"colabs/ has sources {sorted(sources)} and notebooks {sorted(notebooks)}; each "
    "colabs/<name>.py needs its colabs/<name>.ipynb (and a test here)."
  )


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_in_sync_with_its_source(name):
  source = jupytext.read(os.path.join(COLABS_DIR, f"{name}.py"))
  if cell_contents(source) != cell_contents(read_notebook(name)):
    pytest.fail(
      f"colabs/{name}.ipynb differs from colabs/{name}.py; run "
      f"`.venv/bin/jupytext --update --to ipynb colabs/{name}.py`.",
      pytrace=False,
    )


# --- Execution
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_quickstart_runs(kernel_env, tmp_path):
  notebook = read_notebook("quickstart")
  set_parameters(notebook, STEPS=50, SWEEP_STARTS=[(2.0, -0.5), (-2.0, 2.5)], GAMMA_SWEEP=(0.3,))
  execute(notebook, tmp_path)
  text = text_outputs(notebook)
  assert "Same summed loss along the valley" in text
  assert "landed closer to both sources' minimizers" in text
  assert "Summed losses matched" in text
  assert "Nexus closer" in text
  assert figures(notebook) == 2


@pytest.mark.slow
def test_train_lm_runs(kernel_env, tmp_path):
  notebook = read_notebook("train_lm")
  set_parameters(notebook, STEPS=4, WORKDIR=str(tmp_path / "run"), OVERRIDES=TINY_LM_OVERRIDES)
  execute(notebook, tmp_path)
  assert os.path.exists(tmp_path / "run" / "metrics.jsonl")
  assert "final validation losses (step 4)" in text_outputs(notebook)
  assert figures(notebook) == 1


@pytest.mark.slow
def test_analyze_runs(kernel_env, tmp_path):
  notebook = read_notebook("analyze")
  set_parameters(
    notebook,
    STEPS=4,
    ROOT=str(tmp_path / "runs"),
    OVERRIDES=TINY_LM_OVERRIDES,
    GRAD_BATCHES=1,
    CLOSENESS_STEPS=2,
  )
  execute(notebook, tmp_path)
  for name in ("adamw", "nexus"):
    assert os.path.exists(tmp_path / "runs" / name / "metrics.jsonl")
  assert os.path.exists(tmp_path / "runs" / "report" / "report.md")
  text = text_outputs(notebook)
  assert "# Comparison: adamw vs nexus" in text and "## At matched training loss" in text
  assert "measured at step 4" in text
  assert figures(notebook) >= 2  # the report's plots, then the cosine heatmaps
