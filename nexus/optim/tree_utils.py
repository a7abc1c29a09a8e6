"""Small pytree helpers shared by the optimizer modules (JAX + Optax only)."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax


def at_least_float32(tree: Any) -> Any:
  """Casts every leaf to float32, or keeps it when wider (float64 stays float64)."""
  return jax.tree.map(
    lambda x: jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float32)), tree
  )


def at_least_float32_copy(tree: Any) -> Any:
  """Like ``at_least_float32`` but always a fresh buffer, so donating ``tree`` never frees the copy."""
  return jax.tree.map(
    lambda x: jnp.array(x, dtype=jnp.promote_types(jnp.asarray(x).dtype, jnp.float32)), tree
  )


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator``, and 0 where the denominator is 0 (no NaN, safe gradients)."""
  nonzero = denominator != 0
  return jnp.where(
    nonzero, numerator / jnp.where(nonzero, denominator, 1.0), jnp.zeros_like(numerator)
  )


def tree_norm32(tree: Any) -> jax.Array:
  """Whole-tree L2 norm as a float32 scalar (for diagnostics)."""
  return optax.tree.norm(tree).astype(jnp.float32)


def tree_vdot(a: Any, b: Any) -> jax.Array:
  """⟨a, b⟩ summed over leaves with elementwise products (no reshapes, so it keeps working on arrays
  sharded over explicit mesh axes, where ``optax.tree.vdot``'s flattening is rejected)."""
  return jnp.asarray(sum(jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


def tree_cosine(a: Any, b: Any) -> jax.Array:
  """Cosine similarity of two trees as a float32 scalar (0 if either is zero)."""
  return safe_divide(tree_vdot(a, b), optax.tree.norm(a) * optax.tree.norm(b)).astype(jnp.float32)


def is_below_float32(x: Any) -> bool:
  """Whether the leaf's dtype is narrower than float32 (bfloat16, float16): a step of length γ spread
  over d parameters (about γ/√d each) is lost to its rounding."""
  dtype = jnp.asarray(x).dtype
  return jnp.promote_types(dtype, jnp.float32) != dtype


def float32_copies(params: Any, keep: Callable[[Any], bool]) -> Any:
  """A fresh at-least-float32 copy of the leaves where ``keep(leaf)``; ``optax.MaskedNode()`` elsewhere.

  The masked leaves hold nothing (no memory, no checkpoint entry), so a state can keep a float32 master
  copy of exactly the leaves that need one.
  """
  return jax.tree.map(lambda x: at_least_float32_copy(x) if keep(x) else optax.MaskedNode(), params)


def resync(params: Any, copies: Any) -> Any:
  """The at-least-float32 point that ``params`` stand for, leaf by leaf and element by element.

  Where a leaf has a float32 copy and the caller's value still equals that copy rounded to the params'
  dtype, the copy is the point (no precision lost); where the caller's value differs (a transformation
  chained after this one, or the user, moved it), the caller's value is adopted. Leaves without a copy
  are the caller's values, upcast.
  """

  def leaf(p, copy):
    upcast = at_least_float32(p)
    if isinstance(copy, optax.MaskedNode):
      return upcast
    return jnp.where(p == copy.astype(p.dtype), copy, upcast)

  return jax.tree.map(leaf, params, copies)


def keep_like(values: Any, copies: Any) -> Any:
  """``values`` (a full tree) restricted to the leaves where ``copies`` holds an array."""
  return jax.tree.map(
    lambda v, c: c if isinstance(c, optax.MaskedNode) else v.astype(c.dtype), values, copies
  )


def step_onto(target: Any, params: Any) -> Any:
  """The update that moves ``params`` onto ``target`` rounded to the params' dtypes (``params + u``
  lands exactly there whenever the subtraction is exact, e.g. for nearby values, by Sterbenz's lemma)."""
  return jax.tree.map(lambda t, p: t.astype(p.dtype) - p, target, params)


def is_finite(*trees: Any) -> jax.Array:
  """Whether every element of every leaf is finite (a boolean scalar)."""
  flags = [jnp.all(jnp.isfinite(x)) for tree in trees for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)
