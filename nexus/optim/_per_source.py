"""Per-source gradients, their Gram/cosine matrices, and Nexus's γ→0 limit over them.

Per-source gradients are stacked along a leading source axis ``[S, *param_shape]`` (the layout of
``optax.experimental``'s aggregating transformations). Inner products are taken leaf by leaf and
summed (an ``S×S`` matrix per leaf), so the model is never flattened into one vector.

The γ→0 limit of Nexus: ĝ/γ → Σ_m g_{s_m}/‖g_{s_m}‖ evaluated at θ, i.e. the sum of normalized
per-source gradients (Chen et al. 2026, arXiv:2604.09258, first-order term of the expansion).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from nexus.optim import checks
from nexus.optim import normalize as normalize_lib
from nexus.optim import tree_utils

PER_SOURCE_METHODS = ("vmap", "map")


def per_source_values_and_gradients(
  loss_fn: Callable[[Any, Any], jax.Array],
  params: Any,
  stacked_batch: Any,
  *,
  method: str = "vmap",
  batch_size: int | None = None,
) -> tuple[jax.Array, Any]:
  """Losses and gradients of ``loss_fn(params, batch_s)`` for every source ``s`` of ``stacked_batch[s]``.

  Args:
    loss_fn: scalar loss of one source's batch (``batch_s`` may also be a source index: pass
      ``stacked_batch=jnp.arange(S)`` for a ``loss_fn(params, i)``).
    params: the point θ.
    stacked_batch: a pytree whose leaves have a leading source axis S.
    method: ``"vmap"`` computes all S gradients in parallel (S copies of the activations);
      ``"map"`` loops over sources with ``jax.lax.map`` (``batch_size`` sources at a time), bounding
      activation memory for models where S parallel backward passes do not fit.
    batch_size: sources per chunk for ``method="map"`` (None: one at a time).

  Returns:
    ``(losses[S], gradients)``, the gradients stacked ``[S, *param_shape]`` in the params' tree structure.
  """
  checks.check_choice("method", method, PER_SOURCE_METHODS)
  value_and_grad_fn = jax.value_and_grad(loss_fn)
  if method == "vmap":
    return jax.vmap(value_and_grad_fn, in_axes=(None, 0))(params, stacked_batch)
  return jax.lax.map(
    lambda batch: value_and_grad_fn(params, batch), stacked_batch, batch_size=batch_size
  )


def per_source_gradients(loss_fn, params, stacked_batch, *, method="vmap", batch_size=None) -> Any:
  """The gradients of ``per_source_values_and_gradients`` (same arguments), stacked ``[S, *shape]``."""
  return per_source_values_and_gradients(
    loss_fn, params, stacked_batch, method=method, batch_size=batch_size
  )[1]


def tree_gram(stacked: Any) -> jax.Array:
  """The ``S×S`` Gram matrix ``G[i, j] = ⟨g_i, g_j⟩`` of stacked per-source trees, in float32."""
  leaves = jax.tree.leaves(stacked)
  if not leaves:
    raise ValueError("tree_gram needs a non-empty tree of stacked per-source arrays.")

  def leaf_gram(x):
    # One row at a time with elementwise products: memory stays at one leaf's size, and no reshape
    # or contraction over sharded axes is needed (both are ambiguous under explicit mesh axes).
    x = tree_utils.at_least_float32(x)
    reduce_axes = tuple(range(1, x.ndim))
    return jax.lax.map(lambda row: jnp.sum(row[None] * x, axis=reduce_axes), x)

  return sum(leaf_gram(x) for x in leaves)


def cosine_from_gram(gram: jax.Array) -> jax.Array:
  """Cosine-similarity matrix from a Gram matrix (0 where a gradient is zero)."""
  norms = jnp.sqrt(jnp.clip(jnp.diagonal(gram), 0.0))
  return tree_utils.safe_divide(gram, norms[:, None] * norms[None, :])


def sum_normalized(stacked: Any, normalize: str = "global") -> Any:
  """Σ_s normalize(g_s) over the leading source axis, in float32."""
  normalized = jax.vmap(lambda tree: normalize_lib.normalize_tree(tree, normalize))(stacked)
  return jax.tree.map(lambda x: jnp.sum(x, axis=0), normalized)


def first_order_nexus(
  outer: optax.GradientTransformation,
  inner_learning_rate=1.0,
  *,
  normalize: str = "global",
) -> optax.GradientTransformationExtraArgs:
  """Nexus's γ→0 limit as a transformation over stacked per-source gradients.

  ``update(stacked_grads, state, params)`` takes gradients shaped ``[S, *param_shape]`` (e.g. from
  ``per_source_gradients``), forms ``ĝ = γ · Σ_s g_s/‖g_s‖`` (the first-order term of Nexus's
  pseudo-gradient, with each source visited once) and returns ``outer``'s update for it. γ may be a
  schedule of the outer step count. Wrap it in ``microbatches.stacked_gradients(first_order_nexus(...), K)``
  to drive it with ``loss_fn(params, i)``. With
  ``γ = inner_learning_rate`` equal to Nexus's, the outer optimizer sees the same scale as Nexus's raw
  pseudo-gradient would at first order.
  """
  checks.check_transformation(outer)
  checks.check_choice("normalize", normalize, normalize_lib.NORMALIZATIONS)
  checks.check_inner_learning_rate(inner_learning_rate)
  if callable(inner_learning_rate):
    # A schedule of the outer step count: scale what the outer optimizer sees, whose count is that
    # step.
    outer = optax.chain(optax.scale_by_schedule(inner_learning_rate), outer)
    inner_learning_rate = 1.0

  def init_fn(params):
    return outer.init(params)

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    pseudo_gradient = sum_normalized(updates, normalize)
    pseudo_gradient = jax.tree.map(lambda x: inner_learning_rate * x, pseudo_gradient)
    if params is not None:
      pseudo_gradient = optax.tree.cast_like(pseudo_gradient, params)
    return outer.update(pseudo_gradient, state, params)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
