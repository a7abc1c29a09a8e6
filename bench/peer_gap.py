"""Benchmark: what separates our step from nanodo's, piece by piece, steps interleaved in one process.

``bench.model_vs_peer`` times our step against nanodo's at the same shapes and matmul FLOPs. The
models differ in pieces nanodo does not have or computes more cheaply; this script prices each one by
timing our step with that piece swapped for nanodo's choice (at trace time, for this measurement
only; the model is unchanged):

- ``rotary off``: no rotary rotation of queries and keys (nanodo adds a learned position table to
  the embeddings once, whose cost is negligible);
- ``norm in compute dtype``: RMSNorm without its float32 upcast and downcast (nanodo's LayerNorm
  runs in the compute dtype; identical to ours in float32 runs);
- ``nanodo's loss``: ``optax.softmax_cross_entropy_with_integer_labels`` weighted by the non-pad
  mask, instead of ``nexus.model.mean_token_loss``;
- ``all three``.

Each line is the median over interleaved rounds of (nanodo's step time / the variant's), i.e. the
variant's tokens/s relative to nanodo's (> 1: faster than nanodo). Needs a nanodo checkout, as
``bench.model_vs_peer``:

  python -m bench.peer_gap --nanodo_path=/tmp/nanodo [--shapes tiny] [--dtypes float32] [--repeats 15]
"""

import argparse
from collections.abc import Iterator
import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench import model_vs_peer
from bench import timing
from nexus.model import layers
from nexus.model import loss as loss_lib


def _norm_in_compute_dtype(norm: layers.RMSNorm, x: jax.Array) -> jax.Array:
  scale = jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + layers.NORM_EPS)
  return x * scale * norm.scale[...].astype(x.dtype)


def _nanodo_loss(model, tokens: jax.Array) -> jax.Array:
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  weights = targets != loss_lib.PAD_ID
  losses = optax.softmax_cross_entropy_with_integer_labels(model(inputs), targets)
  return jnp.sum(losses * weights) / jnp.sum(weights)


# Variant name -> the (object, attribute, replacement) patches in force while its step is traced.
VARIANTS = {
  "ours": [],
  "rotary off": [(layers, "apply_rotary", lambda x, tables: x)],
  "norm in compute dtype": [(layers.RMSNorm, "__call__", _norm_in_compute_dtype)],
  "nanodo's loss": [(model_vs_peer, "mean_token_loss", _nanodo_loss)],
}
VARIANTS["all three"] = [patch for patches in list(VARIANTS.values()) for patch in patches]


@contextlib.contextmanager
def patched(patches) -> Iterator[None]:
  saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
  for owner, name, value in patches:
    setattr(owner, name, value)
  try:
    yield
  finally:
    for owner, name, value in saved:
      setattr(owner, name, value)


def explain(shape: model_vs_peer.Shape, dtype: str, repeats: int) -> dict[str, float]:
  """Prints and returns each variant's tokens/s relative to nanodo's."""
  tokens = jnp.asarray(
    np.random.default_rng(0).integers(1, shape.vocab_size, (shape.batch, shape.seq_len + 1)),
    jnp.int32,
  )
  runners = {"nanodo": model_vs_peer.runner(*model_vs_peer.nanodo_step(shape, dtype), tokens)}
  for name, patches in VARIANTS.items():
    with patched(patches):  # the step is traced and compiled by its first call, in runner()
      step = model_vs_peer.our_step(model_vs_peer.our_config(shape, dtype))
      runners[name] = model_vs_peer.runner(*step, tokens)
  ratios = timing.median_ratios(timing.interleaved_times(runners, repeats), "nanodo")
  relative = {name: 1.0 / ratios[name] for name in VARIANTS}
  for name, value in relative.items():
    print(f"  {name:22s} {value:6.3f} of nanodo's tokens/s")
  return relative


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--nanodo_path", default="/tmp/nanodo", help="folder of a nanodo checkout")
  model_vs_peer.add_grid_flags(parser, shapes="tiny", repeats=15)
  args = parser.parse_args()
  grid = model_vs_peer.shape_grid(parser, args)
  if not model_vs_peer.import_nanodo(args.nanodo_path):
    return
  model_vs_peer.print_device()
  for name, shape, dtype in grid:
    print(f"{name} (B={shape.batch} L={shape.seq_len}), {dtype}, {args.repeats} rounds:")
    explain(shape, dtype, args.repeats)


if __name__ == "__main__":
  main()
