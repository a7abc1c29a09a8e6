"""Benchmark: one Nexus(AdamW) outer step versus AdamW with K-step gradient accumulation.

Both consume the same K micro-batches on the same model (a plain-JAX MLP, so this script needs only
JAX and Optax and runs unchanged on a GPU image). The two jitted steps are alternated in one process
and the median time ratio is printed, with the optimizer-state bytes of both: Nexus must add exactly
one float32 copy of the parameters (plus a few diagnostic scalars).

Usage: python -m bench.nexus_step [--width 1024] [--depth 4] [--batch 256] [--k 4] [--repeats 15]
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
      {"w": jax.random.normal(k, (width, width)) / np.sqrt(width), "b": jnp.zeros(width)} for k in keys
  ]


def loss_fn(params, batch):
  h = batch["x"]
  for layer in params:
    h = jnp.tanh(h @ layer["w"] + layer["b"])
  return jnp.mean((h - batch["y"]) ** 2)


def tree_bytes(tree):
  return sum(x.nbytes for x in jax.tree.leaves(tree))


def make_steps(k):
  outer = optax.chain(optax.clip_by_global_norm(1.0),
                      optax.adamw(1e-3, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.2))
  nexus_tx = nexus.nexus(outer, 0.01, num_inner_steps=k)
  adamw_tx = optax.chain(optax.clip_by_global_norm(1.0),
                         optax.adamw(1e-3, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.2))

  def nexus_step(params, state, batches):
    grad_fn = lambda p, i: jax.grad(loss_fn)(p, jax.tree.map(lambda x: x[i], batches))
    updates, state = nexus_tx.update(params, state, params, grad_fn=grad_fn)
    return optax.apply_updates(params, updates), state

  def adamw_step(params, state, batches):
    def accumulate(total, batch):
      return optax.tree.add(total, jax.grad(loss_fn)(params, batch)), None
    total, _ = jax.lax.scan(accumulate, optax.tree.zeros_like(params), batches)
    updates, state = adamw_tx.update(optax.tree.scale(1.0 / k, total), state, params)
    return optax.apply_updates(params, updates), state

  return (nexus_tx, jax.jit(nexus_step, donate_argnums=(0, 1))), (adamw_tx, jax.jit(adamw_step, donate_argnums=(0, 1)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=1024)
  parser.add_argument("--depth", type=int, default=4)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--k", type=int, default=4)
  parser.add_argument("--repeats", type=int, default=15)
  args = parser.parse_args()

  key = jax.random.key(0)
  params = init_mlp(key, args.width, args.depth)
  batches = {
      "x": jax.random.normal(jax.random.key(1), (args.k, args.batch, args.width)),
      "y": jax.random.normal(jax.random.key(2), (args.k, args.batch, args.width)),
  }
  (nexus_tx, nexus_step), (adamw_tx, adamw_step) = make_steps(args.k)
  runs = {}
  for name, tx, step in (("nexus", nexus_tx, nexus_step), ("adamw_accum", adamw_tx, adamw_step)):
    p = jax.tree.map(jnp.array, params)
    s = tx.init(p)
    state_bytes = tree_bytes(s)
    p, s = step(p, s, batches)  # compile
    jax.block_until_ready(p)
    runs[name] = {"params": p, "state": s, "step": step, "times": [], "state_bytes": state_bytes}

  grad = jax.jit(jax.grad(loss_fn))
  one = jax.tree.map(lambda x: x[0], batches)
  jax.block_until_ready(grad(params, one))
  start = time.perf_counter()
  jax.block_until_ready(grad(params, one))
  grad_ms = 1e3 * (time.perf_counter() - start)

  for _ in range(args.repeats):
    for run in runs.values():  # alternate, so machine noise hits both alike
      start = time.perf_counter()
      run["params"], run["state"] = run["step"](run["params"], run["state"], batches)
      jax.block_until_ready(run["params"])
      run["times"].append(time.perf_counter() - start)

  ratios = [a / b for a, b in zip(runs["nexus"]["times"], runs["adamw_accum"]["times"])]
  param_bytes = tree_bytes(params)
  extra = runs["nexus"]["state_bytes"] - runs["adamw_accum"]["state_bytes"]
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
  print(f"model: MLP width={args.width} depth={args.depth} batch={args.batch}, K={args.k}; "
        f"one gradient: {grad_ms:.1f} ms")
  for name, run in runs.items():
    print(f"{name:12s} median step {1e3 * statistics.median(run['times']):8.1f} ms   "
          f"optimizer state {run['state_bytes'] / 2**20:8.2f} MiB")
  print(f"median ratio nexus/adamw_accum: {statistics.median(ratios):.3f} (target <= 1.05)")
  print(f"params (float32): {param_bytes} bytes; Nexus extra state: {extra} bytes "
        f"= params + {extra - param_bytes} bytes of diagnostics/counters")


if __name__ == "__main__":
  main()
