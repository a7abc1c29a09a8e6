"""Benchmark: what each model option costs in the training step, variants interleaved in one process.

Every variant is the baseline model config (``bench.model_vs_peer.our_config``) with one field
changed, trained with the minimal step of ``bench.model_vs_peer`` (``value_and_grad`` -> AdamW ->
apply) on the same tokens. The steps alternate; the script prints each variant's compile time,
median step time and the median of the per-round ratios variant/baseline (< 1: the variant is
faster).

  python -m bench.model_ablations [--shapes tiny,small] [--dtypes float32,bfloat16] [--repeats 5]
"""

import argparse
import statistics
import time

import jax.numpy as jnp
import numpy as np

from bench import model_vs_peer
from bench import timing


def variants(shape: model_vs_peer.Shape) -> dict[str, dict]:
  """Config overrides by variant name; "baseline" is the model's defaults."""
  return {
    "baseline": {},  # unrolled blocks (bench.model_vs_peer.our_config)
    "scan": {"scan_layers": True},
    "scan, unroll=2": {"scan_layers": True, "scan_unroll": 2},
    "attention=xla": {"attention": "xla"},
    f"loss_chunk_size={shape.seq_len // 4}": {"loss_chunk_size": shape.seq_len // 4},
    "remat=full": {"remat": "full"},
  }


def ablate(shape: model_vs_peer.Shape, dtype: str, repeats: int) -> None:
  tokens = jnp.asarray(
    np.random.default_rng(0).integers(1, shape.vocab_size, (shape.batch, shape.seq_len + 1)),
    jnp.int32,
  )
  runners, compile_seconds = {}, {}
  for name, overrides in variants(shape).items():
    start = time.perf_counter()
    step, state = model_vs_peer.our_step(model_vs_peer.our_config(shape, dtype, **overrides))
    runners[name] = model_vs_peer.runner(step, state, tokens)
    compile_seconds[name] = time.perf_counter() - start
  times = timing.interleaved_times(runners, repeats)
  ratios = timing.median_ratios(times, "baseline")
  print(f"{'variant':24s} {'compile s':>9s} {'step ms':>9s} {'ratio':>6s}")
  for name, series in times.items():
    print(
      f"{name:24s} {compile_seconds[name]:9.1f} {1e3 * statistics.median(series):9.1f} {ratios[name]:6.3f}"
    )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  model_vs_peer.add_grid_flags(parser, shapes="tiny,small", repeats=5)
  args = parser.parse_args()
  grid = model_vs_peer.shape_grid(parser, args)
  model_vs_peer.print_device()
  for name, shape, dtype in grid:
    print(f"\n{name} (B={shape.batch} L={shape.seq_len}), {dtype}:")
    ablate(shape, dtype, args.repeats)


if __name__ == "__main__":
  main()
