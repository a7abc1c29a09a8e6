"""The pieces of one LLaMA-style block: RMSNorm, rotary embeddings, attention, SwiGLU MLP.

Parameters are stored in ``config.param_dtype`` and cast to ``config.compute_dtype`` where they are
used; normalization and the softmax are computed in float32. Every ``nnx.Param`` carries its
logical axis names in the ``out_sharding`` metadata (Flax's current name for the ``sharding``
annotation), with ``eager_sharding=False``: the names are logical, and ``nexus.model.sharding`` maps
them to mesh axes, so creating a module never needs a mesh.

Tensors that a named rematerialization policy may keep are tagged with
``jax.ad_checkpoint.checkpoint_name``: ``query``, ``key``, ``value`` (after the rotary embedding)
and ``attention`` (the attended values, before the output projection).
"""

import math

from flax import nnx
import jax
from jax.ad_checkpoint import checkpoint_name
import jax.numpy as jnp

from nexus.model import sharding
from nexus.model.config import ModelConfig

NORM_EPS = 1e-6

# A layer's key/value cache: (keys, values), each ``[batch, max_len, kv_heads, head_dim]``.
LayerCache = tuple[jax.Array, jax.Array]
# Rotary tables (cos, sin), each ``[batch, T, 1, head_dim / 2]`` in the compute dtype.
RotaryTables = tuple[jax.Array, jax.Array]


def logical_param(value: jax.Array, axes: tuple[str, ...]) -> nnx.Param:
  """A parameter annotated with one logical axis name per dimension."""
  if len(axes) != value.ndim:
    raise ValueError(f"{len(axes)} logical axes {axes} for a parameter of shape {value.shape}.")
  return nnx.Param(value, out_sharding=axes, eager_sharding=False)


def normal_param(
  rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str, ...], std: float, dtype: str
) -> nnx.Param:
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


def rotary_tables(positions: jax.Array, config: ModelConfig) -> RotaryTables:
  """cos and sin of the rotary angles at ``positions [B, T]``, computed once per forward pass.

  RoPE (Su et al. 2021, arXiv:2104.09864): dimension pair i rotates at frequency
  theta^(-2i/head_dim). The angles are computed in float32, the tables stored in the compute dtype.
  """
  half = config.head_size // 2
  frequencies = config.rope_theta ** (-jnp.arange(half, dtype=jnp.float32) * 2.0 / config.head_size)
  angles = positions.astype(jnp.float32)[:, :, None, None] * frequencies
  return jnp.cos(angles).astype(config.compute_dtype), jnp.sin(angles).astype(config.compute_dtype)


def apply_rotary(x: jax.Array, tables: RotaryTables) -> jax.Array:
  """Rotates the two halves of each head of ``x [B, T, heads, head_dim]`` ("rotate half", GPT-NeoX/LLaMA).

  Dimension i pairs with i + head_dim/2. Attention scores then depend only on the distance between
  positions, which is why left/right padding choices never shift them.
  """
  cos, sin = tables
  half = x.shape[-1] // 2
  first, second = x[..., :half], x[..., half:]
  return jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1)


def attend(
  query: jax.Array,
  key: jax.Array,
  value: jax.Array,
  implementation: str,
  mask: jax.Array | None = None,
) -> jax.Array:
  """Scaled dot-product attention of ``query [B, T, N, H]`` over ``key, value [B, S, K, H]``.

  Query head n reads key/value head n // (N / K) (grouped-query attention). With ``mask`` None the
  attention is causal (T == S); otherwise ``mask [B, T, S]`` says which keys each query sees.

  Args:
    implementation: "einsum": scores in float32 from compute-dtype inputs, a causal/padding mask, a
      float32 softmax and the weighted sum of values, as plain einsums that XLA fuses on every backend;
      "xla" or "cudnn": ``jax.nn.dot_product_attention`` with that implementation (cuDNN's fused
      flash-attention kernel never materializes the ``[B, N, T, S]`` scores).
  """
  if implementation != "einsum":
    if implementation == "cudnn" and jax.default_backend() != "gpu":
      raise ValueError(
        f"attention='cudnn' needs an NVIDIA GPU, not the {jax.default_backend()} backend; "
        "use attention='einsum' or 'xla'."
      )
    if mask is None:
      return jax.nn.dot_product_attention(  # type: ignore[call-overload]  # checked in ModelConfig
        query, key, value, is_causal=True, implementation=implementation
      )
    return jax.nn.dot_product_attention(  # type: ignore[call-overload]
      query, key, value, mask=mask[:, None], implementation=implementation
    )
  b, t, n, h = query.shape
  k = key.shape[2]
  grouped = query.reshape(b, t, k, n // k, h)
  scores = jnp.einsum("btkgh,bskh->bkgts", grouped, key, preferred_element_type=jnp.float32)
  scores = scores / math.sqrt(h)
  if mask is None:
    mask = jnp.tril(jnp.ones((t, key.shape[1]), bool))[None]
  scores = jnp.where(mask[:, None, None], scores, jnp.finfo(jnp.float32).min)
  weights = jax.nn.softmax(scores, axis=-1).astype(value.dtype)
  return jnp.einsum("bkgts,bskh->btkgh", weights, value).reshape(b, t, n, h)


class Attention(nnx.Module):
  """Causal multi-head or grouped-query attention with rotary positions (see ``attend``)."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    d, n, k, h = config.d_model, config.num_heads, config.kv_heads, config.head_size
    std, out_std = config.init_std, config.init_std / math.sqrt(2 * config.num_layers)
    self.query = normal_param(
      rngs, (d, n, h), ("embed", "heads", "head_dim"), std, config.param_dtype
    )
    self.key = normal_param(
      rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), std, config.param_dtype
    )
    self.value = normal_param(
      rngs, (d, k, h), ("embed", "kv_heads", "head_dim"), std, config.param_dtype
    )
    self.out = normal_param(
      rngs, (n, h, d), ("heads", "head_dim", "embed"), out_std, config.param_dtype
    )
    self.compute_dtype = config.compute_dtype
    self.implementation = config.attention

  def __call__(
    self, x: jax.Array, rotary: RotaryTables, positions: jax.Array, cache: LayerCache | None
  ) -> tuple[jax.Array, LayerCache | None]:
    """Attends ``x [B, T, D]`` at ``positions [B, T]`` (``rotary``: their tables).

    Without a cache the T tokens attend causally among themselves. With a cache, their keys and values
    are first written at their positions, then each token attends to every cached position up to its
    own (so a row's stale entries beyond its position are never read).
    """
    dtype = self.compute_dtype
    project = lambda w: jnp.einsum("btd,dnh->btnh", x, w[...].astype(dtype))
    heads = ("batch", "length", "heads", "head_dim")
    query = checkpoint_name(
      sharding.constrain(apply_rotary(project(self.query), rotary), heads), "query"
    )
    key = checkpoint_name(apply_rotary(project(self.key), rotary), "key")
    value = checkpoint_name(project(self.value), "value")
    if cache is None:
      attended = attend(query, key, value, self.implementation)
    else:
      rows = jnp.arange(x.shape[0])[:, None]
      cache = (cache[0].at[rows, positions].set(key), cache[1].at[rows, positions].set(value))
      visible = jnp.arange(cache[0].shape[1]) <= positions[:, :, None]  # [B, T, max_len]
      implementation = "xla" if self.implementation == "cudnn" else self.implementation
      attended = attend(query, *cache, implementation, mask=visible)
    attended = checkpoint_name(sharding.constrain(attended, heads), "attention")
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
    hidden = sharding.constrain(hidden, ("batch", "length", "mlp"))
    return hidden @ self.down[...].astype(dtype)


class Block(nnx.Module):
  """One pre-norm transformer block: x + attention(norm(x)), then + mlp(norm(x))."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.attention_norm = RMSNorm(config)
    self.attention = Attention(config, rngs=rngs)
    self.mlp_norm = RMSNorm(config)
    self.mlp = MLP(config, rngs=rngs)

  def __call__(
    self, x: jax.Array, rotary: RotaryTables, positions: jax.Array, cache: LayerCache | None
  ) -> tuple[jax.Array, LayerCache | None]:
    residual = ("batch", "length", "embed")
    attended, cache = self.attention(self.attention_norm(x), rotary, positions, cache)
    x = sharding.constrain(x + attended, residual)
    return sharding.constrain(x + self.mlp(self.mlp_norm(x)), residual), cache
