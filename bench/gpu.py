"""GPU benchmark of the training step: MFU with AdamW and with Nexus, attention paths, memory, 1b.

Runs as it is on a fresh GPU machine: it needs only JAX, Flax, Optax and NumPy (no grain,
ml_collections, TFDS or ArrayRecord: configs are built from ``nexus.model.PRESETS`` and the tokens
are random, which does not change the speed of a dense model). Every figure comes from steps
alternated in one process (``bench.timing``); MFU uses ``nexus.model.flops`` and the device's bf16
peak.

1. The 130m preset (bf16) with AdamW (K-step accumulation) and with Nexus(AdamW): median step time,
   tokens/s, MFU, the ratio Nexus/AdamW, compile time, compiled memory and the peak device memory
   in use so far in the process.
2. Attention paths on the 130m AdamW step: "cudnn" (fused flash attention, GPU only), "xla",
   "einsum".
3. The 1b preset with AdamW, if it fits.

Sections that would start after ``--budget_s`` are skipped and say so; a section that fails (e.g.
out of memory) is recorded with its error and the others still run. Results go to
``$OUT/gpu_bench.json`` and ``$OUT/gpu_bench.txt`` (``--out`` overrides). ``--dry_run`` runs the
same code with tiny shapes on any backend (the test suite runs it on CPU).

  bash bench/gpu.sh            # or: python -m bench.gpu [--dry_run] [--out DIR] [--budget_s 420]
"""

import argparse
import dataclasses
import json
import os
import statistics
import time

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from bench import steps
from bench import timing
from nexus.model import PRESETS
from nexus.model import ModelConfig
from nexus.model import Transformer
from nexus.model import flops
from nexus.model import mean_token_loss
from nexus.train import step as step_lib

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Shape:
  """A step's shape: K micro-batches of ``batch`` rows of ``seq_len`` tokens."""

  num_inner_steps: int
  batch: int
  seq_len: int

  @property
  def tokens(self) -> int:
    return self.num_inner_steps * self.batch * self.seq_len


def settings(dry_run: bool) -> dict:
  """Models and shapes: the real presets, or tiny stand-ins for a dry run on any machine."""
  if dry_run:
    small = ModelConfig(
      vocab_size=259,
      num_layers=1,
      d_model=64,
      num_heads=4,
      mlp_dim=128,
      max_seq_len=32,
      compute_dtype="bfloat16",
    )
    # The "large" model is the small one again: its steps are reused, so a dry run compiles 3 steps.
    return {
      "main": small,
      "main_shape": Shape(2, 2, 32),
      "large": small,
      "large_shape": Shape(2, 2, 32),
      "repeats": 2,
    }
  return {
    "main": PRESETS["130m"],
    "main_shape": Shape(4, 8, 2048),
    "large": PRESETS["1b"],
    "large_shape": Shape(1, 8, 2048),
    "repeats": 10,
  }


def build(config: ModelConfig, shape: Shape, method: str, built: dict) -> dict:
  """Compiles the trainer's step for ``method`` and runs it once; returns its runner and figures.

  ``built`` caches the steps by (config, shape, method), so a section reuses another's compiled step.
  """
  if (config, shape, method) in built:
    return built[config, shape, method]
  graphdef, params = nnx.split(Transformer(config, rngs=nnx.Rngs(0)))
  params = nnx.to_pure_dict(params)
  tx, make_step = steps.optimizer_and_step(shape.num_inner_steps, method=method)
  state = step_lib.TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    opt_state=tx.init(params),
    skipped_steps=jnp.zeros((), jnp.int32),
  )
  tokens = np.random.default_rng(0).integers(
    1, config.vocab_size, (shape.num_inner_steps, shape.batch, shape.seq_len + 1)
  )
  batch = {"tokens": jnp.asarray(tokens, jnp.int32)}
  step = jax.jit(
    make_step(lambda p, t: mean_token_loss(nnx.merge(graphdef, p), t)), donate_argnums=0
  )
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_seconds = time.perf_counter() - start
  memory = compiled.memory_analysis()
  holder = {"state": state}

  def run():
    holder["state"], metrics = compiled(holder["state"], batch)
    return metrics["loss"]

  jax.block_until_ready(run())
  built[config, shape, method] = {
    "run": run,
    "compile_s": compile_seconds,
    "compiled_gib": None
    if memory is None
    else (
      memory.argument_size_in_bytes
      + memory.output_size_in_bytes
      + memory.temp_size_in_bytes
      - memory.alias_size_in_bytes
    )
    / GIB,
  }
  return built[config, shape, method]


def peak_memory_gib():
  stats = jax.devices()[0].memory_stats() or {}
  return stats["peak_bytes_in_use"] / GIB if "peak_bytes_in_use" in stats else None


def measure(builds: dict, config: ModelConfig, shape: Shape, repeats: int, baseline: str) -> dict:
  """Alternates the built steps; returns per-step figures with ratios to ``baseline``."""
  times = timing.interleaved_times({name: b["run"] for name, b in builds.items()}, repeats)
  ratios = timing.median_ratios(times, baseline)
  peak = flops.device_peak_flops()
  flops_per_step = shape.tokens * flops.model_flops_per_token(config, shape.seq_len)
  results = {}
  for name, series in times.items():
    median = statistics.median(series)
    results[name] = {
      "step_ms": 1e3 * median,
      "tokens_per_s": shape.tokens / median,
      "mfu": None if peak is None else flops_per_step / median / peak,
      f"ratio_to_{baseline}": ratios[name],
      "compile_s": builds[name]["compile_s"],
      "compiled_memory_gib": builds[name]["compiled_gib"],
    }
  return results


def section_optimizers(s: dict, attention: str, built: dict) -> dict:
  config = dataclasses.replace(s["main"], attention=attention)
  builds = {method: build(config, s["main_shape"], method, built) for method in ("adamw", "nexus")}
  results = measure(builds, config, s["main_shape"], s["repeats"], "adamw")
  results["peak_memory_gib"] = peak_memory_gib()
  return results


def section_attention(s: dict, implementations: list[str], built: dict) -> dict:
  builds = {
    name: build(dataclasses.replace(s["main"], attention=name), s["main_shape"], "adamw", built)
    for name in implementations
  }
  return measure(builds, s["main"], s["main_shape"], s["repeats"], implementations[0])


def section_large(s: dict, attention: str, built: dict) -> dict:
  config = dataclasses.replace(s["large"], attention=attention)
  if config != dataclasses.replace(s["main"], attention=attention):
    built.clear()  # free the main model's states before the large one
  builds = {"adamw": build(config, s["large_shape"], "adamw", built)}
  results = measure(builds, config, s["large_shape"], max(2, s["repeats"] // 2), "adamw")
  results["peak_memory_gib"] = peak_memory_gib()
  return results


def report_lines(report: dict) -> list[str]:
  lines = [
    f"device: {report['device']} ({report['backend']}), jax {report['jax']}, peak bf16 "
    f"{report['peak_tflops']} TFLOP/s" + (" [dry run, tiny shapes]" if report["dry_run"] else "")
  ]
  for section, results in report["sections"].items():
    lines.append(f"\n{section}:")
    if "skipped" in results:
      lines.append(f"  skipped: {results['skipped']}")
      continue
    for name, r in results.items():
      if not isinstance(r, dict):
        lines.append(f"  {name}: {r if r is None else f'{r:.2f}'}")
        continue
      ratio = next(value for key, value in r.items() if key.startswith("ratio_to_"))
      mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
      memory = "n/a" if r["compiled_memory_gib"] is None else f"{r['compiled_memory_gib']:.3f}"
      lines.append(
        f"  {name:8s} step {r['step_ms']:9.1f} ms  {r['tokens_per_s']:11.0f} tok/s  MFU {mfu:>6s}  "
        f"ratio {ratio:.3f}  compile {r['compile_s']:.1f} s  compiled memory {memory} GiB"
      )
  return lines


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dry_run", action="store_true", help="tiny shapes, any backend (for tests)")
  parser.add_argument(
    "--out", default=os.environ.get("OUT", "bench_out"), help="folder for the results"
  )
  parser.add_argument(
    "--budget_s", type=float, default=420.0, help="no section starts after this many seconds"
  )
  args = parser.parse_args()
  start = time.perf_counter()
  s = settings(args.dry_run)
  gpu = jax.default_backend() == "gpu"
  attention = "cudnn" if gpu else "xla"
  peak = flops.device_peak_flops()
  report = {
    "device": jax.devices()[0].device_kind,
    "backend": jax.default_backend(),
    "jax": jax.__version__,
    "peak_tflops": None if peak is None else peak / 1e12,
    "dry_run": args.dry_run,
    "main_model": dataclasses.asdict(s["main"]),
    "main_shape": dataclasses.asdict(s["main_shape"]),
    "large_shape": dataclasses.asdict(s["large_shape"]),
    "sections": {},
  }
  built = {}
  sections = {
    f"main model, bf16, attention={attention}: Nexus vs AdamW": lambda: section_optimizers(
      s, attention, built
    ),
    "attention paths (AdamW step)": lambda: section_attention(
      s, ["cudnn", "xla", "einsum"] if gpu else ["xla", "einsum"], built
    ),
    f"large model (AdamW, attention={attention})": lambda: section_large(s, attention, built),
  }
  for name, section in sections.items():
    elapsed = time.perf_counter() - start
    if elapsed > args.budget_s:
      report["sections"][name] = {
        "skipped": f"time budget: {elapsed:.0f} s > {args.budget_s:.0f} s"
      }
      continue
    try:
      report["sections"][name] = section()
    except Exception as error:  # pylint: disable=broad-except
      # Recorded, not raised: the other sections' figures still reach the report.
      message = f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:300]}"
      out_of_memory = "RESOURCE_EXHAUSTED" in str(error) or "out of memory" in str(error).lower()
      report["sections"][name] = {
        "skipped": ("does not fit: " if out_of_memory else "failed: ") + message
      }
      built.clear()
  report["total_s"] = time.perf_counter() - start
  lines = report_lines(report)
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "gpu_bench.json"), "w") as f:
    json.dump(report, f, indent=1)
  with open(os.path.join(args.out, "gpu_bench.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))
  print(
    f"\nwrote {os.path.join(args.out, 'gpu_bench.json')} and gpu_bench.txt ({report['total_s']:.0f} s)"
  )


if __name__ == "__main__":
  main()
