"""Benchmark: compile time versus depth (scanned vs unrolled layers) and compiled memory per preset.

Everything is compiled ahead of time from abstract shapes (``nnx.eval_shape`` and
``jax.ShapeDtypeStruct``): no parameter is ever allocated, so the 3B preset is measured on any
machine. The compiled program is the training computation of the model layer: loss and gradients of
``mean_token_loss`` on one ``[batch, seq_len + 1]`` micro-batch (no optimizer).

1. Compile time (lowering + XLA compilation) of a fixed-width model at growing depth (256-token
   rows), with ``scan_layers=True`` (baseline) and ``False``; the ratio unrolled/scanned shows what
   the scan saves.
2. ``compiled.memory_analysis()`` of every preset at its own precision and remat policy: arguments
   (parameters and tokens), outputs (loss and gradients) and temporaries (activations), in GiB per
   device. With ``--fsdp N`` the computation is compiled for N devices, parameters sharded by the
   logical rules over an ``fsdp`` axis and the batch split over it, traced under the mesh so that the
   activation constraints apply (on CPU, fake devices:
   ``XLA_FLAGS=--xla_force_host_platform_device_count=8``); ``--batch`` is then per device.

Usage:
  python -m bench.model_compile [--depths 2,4,8,16] [--width 256] [--presets tiny,130m,350m,1b,3b]
      [--batch 8] [--seq_len 2048] [--fsdp 1]
"""

import argparse
import dataclasses
import time

from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec
import numpy as np

from nexus.model import PRESETS
from nexus.model import ModelConfig
from nexus.model import Transformer
from nexus.model import count_params
from nexus.model import mean_token_loss
from nexus.model import sharding

GIB = 2**30
COMPILE_TIME_SEQ_LEN = (
  256  # compile time hardly depends on the sequence length; keep the table cheap
)


def compile_train_computation(config: ModelConfig, batch: int, seq_len: int, fsdp: int = 1):
  """Lowers and compiles loss-and-gradients for ``config`` from shapes; returns (compiled, seconds).

  With ``fsdp`` > 1: on that many devices, parameters and gradients sharded, ``batch`` rows per device.
  """
  graphdef, abstract_params = nnx.split(
    nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
  )

  def loss_and_grads(params, tokens):
    return jax.value_and_grad(lambda p: mean_token_loss(nnx.merge(graphdef, p), tokens))(params)

  tokens = jax.ShapeDtypeStruct((batch * fsdp, seq_len + 1), jnp.int32)
  start = time.perf_counter()
  if fsdp == 1:
    compiled = jax.jit(loss_and_grads).lower(abstract_params, tokens).compile()
  else:
    mesh = Mesh(np.asarray(jax.devices()[:fsdp]).reshape(1, fsdp, 1), ("data", "fsdp", "tensor"))
    param_shardings = sharding.state_shardings(abstract_params, mesh)
    batch_sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp"), None))
    with jax.set_mesh(mesh):
      compiled = (
        jax.jit(
          loss_and_grads,
          in_shardings=(param_shardings, batch_sharding),
          out_shardings=(None, param_shardings),
        )
        .lower(abstract_params, tokens)
        .compile()
      )
  return compiled, time.perf_counter() - start


def compile_time_table(depths: list[int], width: int, batch: int, seq_len: int) -> None:
  print(
    f"\nCompile time vs depth (d_model={width}, batch {batch} x {seq_len} tokens, {jax.default_backend()})"
  )
  print(f"{'layers':>6} {'scan s':>8} {'unrolled s':>11} {'unrolled/scan':>14}")
  make_config = lambda depth: ModelConfig(
    vocab_size=32000,
    num_layers=depth,
    d_model=width,
    num_heads=max(1, width // 64),
    mlp_dim=4 * width,
    max_seq_len=seq_len,
  )
  compile_train_computation(
    make_config(1), batch, seq_len
  )  # warm-up: the first compile pays one-time costs
  for depth in depths:
    config = make_config(depth)
    _, scanned = compile_train_computation(config, batch, seq_len)
    _, unrolled = compile_train_computation(
      dataclasses.replace(config, scan_layers=False), batch, seq_len
    )
    print(f"{depth:>6} {scanned:>8.2f} {unrolled:>11.2f} {unrolled / scanned:>14.2f}")


def memory_table(names: list[str], batch: int, seq_len: int, fsdp: int) -> None:
  print(
    f"\nCompiled memory per device of loss + gradients ({batch} rows per device, seq_len up to {seq_len}, "
    f"{fsdp} x {jax.devices()[0].device_kind}, fsdp={fsdp})"
  )
  print(
    f"{'preset':>7} {'params':>10} {'compute':>9} {'remat':>33} {'seq':>5} {'args GiB':>9} {'out GiB':>8} "
    f"{'temp GiB':>9} {'compile s':>10}"
  )
  for name in names:
    config = PRESETS[name]
    length = min(seq_len, config.max_seq_len)
    compiled, seconds = compile_train_computation(config, batch, length, fsdp)
    memory = compiled.memory_analysis()
    sizes = (
      (memory.argument_size_in_bytes, memory.output_size_in_bytes, memory.temp_size_in_bytes)
      if memory is not None
      else (float("nan"),) * 3
    )
    print(
      f"{name:>7} {count_params(config) / 1e6:>9.1f}M {config.compute_dtype:>9} {config.remat:>33} {length:>5} "
      + " ".join(f"{size / GIB:>{w}.3f}" for size, w in zip(sizes, (9, 8, 9)))
      + f" {seconds:>10.1f}"
    )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--depths", default="2,4,8,16", help="layer counts for the compile-time table"
  )
  parser.add_argument("--width", type=int, default=256, help="d_model of the compile-time models")
  parser.add_argument("--presets", default=",".join(PRESETS), help="presets for the memory table")
  parser.add_argument("--batch", type=int, default=8, help="rows per micro-batch")
  parser.add_argument(
    "--seq_len", type=int, default=2048, help="tokens per row (capped by each preset)"
  )
  parser.add_argument("--fsdp", type=int, default=1, help="devices of the memory table's FSDP mesh")
  args = parser.parse_args()
  if args.fsdp > jax.device_count():
    parser.error(
      f"--fsdp={args.fsdp} needs that many devices, {jax.device_count()} visible; on CPU set "
      f"XLA_FLAGS=--xla_force_host_platform_device_count={args.fsdp}"
    )
  presets = args.presets.split(",") if args.presets else []
  unknown = sorted(set(presets) - set(PRESETS))
  if unknown:
    parser.error(f"unknown presets {unknown}; choose from {sorted(PRESETS)}")
  depths = [int(depth) for depth in args.depths.split(",")] if args.depths else []
  if depths:
    compile_time_table(depths, args.width, args.batch, COMPILE_TIME_SEQ_LEN)
  if presets:
    memory_table(presets, args.batch, args.seq_len, args.fsdp)


if __name__ == "__main__":
  main()
