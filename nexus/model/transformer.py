"""The decoder-only transformer: token embedding, a stack of blocks over a ``layers`` axis, logits.

The blocks are created once with ``nnx.vmap``, so every block parameter has a leading ``layers``
dimension (logical axis ``layers``). The forward pass runs them with ``jax.lax.scan`` over that axis
(``scan_layers=True``: one traced block, or ``scan_unroll`` blocks, per iteration, so compile time
does not grow with depth, as in MaxText) or with an unrolled Python loop over slices of the same
arrays (``scan_layers=False``), so both modes share one parameter layout and one checkpoint format.
Each block is wrapped in ``jax.checkpoint`` with the configured rematerialization policy. The rotary
tables are computed once per forward pass and shared by every block.

Two entry points: ``model(tokens)`` for training and evaluation (causal attention among the given
tokens) and ``model.decode(tokens, positions, cache)`` for generation with a key/value cache.
"""

from typing import NamedTuple

from flax import nnx
import jax
import jax.numpy as jnp

from nexus.model import sharding
from nexus.model.config import REMAT_POLICIES
from nexus.model.config import ModelConfig
from nexus.model.layers import Block
from nexus.model.layers import RMSNorm
from nexus.model.layers import normal_param
from nexus.model.layers import rotary_tables


class KVCache(NamedTuple):
  """Every layer's keys and values: ``[layers, batch, max_len, kv_heads, head_dim]`` each."""

  key: jax.Array
  value: jax.Array


def _check_tokens(tokens: jax.Array, config: ModelConfig) -> None:
  if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(
      f"tokens must be an integer array [batch, length]; got {tokens.dtype}{list(tokens.shape)}."
    )
  if tokens.shape[1] > config.max_seq_len:
    raise ValueError(
      f"{tokens.shape[1]} tokens exceed max_seq_len={config.max_seq_len}; "
      "shorten the input or raise ModelConfig.max_seq_len."
    )


class Transformer(nnx.Module):
  """LLaMA-style decoder-only language model; token id 0 is padding (masked in the loss, not here).

  Example::

    model = Transformer(ModelConfig(vocab_size=259, num_layers=2, d_model=64, num_heads=4,
                                    mlp_dim=128), rngs=nnx.Rngs(0))
    logits = model(jnp.ones((2, 16), jnp.int32))  # float32[2, 16, 259]
  """

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.config = config
    self.embedding = normal_param(
      rngs,
      (config.vocab_size, config.d_model),
      ("vocab", "embed"),
      config.init_std,
      config.param_dtype,
    )

    @nnx.vmap(in_axes=0, out_axes=0, transform_metadata={nnx.PARTITION_NAME: "layers"})
    def make_blocks(layer_rngs):
      return Block(config, rngs=layer_rngs)

    self.blocks = make_blocks(rngs.split(config.num_layers))
    self.final_norm = RMSNorm(config)
    self.unembedding = (
      None
      if config.tie_embeddings
      else normal_param(
        rngs,
        (config.d_model, config.vocab_size),
        ("embed", "vocab"),
        config.init_std,
        config.param_dtype,
      )
    )

  def __call__(self, tokens: jax.Array) -> jax.Array:
    """float32 logits ``[B, L, V]`` of the next token after each of ``tokens int32[B, L]``."""
    return self.logits(self.features(tokens))

  def features(self, tokens: jax.Array) -> jax.Array:
    """The normalized final hidden states ``[B, L, D]`` (compute dtype) of ``tokens int32[B, L]``.

    ``logits(features(tokens)) == model(tokens)``; the chunked loss projects them a chunk at a time.
    """
    _check_tokens(tokens, self.config)
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    hidden, _ = self._forward(tokens, positions, None)
    return hidden

  def logits(self, features: jax.Array) -> jax.Array:
    """float32 logits ``[..., V]`` of final hidden states ``[..., D]`` (the output projection)."""
    c = self.config
    output = self.embedding[...].T if self.unembedding is None else self.unembedding[...]
    return jnp.einsum(
      "...d,dv->...v", features, output.astype(c.compute_dtype), preferred_element_type=jnp.float32
    )

  def init_cache(self, batch_size: int, max_len: int) -> KVCache:
    """An all-zero cache for ``batch_size`` rows of up to ``max_len`` positions, in the compute dtype."""
    if not 1 <= max_len <= self.config.max_seq_len:
      raise ValueError(
        f"cache length {max_len} must be in [1, max_seq_len={self.config.max_seq_len}]."
      )
    c = self.config
    zeros = jnp.zeros((c.num_layers, batch_size, max_len, c.kv_heads, c.head_size), c.compute_dtype)
    return KVCache(zeros, zeros)

  def decode(
    self, tokens: jax.Array, positions: jax.Array, cache: KVCache
  ) -> tuple[jax.Array, KVCache]:
    """Runs ``tokens [B, T]`` at ``positions [B, T]`` against ``cache``; returns (logits, new cache).

    The tokens' keys and values are written into the cache at their positions; each token attends to
    every cache entry at or before its own position. A prefill is ``T`` prompt tokens at positions
    ``0..T-1``; a decoding step is one token per row at that row's next position.
    """
    _check_tokens(tokens, self.config)
    if positions.shape != tokens.shape:
      raise ValueError(f"positions {positions.shape} must have the tokens' shape {tokens.shape}.")
    expected = (self.config.num_layers, tokens.shape[0])
    if cache.key.shape[:2] != expected:
      raise ValueError(
        f"cache of shape {cache.key.shape} does not hold {expected[0]} layers x {expected[1]} rows; "
        "build it with model.init_cache(batch_size, max_len)."
      )
    hidden, new_cache = self._forward(tokens, positions, cache)
    assert new_cache is not None  # a cache in gives a cache out
    return self.logits(hidden), new_cache

  def _forward(
    self, tokens: jax.Array, positions: jax.Array, cache: KVCache | None
  ) -> tuple[jax.Array, KVCache | None]:
    """Final normalized hidden states ``[B, T, D]`` and the updated cache."""
    c = self.config
    x = jnp.take(self.embedding[...], tokens, axis=0).astype(c.compute_dtype)
    x = sharding.constrain(x, ("batch", "length", "embed"))
    x, cache = self._run_blocks(x, positions, cache)
    return self.final_norm(x), cache

  def _run_blocks(
    self, x: jax.Array, positions: jax.Array, cache: KVCache | None
  ) -> tuple[jax.Array, KVCache | None]:
    """Applies every block in order, scanned or unrolled, each under the remat policy."""
    c = self.config
    graphdef, stacked = nnx.split(self.blocks)
    rotary = rotary_tables(positions, c)

    def block(x, rotary, positions, layer_params, layer_cache):
      return nnx.merge(graphdef, layer_params)(x, rotary, positions, layer_cache)

    if c.remat != "none":
      # Under scan the loop structure already keeps XLA from merging the recomputation away.
      block = jax.checkpoint(block, policy=REMAT_POLICIES[c.remat], prevent_cse=not c.scan_layers)
    layer_caches = None if cache is None else tuple(cache)
    if c.scan_layers:

      def step(x, layer):
        return block(x, rotary, positions, *layer)

      x, layer_caches = jax.lax.scan(step, x, (stacked, layer_caches), unroll=c.scan_unroll)
    else:
      outputs = []
      for i in range(c.num_layers):
        layer_params, layer_cache = jax.tree.map(lambda a, i=i: a[i], (stacked, layer_caches))
        x, layer_cache = block(x, rotary, positions, layer_params, layer_cache)
        outputs.append(layer_cache)
      layer_caches = jax.tree.map(lambda *layers: jnp.stack(layers), *outputs)
    return x, None if cache is None else KVCache(*layer_caches)  # type: ignore[misc]
