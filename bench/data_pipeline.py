"""Benchmark: the data pipeline's throughput next to the tiny model's consumption rate.

The pipeline (``nexus.data.make_train_stream`` on the built-in corpus, in this process, no prefetch)
and a jitted training step of the config's model (AdamW with K-step gradient accumulation over the
same ``[K, B, L+1]`` batches, the cheapest consumer the trainer has) are timed on the same machine. The
target is a pipeline at least 10x faster than the step, so that data is never the bottleneck.

Usage: python -m bench.data_pipeline [--config tiny] [--batches 200] [--steps 10] [--mode pure_uniform]
"""

import argparse
import importlib
import statistics
import time

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus import data as data_lib
from nexus import model as model_lib

TARGET_RATIO = 10.0


def pipeline_rate(config, num_batches: int) -> float:
  """Outer-step batches per second of the training stream (after 10 warm-up batches)."""
  train = config.train
  stream = data_lib.make_train_stream(
      config.data, num_inner_steps=train.num_inner_steps, global_batch_size=train.global_batch_size,
      seq_len=train.seq_len, seed=config.seed, process_index=0, process_count=1,
  )
  for _ in range(10):
    next(stream)
  start = time.perf_counter()
  for _ in range(num_batches):
    next(stream)
  return num_batches / (time.perf_counter() - start)


def model_rate(config, batch: np.ndarray, num_steps: int) -> float:
  """Training steps per second of the config's model on ``batch`` (median of ``num_steps`` timings)."""
  model = model_lib.Transformer(model_lib.ModelConfig.from_dict(config.model.to_dict()), rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  tx = optax.adamw(1e-3)

  def loss_fn(params, tokens):
    logits = nnx.merge(graphdef, params, rest)(tokens[:, :-1]).astype(jnp.float32)
    targets = tokens[:, 1:]
    mask = targets != data_lib.PAD_ID
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1)

  @jax.jit
  def step(params, opt_state, tokens):
    def accumulate(total, micro_batch):
      return optax.tree.add(total, jax.grad(loss_fn)(params, micro_batch)), None

    grads, _ = jax.lax.scan(accumulate, optax.tree.zeros_like(params), tokens)
    updates, opt_state = tx.update(optax.tree.scale(1.0 / tokens.shape[0], grads), opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = tx.init(params)
  tokens = jnp.asarray(batch)
  params, opt_state = jax.block_until_ready(step(params, opt_state, tokens))  # compile
  timings = []
  for _ in range(num_steps):
    start = time.perf_counter()
    params, opt_state = jax.block_until_ready(step(params, opt_state, tokens))
    timings.append(time.perf_counter() - start)
  return 1.0 / statistics.median(timings)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="tiny", help="a module in configs/ (default: tiny)")
  parser.add_argument("--batches", type=int, default=200, help="pipeline batches to time")
  parser.add_argument("--steps", type=int, default=10, help="training steps to time")
  parser.add_argument("--mode", default=None, choices=data_lib.MODES, help="override config.data.mode")
  args = parser.parse_args()
  config = importlib.import_module(f"configs.{args.config}").get_config()
  if args.mode:
    config.data.mode = args.mode
  train = config.train
  tokens_per_batch = train.num_inner_steps * train.global_batch_size * train.seq_len
  batch = next(data_lib.make_train_stream(
      config.data, num_inner_steps=train.num_inner_steps, global_batch_size=train.global_batch_size,
      seq_len=train.seq_len, seed=config.seed, process_index=0, process_count=1))["tokens"]
  data_rate = pipeline_rate(config, args.batches)
  step_rate = model_rate(config, batch, args.steps)
  print(f"device: {jax.devices()[0].device_kind}; config {args.config}: K={train.num_inner_steps}, "
        f"B={train.global_batch_size}, L={train.seq_len}, mode={config.data.mode}")
  print(f"{'':10s} {'batches/s':>12s} {'tokens/s':>14s}")
  print(f"{'pipeline':10s} {data_rate:12.1f} {data_rate * tokens_per_batch:14,.0f}")
  print(f"{'model':10s} {step_rate:12.1f} {step_rate * tokens_per_batch:14,.0f}")
  ratio = data_rate / step_rate
  verdict = "OK" if ratio >= TARGET_RATIO else f"BELOW the {TARGET_RATIO:.0f}x target"
  print(f"pipeline / model = {ratio:.1f}x ({verdict})")


if __name__ == "__main__":
  main()
