"""Greedy generation, jitted: with a key/value cache, or by recomputing the whole prefix (reference).

Prompts are RIGHT-padded with 0: ``prompts int32[B, P]`` holds each prompt from column 0, followed
by padding (``pad_prompts`` builds that layout). Row b's first new token is predicted from its last
prompt token and sits at position ``length_b``; every row then advances one position per step.
Rotary embeddings make scores depend only on relative positions, and causal attention never reads a
position after the one being predicted, so the padding between a short prompt and ``P`` is never
attended.

- ``use_cache=True``: one prefill of the prompts fills the cache (a short row's padding entries are
  written too, and overwritten before they become visible), then a ``jax.lax.while_loop`` feeds one
  token per row per step through ``Transformer.decode``.
- ``use_cache=False``: the same loop, but every step runs the full forward pass over a ``[B, P +
  N]`` buffer holding the prompts and the tokens generated so far: slow, and the reference the
  cached path must match token for token.

Padding is never generated (its logit is excluded from the argmax), so a 0 in the output always
means "after this row's EOS". Both paths stop early once every row has produced ``eos_id``.
"""

from collections.abc import Callable
from collections.abc import Sequence
import functools
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from nexus.model.loss import PAD_ID
from nexus.model.transformer import Transformer

# feed(carry, tokens int32[B], positions int32[B]) -> (next-token logits float32[B, V], carry): runs
# one token per row at its position, carrying the cache (or the token buffer of the reference path).
FeedFn = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]


def pad_prompts(prompts: Sequence[Sequence[int]]) -> np.ndarray:
  """Right-pads token sequences with 0 into one ``int32[B, max length]`` array."""
  if not prompts or any(len(prompt) == 0 for prompt in prompts):
    raise ValueError("pad_prompts needs at least one prompt and no empty prompt.")
  padded = np.zeros((len(prompts), max(len(prompt) for prompt in prompts)), np.int32)
  for row, prompt in enumerate(prompts):
    padded[row, : len(prompt)] = prompt
  return padded


def _check_arguments(
  prompts: np.ndarray, max_new_tokens: int, eos_id: int | None, max_seq_len: int
) -> None:
  if prompts.ndim != 2 or not np.issubdtype(prompts.dtype, np.integer):
    raise ValueError(
      f"prompts must be an integer array [batch, length]; got {prompts.dtype}{list(prompts.shape)}."
    )
  if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
    raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a positive integer.")
  if eos_id is not None and not isinstance(eos_id, int):
    raise ValueError(f"eos_id={eos_id!r} must be a Python int or None.")
  if prompts.shape[1] + max_new_tokens > max_seq_len:
    raise ValueError(
      f"prompt length {prompts.shape[1]} + max_new_tokens {max_new_tokens} exceeds the model's "
      f"max_seq_len={max_seq_len}; shorten one of them."
    )
  is_token = prompts != PAD_ID
  if not is_token[:, 0].all():
    raise ValueError(
      "every prompt needs at least one token at column 0 (prompts are right-padded with 0)."
    )
  if (is_token[:, 1:] & ~is_token[:, :-1]).any():
    raise ValueError(
      "prompts must be right-padded: no token may follow a 0 in a row (use pad_prompts)."
    )


def _most_likely(logits: jax.Array) -> jax.Array:
  """The argmax token of ``logits [B, V]`` among the non-padding ids."""
  return jnp.argmax(logits.at[:, PAD_ID].set(-jnp.inf), axis=-1).astype(jnp.int32)


def _greedy_loop(
  first_logits: jax.Array,
  carry,
  feed: FeedFn,
  lengths: jax.Array,
  max_new_tokens: int,
  eos_id: int | None,
) -> jax.Array:
  """Picks argmax tokens, feeding each back at its row's next position, until all rows hit EOS."""
  is_eos = (lambda t: t == eos_id) if eos_id is not None else (lambda t: jnp.zeros(t.shape, bool))
  token = _most_likely(first_logits)
  outputs = jnp.zeros((token.shape[0], max_new_tokens), jnp.int32).at[:, 0].set(token)

  def unfinished(state):
    step, _, _, done, _ = state
    return (step < max_new_tokens) & ~jnp.all(done)

  def step_once(state):
    step, outputs, token, done, carry = state
    logits, carry = feed(carry, token, lengths + step - 1)
    token = jnp.where(done, PAD_ID, _most_likely(logits))
    return step + 1, outputs.at[:, step].set(token), token, done | is_eos(token), carry

  state = (jnp.int32(1), outputs, token, is_eos(token), carry)
  return jax.lax.while_loop(unfinished, step_once, state)[1]


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "eos_id", "use_cache"))
def _generate(graphdef, params, prompts, *, max_new_tokens, eos_id, use_cache):
  model = nnx.merge(graphdef, params)
  batch, prompt_len = prompts.shape
  rows = jnp.arange(batch)
  lengths = jnp.sum(prompts != PAD_ID, axis=1)
  if use_cache:
    positions = jnp.broadcast_to(jnp.arange(prompt_len), prompts.shape)
    logits, cache = model.decode(
      prompts, positions, model.init_cache(batch, prompt_len + max_new_tokens)
    )

    def feed(cache, token, position):
      logits, cache = model.decode(token[:, None], position[:, None], cache)
      return logits[:, 0], cache

    return _greedy_loop(logits[rows, lengths - 1], cache, feed, lengths, max_new_tokens, eos_id)

  buffer = (
    jnp.zeros((batch, prompt_len + max_new_tokens), jnp.int32).at[:, :prompt_len].set(prompts)
  )

  def feed_full(buffer, token, position):
    buffer = buffer.at[rows, position].set(token)
    return model(buffer)[rows, position], buffer

  return _greedy_loop(
    model(buffer)[rows, lengths - 1], buffer, feed_full, lengths, max_new_tokens, eos_id
  )


def generate(
  model: Transformer,
  prompts,
  *,
  max_new_tokens: int,
  eos_id: int | None = None,
  use_cache: bool = True,
) -> jax.Array:
  """Greedy continuations of right-padded ``prompts int32[B, P]``: ``int32[B, max_new_tokens]``.

  Args:
    model: the transformer (its parameters are read, not changed).
    prompts: right-padded prompts (see ``pad_prompts``); every row holds at least one token.
    max_new_tokens: tokens to generate per row; ``P + max_new_tokens`` must fit ``max_seq_len``.
    eos_id: a row stops after producing this id (kept in the output, followed by 0s); None: never.
    use_cache: True for the key/value-cache path, False for the full-recompute reference.
  """
  prompts = np.asarray(prompts)
  _check_arguments(prompts, max_new_tokens, eos_id, model.config.max_seq_len)
  graphdef, params = nnx.split(model)
  return _generate(
    graphdef,
    params,
    jnp.asarray(prompts, jnp.int32),
    max_new_tokens=max_new_tokens,
    eos_id=eos_id,
    use_cache=use_cache,
  )
