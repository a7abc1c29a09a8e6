"""Benchmark: one Nexus(AdamW) outer step versus AdamW with K-step gradient accumulation.

Both consume the same K micro-batches on the same model (a plain-JAX MLP, so this script needs only
JAX and Optax and runs unchanged on a GPU image), through the same calling convention
(``tx.update(params, state, params, loss_fn=...)``). The jitted steps are alternated in one process
and median time ratios are printed, with the optimizer-state bytes: with float32 params Nexus's
state is AdamW's plus a few counters and diagnostics; with bfloat16 params it adds one float32
master copy (and AdamW's moments are float32 on its side, in the params' dtype on the baseline's).

Also timed: AdamW accumulating the micro-batch gradients in the params' dtype (the baseline before
it accumulated in float32, ``nexus.optim.accumulate_gradients``), to show what the float32 sum
costs.

Usage: python -m bench.nexus_step [--width 1024] [--depth 4] [--batch 256] [--k 4] [--repeats 15]
                                  [--dtype float32|bfloat16]
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nexus


def init_mlp(key, width, depth):
  keys = jax.random.split(key, depth)
  return [
    {"w": jax.random.normal(k, (width, width)) / np.sqrt(width), "b": jnp.zeros(width)}
    for k in keys
  ]


def loss_fn(params, batch):
  h = batch["x"]
  for layer in params:
    h = jnp.tanh(h @ layer["w"] + layer["b"])
  return jnp.mean((h - batch["y"]) ** 2)


def tree_bytes(tree):
  return sum(x.nbytes for x in jax.tree.leaves(tree))


def make_steps(k, batches):
  """name → (optimizer, jitted step(params, state) -> (params, state)) over the same K micro-batches."""
  adamw = lambda: optax.chain(
    optax.clip_by_global_norm(1.0), optax.adamw(1e-3, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.2)
  )
  microbatch_loss = lambda p, i: loss_fn(
    p, jax.tree.map(lambda x: x[i].astype(p[0]["w"].dtype), batches)
  )

  def loss_driven(tx):
    def step(params, state):
      updates, state = tx.update(params, state, params, loss_fn=microbatch_loss)
      return optax.apply_updates(params, updates), state

    return tx, jax.jit(step, donate_argnums=(0, 1))

  def accumulate_in_params_dtype(tx):
    def step(params, state):
      def accumulate(total, i):
        return optax.tree.add(total, jax.grad(microbatch_loss)(params, i)), None

      total, _ = jax.lax.scan(accumulate, optax.tree.zeros_like(params), jnp.arange(k))
      updates, state = tx.update(optax.tree.scale(1.0 / k, total), state, params)
      return optax.apply_updates(params, updates), state

    return tx, jax.jit(step, donate_argnums=(0, 1))

  return {
    "nexus": loss_driven(nexus.nexus(adamw(), 0.01, num_inner_steps=k)),
    "adamw_accum": loss_driven(nexus.optim.accumulate_gradients(adamw(), k)),
    "adamw_accum_params_dtype": accumulate_in_params_dtype(adamw()),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=1024)
  parser.add_argument("--depth", type=int, default=4)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--k", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  args = parser.parse_args()

  key = jax.random.key(0)
  params = jax.tree.map(lambda x: x.astype(args.dtype), init_mlp(key, args.width, args.depth))
  batches = {
    "x": jax.random.normal(jax.random.key(1), (args.k, args.batch, args.width)),
    "y": jax.random.normal(jax.random.key(2), (args.k, args.batch, args.width)),
  }
  runs = {}
  for name, (tx, step) in make_steps(args.k, batches).items():
    p = jax.tree.map(jnp.array, params)
    s = tx.init(p)
    state_bytes = tree_bytes(s)
    p, s = step(p, s)  # compile
    jax.block_until_ready(p)
    runs[name] = {"params": p, "state": s, "step": step, "times": [], "state_bytes": state_bytes}

  grad = jax.jit(jax.grad(loss_fn))
  one = jax.tree.map(lambda x: x[0].astype(args.dtype), batches)
  jax.block_until_ready(grad(params, one))
  start = time.perf_counter()
  jax.block_until_ready(grad(params, one))
  grad_ms = 1e3 * (time.perf_counter() - start)

  for _ in range(args.repeats):
    for run in runs.values():  # alternate, so machine noise hits both alike
      start = time.perf_counter()
      run["params"], run["state"] = run["step"](run["params"], run["state"])
      jax.block_until_ready(run["params"])
      run["times"].append(time.perf_counter() - start)

  ratio = lambda a, b: statistics.median(x / y for x, y in zip(runs[a]["times"], runs[b]["times"]))
  param_bytes = tree_bytes(params)
  extra = runs["nexus"]["state_bytes"] - runs["adamw_accum"]["state_bytes"]
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
  print(
    f"model: MLP width={args.width} depth={args.depth} batch={args.batch}, K={args.k}, {args.dtype}; "
    f"one gradient: {grad_ms:.1f} ms"
  )
  for name, run in runs.items():
    print(
      f"{name:24s} median step {1e3 * statistics.median(run['times']):8.1f} ms   "
      f"optimizer state {run['state_bytes'] / 2**20:8.2f} MiB"
    )
  print(f"median ratio nexus/adamw_accum: {ratio('nexus', 'adamw_accum'):.3f} (target <= 1.05)")
  print(
    f"median ratio adamw_accum (float32 sum)/adamw_accum_params_dtype: "
    f"{ratio('adamw_accum', 'adamw_accum_params_dtype'):.3f}"
  )
  print(
    f"params ({args.dtype}): {param_bytes} bytes; Nexus state minus AdamW-accumulation state: {extra} bytes"
  )


if __name__ == "__main__":
  main()
