"""Benchmark: order-free Nexus versus sequential Nexus and AdamW accumulation, in time and in noise.

Two measurements on one small next-token model (a plain-JAX MLP language model over the previous two
tokens: ``nexus.model`` did not exist yet when this was written), with S = K synthetic sources
(one Markov chain each) so every method consumes the same K micro-batches of tokens per outer step:

1. Time per outer step of order-free Nexus (vmap and map, order 2 and order 1), sequential Nexus
   (opaque mode) and AdamW with K-step accumulation, alternated in one process; median ratios.
2. Ordering noise, in float64: sequential Nexus's pseudo-gradient ĝ for random i.i.d. orders of K
   steps over the S sources (relative variance: mean ‖ĝ_o − mean‖² / ‖mean‖²), the exact average over
   all S^K orders, and the distance of the order-free update (deterministic, so variance 0) to it; the
   same for the K! permutations of the K micro-batches (each visited once, as the trainer's sequential
   Nexus does), whose average the order-free update matches only at first order.

Usage: python -m bench.order_free [--k 4] [--batch 16] [--seq 64] [--width 128] [--vocab 256]
       [--repeats 15] [--orders 32] [--gammas 0.01,0.05]
"""

import argparse
import itertools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import nexus
from nexus.optim import tree_utils


def markov_tokens(seed, num_sources, rows, length, vocab):
  """int32[S, rows, length + 1]: source s is a sparse random Markov chain of its own (ids ≥ 1; 0 pads)."""
  rng = np.random.default_rng(seed)
  tokens = np.zeros((num_sources, rows, length + 1), np.int32)
  for s in range(num_sources):
    transitions = rng.dirichlet(np.full(vocab - 1, 0.05), size=vocab - 1)
    state = rng.integers(0, vocab - 1, size=rows)
    for t in range(length + 1):
      tokens[s, :, t] = state + 1
      state = np.asarray([rng.choice(vocab - 1, p=transitions[x]) for x in state])
  return tokens


def mlp_language_model(vocab, width, key):
  """A tiny next-token MLP over the previous two tokens: (params, loss_fn(params, tokens[B, L+1]))."""
  k1, k2, k3, k4 = jax.random.split(key, 4)
  params = {
    "embed": jax.random.normal(k1, (vocab, width)) / np.sqrt(width),
    "embed_previous": jax.random.normal(k2, (vocab, width)) / np.sqrt(width),
    "hidden": {
      "w": jax.random.normal(k3, (width, 4 * width)) / np.sqrt(width),
      "b": jnp.zeros(4 * width),
    },
    "out": {
      "w": jax.random.normal(k4, (4 * width, width)) / np.sqrt(4 * width),
      "b": jnp.zeros(width),
    },
  }

  def loss_fn(params, tokens):
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    previous = jnp.pad(inputs, ((0, 0), (1, 0)))[:, :-1]
    h = params["embed"][inputs] + params["embed_previous"][previous]
    h = (
      h
      + jax.nn.gelu(h @ params["hidden"]["w"] + params["hidden"]["b"]) @ params["out"]["w"]
      + params["out"]["b"]
    )
    logits = h @ params["embed"].T
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    mask = targets != 0
    return jnp.sum(losses * mask) / jnp.maximum(jnp.sum(mask), 1)

  return params, loss_fn, "MLP LM over the previous two tokens"


def adamw():
  return optax.chain(
    optax.clip_by_global_norm(1.0), optax.adamw(1e-3, b1=0.9, b2=0.95, eps=1e-10, weight_decay=0.2)
  )


def make_steps(loss_fn, k, gamma):
  """name → (optimizer, jitted step(params, state, tokens[K, B, L+1]) -> (params, state))."""

  def order_free_step(tx):
    def step(params, state, tokens):
      updates, state = tx.update(params, state, params, loss_fn=lambda p, i: loss_fn(p, tokens[i]))
      return optax.apply_updates(params, updates), state

    return tx, step

  sequential_step = accumulation_step = order_free_step  # one calling convention for all of them

  order_free = lambda **kw: nexus.optim.order_free_nexus(
    adamw(), gamma, num_inner_steps=k, num_sources=k, **kw
  )
  steps = {
    "adamw_accum": accumulation_step(nexus.optim.accumulate_gradients(adamw(), k)),
    "nexus_sequential": sequential_step(nexus.nexus(adamw(), gamma, num_inner_steps=k)),
    "order_free_vmap": order_free_step(order_free()),
    "order_free_map": order_free_step(order_free(method="map")),
    "order_free_order1": order_free_step(order_free(order=1)),
  }
  return {name: (tx, jax.jit(step, donate_argnums=(0, 1))) for name, (tx, step) in steps.items()}


def time_steps(params, loss_fn, tokens, k, repeats):
  """Median seconds per outer step of every method, alternated so machine noise hits all alike."""
  runs = {}
  for name, (tx, step) in make_steps(loss_fn, k, 0.01).items():
    p = jax.tree.map(jnp.array, params)
    s = tx.init(p)
    p, s = step(p, s, tokens)  # compile
    jax.block_until_ready(p)
    runs[name] = {"params": p, "state": s, "step": step, "times": []}
  for _ in range(repeats):
    for run in runs.values():
      start = time.perf_counter()
      run["params"], run["state"] = run["step"](run["params"], run["state"], tokens)
      jax.block_until_ready(run["params"])
      run["times"].append(time.perf_counter() - start)
  grad = jax.jit(jax.grad(loss_fn))
  jax.block_until_ready(grad(params, tokens[0]))
  grad_times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(grad(params, tokens[0]))
    grad_times.append(time.perf_counter() - start)
  return {name: run["times"] for name, run in runs.items()}, statistics.median(grad_times)


def ordering_noise(params, loss_fn, tokens, k, gamma, num_random_orders, seed):
  """Relative variance of sequential Nexus's ĝ over orders, and distances of order-free ĝ to their mean."""
  num_sources = tokens.shape[0]

  def sequential(params, tokens, sources):
    tx = nexus.nexus(optax.sgd(1.0), gamma, num_inner_steps=k)
    updates, _ = tx.update(
      params, tx.init(params), params, loss_fn=lambda p, i: loss_fn(p, tokens[sources[i]])
    )
    return optax.tree.scale(-1.0, updates)

  @jax.jit
  def statistics_over(params, tokens, orders):
    pseudo_gradients = jax.lax.map(
      lambda sources: sequential(params, tokens, sources), orders, batch_size=8
    )
    mean = jax.tree.map(lambda x: jnp.mean(x, axis=0), pseudo_gradients)
    deviations = jax.vmap(
      lambda g: tree_utils.tree_vdot(optax.tree.sub(g, mean), optax.tree.sub(g, mean))
    )(pseudo_gradients)
    return mean, jnp.mean(deviations) / tree_utils.tree_vdot(mean, mean)

  @jax.jit
  def order_free(params, tokens):
    pseudo_gradients = []
    for order in (2, 1):
      tx = nexus.optim.order_free_nexus(
        optax.sgd(1.0), gamma, num_inner_steps=k, num_sources=num_sources, order=order
      )
      updates, _ = tx.update(
        params, tx.init(params), params, loss_fn=lambda p, i: loss_fn(p, tokens[i])
      )
      pseudo_gradients.append(optax.tree.scale(-1.0, updates))
    return pseudo_gradients

  rng = np.random.default_rng(seed)
  random_orders = rng.integers(0, num_sources, size=(num_random_orders, k))
  _, random_variance = statistics_over(params, tokens, random_orders)
  all_orders = np.asarray(list(itertools.product(range(num_sources), repeat=k)))
  exact_mean, exact_variance = statistics_over(params, tokens, all_orders)
  permutations = np.asarray(list(itertools.permutations(range(k))))
  permutation_mean, permutation_variance = statistics_over(params, tokens, permutations)
  order2, order1 = order_free(params, tokens)
  distance = lambda tree, mean: float(
    optax.tree.norm(optax.tree.sub(tree, mean)) / optax.tree.norm(mean)
  )
  return {
    "random_variance": float(random_variance),
    "exact_variance": float(exact_variance),
    "permutation_variance": float(permutation_variance),
    "order2_distance": distance(order2, exact_mean),
    "order1_distance": distance(order1, exact_mean),
    "order2_permutation_distance": distance(order2, permutation_mean),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--k", type=int, default=4, help="inner steps K = number of sources S")
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--seq", type=int, default=64)
  parser.add_argument("--width", type=int, default=128)
  parser.add_argument("--vocab", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument(
    "--orders", type=int, default=32, help="random orders for the sampled variance"
  )
  parser.add_argument("--gammas", default="0.01,0.05")
  args = parser.parse_args()

  tokens = jnp.asarray(markov_tokens(0, args.k, args.batch, args.seq, args.vocab))
  params, loss_fn, model_name = mlp_language_model(args.vocab, args.width, jax.random.key(0))
  num_params = sum(x.size for x in jax.tree.leaves(params))

  times, grad_seconds = time_steps(params, loss_fn, tokens, args.k, args.repeats)
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")
  print(
    f"model: {model_name}, {num_params} params; S = K = {args.k} micro-batches of "
    f"{args.batch}x{args.seq} tokens; one gradient: {1e3 * grad_seconds:.2f} ms"
  )
  print()
  print(
    f"{'method':20s} {'median ms':>10s} {'/ adamw_accum':>14s} {'/ nexus_seq':>12s} {'/ gradient':>11s}"
  )
  for name, values in times.items():
    ratio_to = lambda base, values=values: statistics.median(
      a / b for a, b in zip(values, times[base])
    )
    print(
      f"{name:20s} {1e3 * statistics.median(values):10.2f} {ratio_to('adamw_accum'):14.2f} "
      f"{ratio_to('nexus_sequential'):12.2f} {statistics.median(values) / grad_seconds:11.2f}"
    )

  print()
  print(
    "ordering noise (float64). seq var: mean ‖ĝ_o − mean‖² / ‖mean‖² of sequential Nexus over orders o"
  )
  print(
    f"({args.orders} random i.i.d. orders, all S^K = {args.k**args.k} i.i.d. orders, all K! permutations of the"
  )
  print(
    "K micro-batches); dist: ‖ĝ − mean‖ / ‖mean‖ of the order-free update to the exact average."
  )
  print(
    f"{'gamma':>7s} {'seq var rnd':>12s} {'seq var all':>12s} {'seq var perm':>13s} {'order-free var':>15s} "
    f"{'o2 dist all':>12s} {'o1 dist all':>12s} {'o2 dist perm':>13s}"
  )
  with jax.enable_x64(True):
    params64 = optax.tree.cast(params, jnp.float64)
    for gamma in (float(g) for g in args.gammas.split(",")):
      noise = ordering_noise(params64, loss_fn, tokens, args.k, gamma, args.orders, seed=1)
      print(
        f"{gamma:7.3f} {noise['random_variance']:12.3e} {noise['exact_variance']:12.3e} "
        f"{noise['permutation_variance']:13.3e} {0.0:15.1f} {noise['order2_distance']:12.3e} "
        f"{noise['order1_distance']:12.3e} {noise['order2_permutation_distance']:13.3e}"
      )
  print(
    "(order-free var is 0: the update is deterministic. A single sequential draw is off by about √var.)"
  )


if __name__ == "__main__":
  main()
