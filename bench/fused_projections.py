"""Benchmark: fused vs separate input projections (Q/K/V, and SwiGLU's gate/up), forward + backward.

A block projects its normalized input with several matrices that read the same activations:
attention's query, key and value, and the MLP's gate and up. Stored as one matrix, each becomes one
larger matmul (MaxText's ``fused_qkv``/fused MLP kernels): fewer, larger kernels and one read of the
input. This script times ``value_and_grad`` of the projections alone, separate vs fused, at the
shapes of ``bench.model_vs_peer`` (interleaved rounds; ratio = fused time / separate, < 1: fusing is
faster), to decide whether the model should store them fused.

  python -m bench.fused_projections [--shapes tiny,small] [--dtypes float32,bfloat16] [--repeats 15]
"""

import argparse
import statistics

import jax
import jax.numpy as jnp
import numpy as np

from bench import model_vs_peer
from bench import timing


def _reduce(q, k, v, gate, up) -> jax.Array:
  """A scalar that uses every projection as attention and the MLP would (elementwise only)."""
  return jnp.sum((q * k + v).astype(jnp.float32)) + jnp.sum(
    (jax.nn.silu(gate) * up).astype(jnp.float32)
  )


def projection_steps(shape: model_vs_peer.Shape, dtype: str) -> dict:
  """``{name: no-argument runner}``: gradients of separate and fused Q/K/V and gate/up projections."""
  d, f = shape.d_model, shape.mlp_dim
  head = d // shape.num_heads
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(shape.batch, shape.seq_len, d)), dtype)
  weight = lambda *s: jnp.asarray(rng.normal(size=s) / np.sqrt(d), jnp.float32)
  qkv = [weight(d, shape.num_heads, head) for _ in range(3)]
  gate_up = [weight(d, f) for _ in range(2)]
  separate = {"qkv": qkv, "gate_up": gate_up}
  fused = {"qkv": jnp.stack(qkv, axis=1), "gate_up": jnp.stack(gate_up, axis=1)}

  def separate_loss(w, x):
    q, k, v = (jnp.einsum("btd,dnh->btnh", x, m.astype(dtype)) for m in w["qkv"])
    gate, up = (x @ m.astype(dtype) for m in w["gate_up"])
    return _reduce(q, k, v, gate, up)

  def fused_loss(w, x):
    q, k, v = jnp.unstack(jnp.einsum("btd,dcnh->btcnh", x, w["qkv"].astype(dtype)), axis=2)
    gate, up = jnp.unstack(jnp.einsum("btd,dcf->btcf", x, w["gate_up"].astype(dtype)), axis=2)
    return _reduce(q, k, v, gate, up)

  runners = {}
  for name, loss, params in (("separate", separate_loss, separate), ("fused", fused_loss, fused)):
    step = jax.jit(jax.value_and_grad(loss))
    jax.block_until_ready(step(params, x))  # compile
    runners[name] = lambda step=step, params=params: step(params, x)
  return runners


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  model_vs_peer.add_grid_flags(parser, shapes="tiny,small", repeats=15)
  args = parser.parse_args()
  grid = model_vs_peer.shape_grid(parser, args)
  model_vs_peer.print_device()
  for name, shape, dtype in grid:
    times = timing.interleaved_times(projection_steps(shape, dtype), args.repeats)
    ratio = timing.median_ratios(times, "separate")["fused"]
    medians = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    print(
      f"{name} {dtype}: separate {medians['separate']:.2f} ms, fused {medians['fused']:.2f} ms, "
      f"fused/separate {ratio:.3f}"
    )


if __name__ == "__main__":
  main()
