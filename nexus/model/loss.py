"""Next-token cross entropy with padding (target id 0) masked out, always in float32.

A batch row is ``tokens[B, L+1]``: the model reads ``tokens[:, :-1]`` and is scored on
``tokens[:, 1:]``. Three views of the same masked sums: ``next_token_loss`` (per-row sums and counts),
``per_row_loss`` (each row's mean, for per-source losses in training and evaluation) and
``mean_token_loss`` (the mean over every scored token of a micro-batch, the training objective).
"""

import jax
import jax.numpy as jnp

PAD_ID = 0


def next_token_loss(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-row ``(sum of cross entropies, number of scored tokens)``, both float32 ``[B]``.

  Args:
    logits: ``[B, L, V]`` scores of the next token (any float dtype; upcast to float32).
    targets: ``int[B, L]`` next-token ids; positions where ``targets == 0`` (padding) are not scored.
  """
  if logits.shape[:-1] != targets.shape:
    raise ValueError(f"logits {logits.shape} and targets {targets.shape} must agree on [batch, length].")
  logits = logits.astype(jnp.float32)
  target_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
  losses = jax.nn.logsumexp(logits, axis=-1) - target_logits
  scored = targets != PAD_ID
  return jnp.sum(jnp.where(scored, losses, 0.0), axis=-1), jnp.sum(scored, axis=-1, dtype=jnp.float32)


def _row_sums(model, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
  if tokens.ndim != 2 or tokens.shape[1] < 2:
    raise ValueError(f"tokens must be [batch, length+1] with length+1 >= 2; got shape {tokens.shape}.")
  return next_token_loss(model(tokens[:, :-1]), tokens[:, 1:])


def per_row_loss(model, tokens: jax.Array) -> jax.Array:
  """float32 ``[B]``: each row's mean loss over its non-pad targets (0 for a row without any)."""
  sums, counts = _row_sums(model, tokens)
  return sums / jnp.maximum(counts, 1.0)


def mean_token_loss(model, tokens: jax.Array) -> jax.Array:
  """float32 scalar: the mean loss over every non-pad target of ``tokens [B, L+1]`` (0 if none)."""
  sums, counts = _row_sums(model, tokens)
  return jnp.sum(sums) / jnp.maximum(jnp.sum(counts), 1.0)
