"""Benchmark: the pre-tokenized training stream at a model's shape, against what accelerators consume.

Times ``nexus.data.make_train_stream`` on the built-in corpus at the shape of one outer step
(default: the 130m preset's K=4 micro-batches of B=128 rows of L=2048 tokens) in this process, one
thread, no prefetching. Throughput is counted per CPU-second of this process
(``time.process_time``), i.e. tokens per second per CPU core, which a shared or busy machine does
not distort; wall-clock rates are printed beside it. Baseline, interleaved with the stream in the
same process (median of repeats): a numpy gather of as many random windows from the same tokens held
in memory, the floor of assembling a batch.

Target: one host of ``--host_cores`` cores feeds ``--margin`` times what ``--gpus`` accelerators
consume at ``--mfu`` of a ``--peak_tflops`` dense bf16 peak (default: 32 cores, 10x, 8 H100 at 45%
of 989 TFLOP/s). Consumption = gpus * peak * mfu / FLOPs per token, with FLOPs per token from
``nexus.model.flops.model_flops_per_token`` (6 * matmul weights + 12 * layers * heads * head_dim *
L; the input embedding is a lookup, not a matmul).

Usage:
  python -m bench.data_pipeline [--preset 130m] [--batch 128] [--seq_len 2048] [--inner_steps 4]
"""

import argparse
import os
import platform
import statistics
import time

import numpy as np

from nexus import data as data_lib
from nexus.data import config as config_lib
from nexus.data import pretokenize
from nexus.data import splits
from nexus.model import flops as flops_lib
from nexus.model import presets


def target_tokens_per_core(args) -> tuple[float, float, float]:
  """(FLOPs per token, tokens/s the accelerators consume, tokens/s each host core must deliver)."""
  flops_per_token = flops_lib.model_flops_per_token(presets.get_preset(args.preset), args.seq_len)
  consumed = args.gpus * args.peak_tflops * 1e12 * args.mfu / flops_per_token
  return flops_per_token, consumed, args.margin * consumed / args.host_cores


def cpu_name() -> str:
  """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def timed(fn, steps: int) -> tuple[float, float]:
  """(CPU seconds, wall seconds) of ``steps`` calls of ``fn``."""
  cpu, wall = time.process_time(), time.perf_counter()
  for _ in range(steps):
    fn()
  return time.process_time() - cpu, time.perf_counter() - wall


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--preset", default="130m", help="model preset whose FLOPs set the target")
  parser.add_argument("--batch", type=int, default=128, help="B, rows per micro-batch")
  parser.add_argument("--seq_len", type=int, default=2048, help="L, tokens per row")
  parser.add_argument("--inner_steps", type=int, default=4, help="K, micro-batches per outer step")
  parser.add_argument("--steps", type=int, default=3, help="outer steps per timed repeat")
  parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats (median)")
  parser.add_argument("--mode", default="pure_uniform", choices=data_lib.SAMPLING_MODES)
  parser.add_argument("--tokenizer", default="byte", help="'byte' or a SentencePiece .model path")
  parser.add_argument(
    "--corpus_dir", default=None, help="corpus cache (default: the config's, shared with training)"
  )
  parser.add_argument(
    "--corpus_bytes", type=int, default=None, help="bytes per source (default: the config's)"
  )
  parser.add_argument("--gpus", type=int, default=8)
  parser.add_argument("--mfu", type=float, default=0.45)
  parser.add_argument(
    "--peak_tflops", type=float, default=989.0, help="dense bf16 peak per GPU (H100 SXM)"
  )
  parser.add_argument("--host_cores", type=int, default=32)
  parser.add_argument("--margin", type=float, default=10.0)
  args = parser.parse_args(argv)

  defaults = data_lib.DataConfig()
  config = data_lib.DataConfig(
    corpus_dir=args.corpus_dir or defaults.corpus_dir,
    mode=args.mode,
    tokenizer=args.tokenizer,
    corpus_bytes_per_source=args.corpus_bytes or defaults.corpus_bytes_per_source,
  )
  shapes = dict(
    num_inner_steps=args.inner_steps, global_batch_size=args.batch, seq_len=args.seq_len
  )
  stream = data_lib.make_train_stream(config, **shapes, seed=0, process_index=0, process_count=1)
  length = args.seq_len + 1
  store = pretokenize.token_stores(config, config_lib.train_specs(config)[:1], splits.TRAIN)[0]
  in_memory = store.read(np.zeros(1, np.int64), store.num_tokens // length * length)[0]
  rng = np.random.default_rng(0)
  rows = args.inner_steps * args.batch

  def gather():
    starts = rng.integers(0, len(in_memory) // length, size=rows) * length
    return in_memory[starts[:, None] + np.arange(length)]

  for _ in range(2):  # warm-up: permutations, page cache
    next(stream), gather()
  results = {"stream": [], "in-memory gather": []}
  for _ in range(args.repeats):
    results["stream"].append(timed(lambda: next(stream), args.steps))
    results["in-memory gather"].append(timed(gather, args.steps))

  tokens = args.steps * rows * length
  flops_per_token, consumed, needed = target_tokens_per_core(args)
  print(f"machine: {cpu_name()}, {os.cpu_count()} cores visible; 1 process, 1 thread, no prefetch")
  print(
    f"shape: K={args.inner_steps} x B={args.batch} x (L+1)={length} tokens per outer step, mode={args.mode}, "
    f"tokenizer={data_lib.tokenizer_id(args.tokenizer)}"
  )
  print(f"{'':18s} {'tokens/CPU-s':>14s} {'tokens/s wall':>14s} {'steps/CPU-s':>12s}")
  rates = {}
  for name, runs in results.items():
    cpu = statistics.median(run[0] for run in runs)
    wall = statistics.median(run[1] for run in runs)
    rates[name] = tokens / cpu
    print(f"{name:18s} {tokens / cpu:14,.0f} {tokens / wall:14,.0f} {args.steps / cpu:12.2f}")
  print(f"stream / in-memory gather = {rates['stream'] / rates['in-memory gather']:.2f}")
  print(
    f"target: {args.preset} at L={args.seq_len}: {flops_per_token / 1e9:.3f} GFLOPs/token; {args.gpus} GPUs at "
    f"{args.mfu:.0%} MFU of {args.peak_tflops:g} TFLOP/s consume {consumed:,.0f} tokens/s; {args.margin:g}x that "
    f"from {args.host_cores} cores = {needed:,.0f} tokens/s per core"
  )
  gap = rates["stream"] / needed
  verdict = "meets the target" if gap >= 1 else "BELOW the target"
  print(
    f"measured {rates['stream']:,.0f} tokens/s per core = {gap:.1f}x the target ({verdict}); one "
    f"{args.host_cores}-core host would feed {rates['stream'] * args.host_cores / consumed:.0f}x the consumption"
  )


if __name__ == "__main__":
  main()
