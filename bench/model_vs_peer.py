"""Benchmark: our training step against nanodo's (google-deepmind/nanodo), a minimal JAX/Flax LM.

Both models get the same shapes and the same matmul FLOPs per token (nanodo's GELU MLP has two
``D x F`` matrices, our SwiGLU three, so nanodo's ``F`` is 1.5x our ``mlp_dim``; both tie the input
and output embeddings) and the same minimal step: ``value_and_grad`` of the mean next-token loss
(padding masked) -> ``optax.adamw`` -> ``apply_updates``, jitted with donated state. The steps
alternate in one process; the script prints each one's median step time and tokens/s and the median
of the per-round ratios ours/nanodo in tokens/s (> 1: ours is faster).

nanodo is never vendored: fetch it into a temporary folder and pass that folder, e.g.

  git clone https://github.com/google-deepmind/nanodo /tmp/nanodo
  python -m bench.model_vs_peer --nanodo_path=/tmp/nanodo [--shapes tiny,small] [--dtypes float32,bfloat16]

Without a nanodo checkout at that path the script prints one line and exits 0.
"""

import argparse
import dataclasses
import os
import statistics
import sys

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench import timing
from nexus.model import ModelConfig
from nexus.model import Transformer
from nexus.model import mean_token_loss


@dataclasses.dataclass(frozen=True)
class Shape:
  vocab_size: int
  num_layers: int
  d_model: int
  num_heads: int
  mlp_dim: int  # ours (SwiGLU); nanodo's F is 1.5x this
  batch: int
  seq_len: int


SHAPES = {
  "tiny": Shape(
    vocab_size=259, num_layers=4, d_model=128, num_heads=4, mlp_dim=384, batch=8, seq_len=128
  ),
  # About 13M parameters, 8.2M of them the 32k-token embedding.
  "small": Shape(
    vocab_size=32000, num_layers=6, d_model=256, num_heads=4, mlp_dim=768, batch=4, seq_len=256
  ),
}


def our_config(shape: Shape, dtype: str, **overrides) -> ModelConfig:
  """Our model at ``shape``, with the tiny preset's choice of unrolled blocks (faster at this depth)."""
  return ModelConfig(
    **{
      "vocab_size": shape.vocab_size,
      "num_layers": shape.num_layers,
      "d_model": shape.d_model,
      "num_heads": shape.num_heads,
      "mlp_dim": shape.mlp_dim,
      "max_seq_len": shape.seq_len,
      "tie_embeddings": True,
      "compute_dtype": dtype,
      "scan_layers": False,
      **overrides,
    }
  )


def adamw_step(loss_fn, params):
  """The minimal step shared by both models: jitted, state donated; returns (step, initial state)."""
  tx = optax.adamw(1e-3, b1=0.9, b2=0.95, weight_decay=0.1)

  def step(state, tokens):
    params, opt_state = state
    loss, grads = jax.value_and_grad(loss_fn)(params, tokens)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  return jax.jit(step, donate_argnums=0), (params, tx.init(params))


def our_step(config: ModelConfig):
  graphdef, params = nnx.split(Transformer(config, rngs=nnx.Rngs(0)))
  params = nnx.to_pure_dict(params)
  return adamw_step(lambda p, tokens: mean_token_loss(nnx.merge(graphdef, p), tokens), params)


def nanodo_step(shape: Shape, dtype: str):
  from nanodo import model as nanodo_model  # pylint: disable=g-import-not-at-top

  config = nanodo_model.DoConfig(
    D=shape.d_model,
    H=shape.num_heads,
    L=shape.seq_len,
    N=shape.num_layers,
    V=shape.vocab_size,
    F=shape.mlp_dim * 3 // 2,
    dtype=jnp.dtype(dtype),
    fsdp_enabled=False,
  )
  model = nanodo_model.TransformerDo(config)
  params = model.init(jax.random.key(0), jnp.ones((1, shape.seq_len), jnp.int32))["params"]

  def loss_fn(params, tokens):  # nanodo's default loss: mean cross entropy over non-padding targets
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    weights = targets != 0
    losses = optax.losses.softmax_cross_entropy_with_integer_labels(
      model.apply({"params": params}, inputs), targets
    )
    return jnp.sum(losses * weights) / jnp.sum(weights)

  return adamw_step(loss_fn, params)


def runner(step, state, tokens):
  """A no-argument callable doing one step and keeping the state (for ``timing``)."""
  holder = {"state": state}

  def run():
    holder["state"], loss = step(holder["state"], tokens)
    return loss

  jax.block_until_ready(run())  # compile
  return run


def compare(shape: Shape, dtype: str, repeats: int) -> float:
  """Prints one line per step and returns the median ratio ours/nanodo in tokens/s."""
  tokens = jnp.asarray(
    np.random.default_rng(0).integers(1, shape.vocab_size, (shape.batch, shape.seq_len + 1)),
    jnp.int32,
  )
  runners = {
    "nanodo": runner(*nanodo_step(shape, dtype), tokens),
    "ours": runner(*our_step(our_config(shape, dtype)), tokens),
  }
  times = timing.interleaved_times(runners, repeats)
  ratio = 1.0 / timing.median_ratios(times, "nanodo")["ours"]
  for name, series in times.items():
    median = statistics.median(series)
    print(
      f"  {name:7s} {1e3 * median:9.1f} ms/step {shape.batch * shape.seq_len / median:10.0f} tokens/s"
    )
  print(f"  ours/nanodo tokens/s (median of {repeats} interleaved rounds): {ratio:.3f}")
  return ratio


def add_grid_flags(parser: argparse.ArgumentParser, shapes: str, repeats: int) -> None:
  """The model benchmarks' shared flags: --shapes, --dtypes and --repeats (read by ``shape_grid``)."""
  parser.add_argument("--shapes", default=shapes, help=f"comma-separated, from {sorted(SHAPES)}")
  parser.add_argument("--dtypes", default="float32,bfloat16", help="compute dtypes")
  parser.add_argument("--repeats", type=int, default=repeats, help="interleaved rounds")


def shape_grid(
  parser: argparse.ArgumentParser, args: argparse.Namespace
) -> list[tuple[str, Shape, str]]:
  """``(name, shape, dtype)`` for the --shapes x --dtypes of ``add_grid_flags``; a parser error on
  unknown names."""
  names = args.shapes.split(",")
  if unknown := sorted(set(names) - set(SHAPES)):
    parser.error(f"unknown shapes {unknown}; choose from {sorted(SHAPES)}")
  return [(name, SHAPES[name], dtype) for name in names for dtype in args.dtypes.split(",")]


def print_device() -> None:
  print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), jax {jax.__version__}")


def import_nanodo(path: str) -> bool:
  """Makes the nanodo checkout at ``path`` importable; False (after saying so) if there is none."""
  if not os.path.isfile(os.path.join(path, "nanodo", "model.py")):
    print(
      f"skipped: no nanodo checkout at {path} (clone google-deepmind/nanodo there "
      "or pass --nanodo_path)."
    )
    return False
  sys.path.insert(0, path)
  return True


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--nanodo_path", default="/tmp/nanodo", help="folder holding a nanodo checkout"
  )
  add_grid_flags(parser, shapes=",".join(SHAPES), repeats=7)
  args = parser.parse_args()
  grid = shape_grid(parser, args)
  if not import_nanodo(args.nanodo_path):
    return
  print_device()
  summary = []
  for name, shape, dtype in grid:
    params = sum(
      x.size
      for x in jax.tree.leaves(
        nnx.state(
          nnx.eval_shape(
            lambda shape=shape, dtype=dtype: Transformer(our_config(shape, dtype), rngs=nnx.Rngs(0))
          ),
          nnx.Param,
        )
      )
    )
    print(f"{name} ({params / 1e6:.1f}M params, B={shape.batch} L={shape.seq_len}), {dtype}:")
    summary.append((name, dtype, compare(shape, dtype, args.repeats)))
  print("summary ours/nanodo tokens/s: " + ", ".join(f"{n} {d} {r:.2f}" for n, d, r in summary))


if __name__ == "__main__":
  main()
