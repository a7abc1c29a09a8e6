"""Small pytree helpers shared by the optimizer modules (JAX + Optax only)."""

from typing import Any

import jax
import jax.numpy as jnp
import optax


def at_least_float32(tree: Any) -> Any:
  """Casts every leaf to float32, or keeps it when wider (float64 stays float64)."""
  return jax.tree.map(lambda x: jnp.asarray(x).astype(jnp.promote_types(jnp.asarray(x).dtype, jnp.float32)), tree)


def at_least_float32_copy(tree: Any) -> Any:
  """Like ``at_least_float32`` but always a fresh buffer, so donating ``tree`` never frees the copy."""
  return jax.tree.map(lambda x: jnp.array(x, dtype=jnp.promote_types(jnp.asarray(x).dtype, jnp.float32)), tree)


def is_at_least_float32(tree: Any) -> bool:
  """Whether every leaf is float32 or wider (so no precision is lost by keeping it as is)."""
  return all(
      jnp.promote_types(jnp.asarray(x).dtype, jnp.float32) == jnp.asarray(x).dtype for x in jax.tree.leaves(tree)
  )


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """``numerator / denominator``, and 0 where the denominator is 0 (no NaN, safe gradients)."""
  nonzero = denominator != 0
  return jnp.where(nonzero, numerator / jnp.where(nonzero, denominator, 1.0), jnp.zeros_like(numerator))


def tree_norm32(tree: Any) -> jax.Array:
  """Whole-tree L2 norm as a float32 scalar (for diagnostics)."""
  return optax.tree.norm(tree).astype(jnp.float32)


def tree_vdot(a: Any, b: Any) -> jax.Array:
  """⟨a, b⟩ summed over leaves with elementwise products (no reshapes, so it keeps working on arrays
  sharded over explicit mesh axes, where ``optax.tree.vdot``'s flattening is rejected)."""
  return sum(jnp.sum(x * y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def tree_cosine(a: Any, b: Any) -> jax.Array:
  """Cosine similarity of two trees as a float32 scalar (0 if either is zero)."""
  return safe_divide(tree_vdot(a, b), optax.tree.norm(a) * optax.tree.norm(b)).astype(jnp.float32)
