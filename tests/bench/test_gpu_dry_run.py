"""bench/gpu.sh --dry_run: the GPU script itself, with tiny shapes on CPU, in a clean subprocess."""

import json
import os
import subprocess
import sys

import pytest

from tests import multidevice

STOCK_IMAGE_LACKS = ("grain", "ml_collections", "tensorflow_datasets", "array_record")


@pytest.mark.slow
def test_gpu_benchmark_dry_run_writes_its_report(tmp_path):
  # A stock GPU image has none of these: importing one fails at startup (sitecustomize), as it would
  # there.
  guard = tmp_path / "guard"
  guard.mkdir()
  (guard / "sitecustomize.py").write_text(
    "import sys\n" + "".join(f"sys.modules['{name}'] = None\n" for name in STOCK_IMAGE_LACKS)
  )
  out = tmp_path / "out"
  env = {
    **os.environ,
    "OUT": str(out),
    "JAX_PLATFORMS": "cpu",
    "XLA_FLAGS": multidevice.xla_flags(1),  # one device, as on the GPU it stands in for
    "PYTHON": sys.executable,
    "PYTHONPATH": str(guard),
  }
  result = subprocess.run(
    ["bash", "bench/gpu.sh", "--dry_run"],
    env=env,
    cwd=multidevice.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"wrote {out}/gpu_bench.json" in result.stdout
  report = json.loads((out / "gpu_bench.json").read_text())
  assert report["dry_run"] and report["device"] == "cpu"
  optimizers, attention, large = report["sections"].values()
  assert set(optimizers) == {"adamw", "nexus", "peak_memory_gib"}
  assert optimizers["adamw"]["ratio_to_adamw"] == 1.0 and optimizers["nexus"]["ratio_to_adamw"] > 0
  assert set(attention) == {"xla", "einsum"}  # no cudnn off a GPU
  assert set(large) == {"adamw", "peak_memory_gib"}
  for results in (optimizers, attention, large):
    for name, figures in results.items():
      if name != "peak_memory_gib":
        assert figures["tokens_per_s"] > 0 and figures["compile_s"] > 0, (name, figures)
  text = (out / "gpu_bench.txt").read_text()
  assert text.startswith("device: cpu") and "nexus" in text
