"""Next-token cross entropy with padding (target id 0) masked out, always in float32.

A batch row is ``tokens[B, L+1]``: the model reads ``tokens[:, :-1]`` and is scored on ``tokens[:,
1:]``. Three views of the same masked sums: ``next_token_loss`` (per-row sums and counts),
``per_row_loss`` (each row's mean, for per-source losses in training and evaluation) and
``mean_token_loss`` (the mean over every scored token of a micro-batch, the training objective).

With ``ModelConfig.loss_chunk_size`` set, a ``Transformer``'s sums are computed from its final
hidden states a chunk of positions at a time (``chunked_next_token_loss``), so the float32 ``[B, L,
V]`` logits never exist whole, neither in the forward nor in the backward pass.
"""

import math

import jax
import jax.numpy as jnp

from nexus.model.transformer import Transformer

PAD_ID = 0


def next_token_loss(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-row ``(sum of cross entropies, number of scored tokens)``, both float32 ``[B]``.

  Args:
    logits: ``[B, L, V]`` scores of the next token (any float dtype; upcast to float32).
    targets: ``int[B, L]`` next-token ids; positions where ``targets == 0`` (padding) are not scored.
  """
  if logits.shape[:-1] != targets.shape:
    raise ValueError(
      f"logits {logits.shape} and targets {targets.shape} must agree on [batch, length]."
    )
  logits = logits.astype(jnp.float32)
  target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  losses = jax.nn.logsumexp(logits, axis=-1) - target_logits
  scored = targets != PAD_ID
  return jnp.sum(jnp.where(scored, losses, 0.0), axis=-1), jnp.sum(
    scored, axis=-1, dtype=jnp.float32
  )


def chunked_next_token_loss(
  logits_fn, features: jax.Array, targets: jax.Array, chunk_size: int
) -> tuple[jax.Array, jax.Array]:
  """``next_token_loss(logits_fn(features), targets)``, computed ``chunk_size`` positions at a time.

  A ``jax.lax.scan`` over position chunks whose body is rematerialized (``jax.checkpoint``): at most
  one chunk's ``[B, chunk_size, V]`` logits are alive at once, in the backward pass too, at the price
  of recomputing the output projection (the memory-saving trick of chunked/fused cross-entropy
  kernels, e.g. Liger Kernel, Hsu et al. 2024, arXiv:2410.10989).

  Args:
    logits_fn: maps features ``[B, c, D]`` to float32 logits ``[B, c, V]``.
    features: ``[B, L, D]`` final hidden states.
    targets: ``int[B, L]``; 0 is padding (not scored). L is padded with 0 to a multiple of chunk_size.
    chunk_size: positions per chunk.
  """
  batch, length = targets.shape
  chunks = math.ceil(length / chunk_size)
  pad = chunks * chunk_size - length
  features = jnp.pad(features, ((0, 0), (0, pad), (0, 0)))
  targets = jnp.pad(targets, ((0, 0), (0, pad)))
  as_chunks = lambda x: jnp.moveaxis(x.reshape(batch, chunks, chunk_size, *x.shape[2:]), 1, 0)

  @jax.checkpoint
  def chunk_sums(carry, chunk):
    sums, counts = next_token_loss(logits_fn(chunk[0]), chunk[1])
    return (carry[0] + sums, carry[1] + counts), None

  zeros = jnp.zeros((batch,), jnp.float32)
  (sums, counts), _ = jax.lax.scan(
    chunk_sums, (zeros, zeros), (as_chunks(features), as_chunks(targets))
  )
  return sums, counts


def _row_sums(model, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
  if tokens.ndim != 2 or tokens.shape[1] < 2:
    raise ValueError(
      f"tokens must be [batch, length+1] with length+1 >= 2; got shape {tokens.shape}."
    )
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  if isinstance(model, Transformer) and model.config.loss_chunk_size:
    return chunked_next_token_loss(
      model.logits, model.features(inputs), targets, model.config.loss_chunk_size
    )
  return next_token_loss(model(inputs), targets)


def per_row_loss(model, tokens: jax.Array) -> jax.Array:
  """float32 ``[B]``: each row's mean loss over its non-pad targets (0 for a row without any)."""
  sums, counts = _row_sums(model, tokens)
  return sums / jnp.maximum(counts, 1.0)


def mean_token_loss(model, tokens: jax.Array) -> jax.Array:
  """float32 scalar: the mean loss over every non-pad target of ``tokens [B, L+1]`` (0 if none)."""
  sums, counts = _row_sums(model, tokens)
  return jnp.sum(sums) / jnp.maximum(jnp.sum(counts), 1.0)
