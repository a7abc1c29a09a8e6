"""Gradient normalization used by Nexus's inner steps and its first-order limit.

Nexus (Chen et al. 2026, arXiv:2604.09258) steps along ``g / ‖g‖₂`` where the norm is taken over the
whole parameter tree (one scalar). Whether reproductions normalize per leaf instead is one of the
algorithm's open questions, so the choice is a switch:

- ``"global"``: ``g / ‖g‖`` with ``‖·‖`` the L2 norm of the whole tree (the paper);
- ``"leaf"``: every leaf divided by its own L2 norm;
- ``"none"``: ``g`` unchanged (Fish-like unnormalized inner steps).

A zero gradient (or zero leaf under ``"leaf"``) maps to zero rather than NaN: the inner point then
simply does not move.
"""

from typing import Any

import jax
import jax.numpy as jnp
import optax

from nexus.optim import tree_utils

NORMALIZATIONS = ("global", "leaf", "none")


def normalize_tree(tree: Any, normalize: str) -> Any:
  """Returns ``tree`` (in at least float32) divided by its norm, as selected by ``normalize``."""
  tree = tree_utils.at_least_float32(tree)
  if normalize == "global":
    norm = optax.tree.norm(tree)
    return jax.tree.map(lambda x: tree_utils.safe_divide(x, norm), tree)
  if normalize == "leaf":
    return jax.tree.map(lambda x: tree_utils.safe_divide(x, jnp.sqrt(jnp.sum(jnp.square(x)))), tree)
  return tree
