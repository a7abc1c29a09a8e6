"""Named model shapes: ``tiny`` for a 2-core CPU, and LLaMA-like 130M, 350M, 1B and 3B models.

The large presets assume a 32k-token vocabulary (a SentencePiece model, as LLaMA 1/2) and 2048-token
sequences; their shapes follow published models of the same size (GPT-3/Pythia-style 12×768 and
24×1024 at 130M/350M; Llama 3.2 1B/3B with grouped-query attention and tied embeddings), and
``count_params`` of each rounds to its name within 10% (tested). ``tiny`` is sized for the byte
vocabulary (259 ids) and 128-token training sequences, with room for 256-token generations.

Speed and memory choices, from measurements (docs/benchmarks.md): ``tiny`` runs its 4 blocks
unrolled (faster than a scan on CPU, and 4 blocks compile quickly); the large presets scan over
their blocks (compile time flat in depth). Rematerialization from ``bench/model_compile.py``'s
memory table: without remat, the 130m step keeps about 7.5 GiB of activations per 2048-token row
(the attention scores of every layer); ``dots_with_no_batch_dims_saveable`` keeps the projections'
outputs and recomputes the attention scores and elementwise work, about 1.6 GiB per row; the 3b
preset recomputes everything.
"""

import math

from flax import nnx
import jax

from nexus.model.config import ModelConfig
from nexus.model.transformer import Transformer

PRESETS: dict[str, ModelConfig] = {
  "tiny": ModelConfig(
    vocab_size=259,
    num_layers=4,
    d_model=128,
    num_heads=4,
    mlp_dim=384,
    max_seq_len=256,
    tie_embeddings=True,
    scan_layers=False,
  ),
  "130m": ModelConfig(
    vocab_size=32000,
    num_layers=12,
    d_model=768,
    num_heads=12,
    mlp_dim=2048,
    compute_dtype="bfloat16",
    remat="dots_with_no_batch_dims_saveable",
  ),
  "350m": ModelConfig(
    vocab_size=32000,
    num_layers=24,
    d_model=1024,
    num_heads=16,
    mlp_dim=2560,
    compute_dtype="bfloat16",
    remat="dots_with_no_batch_dims_saveable",
  ),
  "1b": ModelConfig(
    vocab_size=32000,
    num_layers=16,
    d_model=2048,
    num_heads=32,
    num_kv_heads=8,
    mlp_dim=8192,
    tie_embeddings=True,
    compute_dtype="bfloat16",
    remat="dots_with_no_batch_dims_saveable",
  ),
  "3b": ModelConfig(
    vocab_size=32000,
    num_layers=28,
    d_model=3072,
    num_heads=24,
    num_kv_heads=8,
    head_dim=128,
    mlp_dim=8192,
    tie_embeddings=True,
    compute_dtype="bfloat16",
    remat="full",
  ),
}


def get_preset(name: str) -> ModelConfig:
  """The preset called ``name``."""
  if name not in PRESETS:
    raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name]


def count_params(config: ModelConfig) -> int:
  """Number of parameters of ``Transformer(config)``, from shapes only (``nnx.eval_shape``, no memory)."""
  abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
