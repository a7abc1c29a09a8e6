"""Small model configs and inputs shared by the model tests (tiny shapes: the suite runs on 2 CPU cores)."""

import dataclasses

from flax import nnx
import jax

from nexus.model import ModelConfig
from nexus.model import Transformer

SMALL = ModelConfig(
  vocab_size=61, num_layers=2, d_model=32, num_heads=4, num_kv_heads=2, mlp_dim=64, max_seq_len=48
)


def small_config(**overrides) -> ModelConfig:
  """``SMALL`` with some fields changed."""
  return dataclasses.replace(SMALL, **overrides)


def small_model(seed: int = 0, **overrides) -> Transformer:
  return Transformer(small_config(**overrides), rngs=nnx.Rngs(seed))


def random_tokens(shape, vocab_size: int = SMALL.vocab_size, seed: int = 1) -> jax.Array:
  """Non-padding token ids (1..vocab_size-1) of ``shape``."""
  return jax.random.randint(jax.random.key(seed), shape, 1, vocab_size)
