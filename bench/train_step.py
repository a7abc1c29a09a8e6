"""Benchmark of the real training step: tokens/s, MFU, compiled memory, Nexus vs AdamW step time.

For a config (default: tiny), builds the trainer's jitted step for AdamW (K-step accumulation) and
for Nexus(AdamW) on the same synthetic ``[K, B, L+1]`` batch, alternates them in one process and
prints the median step times, their ratio, tokens/s and model FLOPs utilization
(``nexus.model.flops``: 6 FLOPs per matmul weight per token plus attention, the embedding lookup
excluded, against the device's bf16 peak: pass --peak_tflops, or it is looked up for known
GPUs/TPUs), and the compiled memory of each step (``memory_analysis``). No data pipeline is needed.

  python -m bench.train_step --config=configs/tiny.py [--config.model.compute_dtype=bfloat16] [--repeats 10]
"""

import statistics
import time

from absl import app
from absl import flags
import jax
from ml_collections import config_flags
import numpy as np

from bench import steps
from nexus.model import flops
from nexus.train import mesh as mesh_lib
from nexus.train import schema
from nexus.train import setup as setup_lib

_CONFIG = config_flags.DEFINE_config_file("config", "configs/tiny.py", "Config to benchmark.")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed steps per optimizer.")
_PEAK_TFLOPS = flags.DEFINE_float("peak_tflops", None, "Device peak (dense bf16 TFLOP/s) for MFU.")
_METHODS = flags.DEFINE_list(
  "methods", ["adamw", "nexus"], "Optimizers to compare (first = baseline)."
)


def main(argv):
  del argv
  config = schema.from_config_dict(_CONFIG.value)
  train = config.train
  mesh = mesh_lib.make_mesh(config.mesh)
  rng = np.random.default_rng(0)
  tokens = rng.integers(
    3,
    config.model.vocab_size,
    size=(train.num_inner_steps, train.global_batch_size, train.seq_len + 1),
    dtype=np.int32,
  )
  runs = {}
  for method in _METHODS.value:
    tx, make_step = steps.optimizer_and_step(
      train.num_inner_steps,
      opt_cfg=config.opt,
      method=method,
      total_steps=train.steps,
      seed=config.seed,
    )
    run = setup_lib.setup_run(config, tx, mesh)
    model_config = run.model_config
    step = jax.jit(
      make_step(run.microbatch_loss),
      in_shardings=(run.state_shardings, run.batch_sharding),
      out_shardings=(run.state_shardings, None),
      donate_argnums=0,
    )
    batch = run.global_batch({"tokens": tokens})
    start = time.perf_counter()
    compiled = step.lower(run.abstract_state, batch).compile()
    compile_seconds = time.perf_counter() - start
    memory = compiled.memory_analysis()
    state = run.init_state()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(run.abstract_state.params))
    runs[method] = {
      "step": compiled,
      "state": state,
      "batch": batch,
      "times": [],
      "memory": memory,
      "compile_s": compile_seconds,
      "num_params": num_params,
    }
  for _ in range(_REPEATS.value):
    for run in runs.values():  # alternated so that machine noise hits every method alike
      start = time.perf_counter()
      run["state"], metrics = run["step"](run["state"], run["batch"])
      jax.block_until_ready(metrics)
      run["times"].append(time.perf_counter() - start)

  device_peak = flops.device_peak_flops()
  peak = (
    _PEAK_TFLOPS.value * 1e12
    if _PEAK_TFLOPS.value
    else device_peak and device_peak * jax.device_count()
  )
  baseline = _METHODS.value[0]
  num_params = next(iter(runs.values()))["num_params"]
  tokens_per_step = tokens.size - train.num_inner_steps * train.global_batch_size
  flops_per_step = tokens_per_step * flops.model_flops_per_token(model_config, train.seq_len)
  print(
    f"device: {jax.device_count()} x {jax.devices()[0].device_kind}; jax {jax.__version__}; "
    f"config {config.name}: {num_params / 1e6:.1f}M params, compute {config.model.compute_dtype}, "
    f"K={train.num_inner_steps} B={train.global_batch_size} L={train.seq_len}"
  )
  print(
    f"{'method':12s} {'step ms':>9s} {'ratio':>6s} {'tok/s':>10s} {'MFU':>6s} {'compile s':>9s} "
    f"{'temp MiB':>9s} {'args MiB':>9s}"
  )
  for method, run in runs.items():
    median = statistics.median(run["times"])
    ratios = [t / b for t, b in zip(run["times"], runs[baseline]["times"])]
    mfu = f"{100 * flops_per_step / median / peak:5.1f}%" if peak else "  n/a"
    memory = run["memory"]
    temp = getattr(memory, "temp_size_in_bytes", float("nan")) / 2**20
    args = getattr(memory, "argument_size_in_bytes", float("nan")) / 2**20
    print(
      f"{method:12s} {1e3 * median:9.1f} {statistics.median(ratios):6.3f} {tokens_per_step / median:10.0f} "
      f"{mfu:>6s} {run['compile_s']:9.1f} {temp:9.1f} {args:9.1f}"
    )
  if not peak:
    print("MFU: unknown device peak; pass --peak_tflops.")


if __name__ == "__main__":
  app.run(main)
