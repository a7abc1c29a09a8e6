"""The pieces of one LLaMA-style block: RMSNorm, rotary embeddings, attention, SwiGLU MLP.

Parameters are stored in ``config.param_dtype`` and cast to ``config.compute_dtype`` where they are
used; normalization and rotary embeddings are computed in float32. Every ``nnx.Param`` carries its
logical axis names in the ``out_sharding`` metadata (Flax's current name for the ``sharding``
annotation), with ``eager_sharding=False``: the names are logical, and ``nexus.model.sharding`` maps
them to mesh axes, so creating a module never needs a mesh.
"""

import math
from typing import Optional

from flax import nnx
import jax
import jax.numpy as jnp

from nexus.model.config import ModelConfig

NORM_EPS = 1e-6

# A layer's key/value cache: (keys, values), each ``[batch, max_len, kv_heads, head_dim]``.
LayerCache = tuple[jax.Array, jax.Array]


def logical_param(value: jax.Array, axes: tuple[str, ...]) -> nnx.Param:
  """A parameter annotated with one logical axis name per dimension."""
  if len(axes) != value.ndim:
    raise ValueError(f"{len(axes)} logical axes {axes} for a parameter of shape {value.shape}.")
  return nnx.Param(value, out_sharding=axes, eager_sharding=False)


def normal_param(rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str, ...], std: float,
                 dtype: str) -> nnx.Param:
  """A parameter drawn from N(0, std²) with the ``params`` stream of ``rngs``."""
  return logical_param(std * jax.random.normal(rngs.params(), shape, dtype), axes)


class RMSNorm(nnx.Module):
  """Root-mean-square normalization with a learned scale (Zhang & Sennrich 2019, arXiv:1910.07467)."""

  def __init__(self, config: ModelConfig):
    self.scale = logical_param(jnp.ones((config.d_model,), config.param_dtype), ("norm",))
    self.compute_dtype = config.compute_dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    normed = x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + NORM_EPS)
    return (normed * self.scale[...].astype(jnp.float32)).astype(self.compute_dtype)


def rotary_embedding(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
  """Rotates the two halves of each head of ``x [B, T, heads, head_dim]`` by ``positions [B, T]``.

  RoPE (Su et al. 2021, arXiv:2104.09864) in the "rotate half" layout of GPT-NeoX/LLaMA: dimension i
  pairs with i + head_dim/2 at frequency theta^(-2i/head_dim). Attention scores then depend only on
  the distance between positions, which is why left/right padding choices never shift them.
  """
  half = x.shape[-1] // 2
  frequencies = theta ** (-jnp.arange(half, dtype=jnp.float32) * 2.0 / x.shape[-1])
  angles = positions.astype(jnp.float32)[:, :, None, None] * frequencies
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  first, second = x[..., :half].astype(jnp.float32), x[..., half:].astype(jnp.float32)
  rotated = jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)
  return rotated.astype(x.dtype)


class Attention(nnx.Module):
  """Causal multi-head or grouped-query attention with rotary positions.

  Query head n reads key/value head n // (num_heads / num_kv_heads), the grouping of
  ``jax.nn.dot_product_attention``, which picks a fused kernel where one exists (``implementation=None``).
  """

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    d, n, k, h = config.d_model, config.num_heads, config.num_kv_heads, config.head_dim
    std, out_std = config.init_std, config.init_std / math.sqrt(2 * config.num_layers)
    self.query = normal_param(rngs, (d, n, h), ("embed", "heads", "head_dim"), std, config.param_dtype)
    self.key = normal_param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), std, config.param_dtype)
    self.value = normal_param(rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), std, config.param_dtype)
    self.out = normal_param(rngs, (n, h, d), ("heads", "head_dim", "embed"), out_std, config.param_dtype)
    self.compute_dtype = config.compute_dtype
    self.rope_theta = config.rope_theta

  def __call__(self, x: jax.Array, positions: jax.Array,
               cache: Optional[LayerCache]) -> tuple[jax.Array, Optional[LayerCache]]:
    """Attends ``x [B, T, D]`` at ``positions [B, T]``.

    Without a cache the T tokens attend causally among themselves. With a cache, their keys and values
    are first written at their positions, then each token attends to every cached position up to its
    own (so a row's stale entries beyond its position are never read).
    """
    dtype = self.compute_dtype
    project = lambda w: jnp.einsum("btd,dnh->btnh", x, w[...].astype(dtype))
    query = rotary_embedding(project(self.query), positions, self.rope_theta)
    key = rotary_embedding(project(self.key), positions, self.rope_theta)
    value = project(self.value)
    if cache is None:
      attended = jax.nn.dot_product_attention(query, key, value, is_causal=True, implementation=None)
    else:
      rows = jnp.arange(x.shape[0])[:, None]
      cache = (cache[0].at[rows, positions].set(key), cache[1].at[rows, positions].set(value))
      visible = jnp.arange(cache[0].shape[1]) <= positions[:, :, None]  # [B, T, max_len]
      attended = jax.nn.dot_product_attention(query, *cache, mask=visible[:, None], implementation=None)
    return jnp.einsum("btnh,nhd->btd", attended, self.out[...].astype(dtype)), cache


class MLP(nnx.Module):
  """SwiGLU feed-forward: down(silu(gate·x) ⊙ up·x) (Shazeer 2020, arXiv:2002.05202)."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    d, f = config.d_model, config.mlp_dim
    std, out_std = config.init_std, config.init_std / math.sqrt(2 * config.num_layers)
    self.gate = normal_param(rngs, (d, f), ("embed", "mlp"), std, config.param_dtype)
    self.up = normal_param(rngs, (d, f), ("embed", "mlp"), std, config.param_dtype)
    self.down = normal_param(rngs, (f, d), ("mlp", "embed"), out_std, config.param_dtype)
    self.compute_dtype = config.compute_dtype

  def __call__(self, x: jax.Array) -> jax.Array:
    dtype = self.compute_dtype
    hidden = jax.nn.silu(x @ self.gate[...].astype(dtype)) * (x @ self.up[...].astype(dtype))
    return hidden @ self.down[...].astype(dtype)


class Block(nnx.Module):
  """One pre-norm transformer block: x + attention(norm(x)), then + mlp(norm(x))."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.attention_norm = RMSNorm(config)
    self.attention = Attention(config, rngs=rngs)
    self.mlp_norm = RMSNorm(config)
    self.mlp = MLP(config, rngs=rngs)

  def __call__(self, x: jax.Array, positions: jax.Array,
               cache: Optional[LayerCache]) -> tuple[jax.Array, Optional[LayerCache]]:
    attended, cache = self.attention(self.attention_norm(x), positions, cache)
    x = x + attended
    return x + self.mlp(self.mlp_norm(x)), cache
