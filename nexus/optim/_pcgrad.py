"""PCGrad (Yu et al. 2020): project away conflicts between per-source gradients, then combine them.

Reference: T. Yu, S. Kumar, A. Gupta, S. Levine, K. Hausman, C. Finn, "Gradient Surgery for
Multi-Task
Learning", NeurIPS 2020, arXiv:2001.06782 (Algorithm 1). For every source i::

  g_i^PC ← g_i
  for every j ≠ i, in a random order:
    if ⟨g_i^PC, g_j⟩ < 0:  g_i^PC ← g_i^PC − ⟨g_i^PC, g_j⟩ / ‖g_j‖² · g_j
  direction = Σ_i g_i^PC

Each projection subtracts a multiple of an *original* gradient g_j, so every g_i^PC is a linear
combination ``g_i^PC = Σ_k C[i, k] g_k`` of the original gradients, and every inner product the
procedure needs is one with an original gradient: ``⟨g_i^PC, g_j⟩ = Σ_k C[i, k] G[k, j] = (C G)[i,
j]`` with ``G`` the S×S Gram matrix. So the whole procedure runs in S×S coefficient space: start
from ``C = I`` and, for each (i, j) in order, ``C[i, j] −= (C G)[i, j] / G[j, j]`` when ``(C G)[i,
j] < 0``. The model-sized work is one Gram (``per_source.tree_gram``, whole-tree inner products, no
flattening) and one weighted sum ``Σ_k w_k g_k`` over the source axis, with ``w = Σ_i C[i, :]``.
"""

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from nexus.optim import _per_source as per_source
from nexus.optim import checks
from nexus.optim import tree_utils

ORDERS = ("random", "fixed")
REDUCTIONS = ("sum", "mean")


class PCGradState(NamedTuple):
  """State of ``pcgrad``.

  Attributes:
    key: uint32 PRNG key data for the random projection orders (``jax.random.key_data``); None with
      ``order="fixed"``. Raw key data, so the state checkpoints and ``jnp.where``s like any array.
    outer_state: state of the outer transformation.
  """

  key: jax.Array | None
  outer_state: Any


def projection_coefficients(gram: jax.Array, orders: jax.Array) -> jax.Array:
  """The matrix C with ``g_i^PC = Σ_k C[i, k] g_k``, from the Gram matrix of the g_k.

  Args:
    gram: float[S, S], ``G[i, j] = ⟨g_i, g_j⟩``.
    orders: int[S, S]; row i lists the order in which source i is projected against the sources
      (a permutation of 0..S−1; the entry i is skipped).

  Returns:
    float[S, S] coefficients, in the Gram's dtype.
  """
  num_sources = gram.shape[0]

  def project_source(i, order):
    def project_against(coefficients, j):
      dot = coefficients @ gram[:, j]  # ⟨g_i^PC, g_j⟩
      conflict = (j != i) & (dot < 0)
      scale = jnp.where(conflict, tree_utils.safe_divide(dot, gram[j, j]), 0.0)
      return coefficients.at[j].add(-scale), None

    start = jnp.zeros([num_sources], gram.dtype).at[i].set(1.0)
    coefficients, _ = jax.lax.scan(project_against, start, order)
    return coefficients

  return jax.vmap(project_source)(jnp.arange(num_sources), orders)


def _source_count(stacked: Any) -> int:
  leaves = jax.tree.leaves(stacked)
  if not leaves:
    raise ValueError(
      "pcgrad needs a non-empty tree of per-source gradients stacked [S, *param_shape]."
    )
  counts = {jnp.shape(leaf)[0] if jnp.ndim(leaf) else None for leaf in leaves}
  if len(counts) != 1 or None in counts:
    raise ValueError(
      f"every leaf of the stacked gradients needs the same leading source axis, got sizes {counts}."
    )
  (count,) = counts
  assert count is not None  # checked above
  return count


def pcgrad(
  outer: optax.GradientTransformation,
  *,
  order: str = "random",
  seed: int = 0,
  reduction: str = "sum",
) -> optax.GradientTransformationExtraArgs:
  """PCGrad as a transformation over stacked per-source gradients, feeding ``outer``.

  ``update(stacked_grads, state, params)`` takes gradients shaped ``[S, *param_shape]`` (e.g. from
  ``per_source.per_source_gradients``) and returns ``outer``'s update for the combined direction. Wrap it
  in ``microbatches.stacked_gradients(pcgrad(...), K)`` to drive it with ``loss_fn(params, i)``.

  Args:
    outer: any Optax transformation (AdamW in the baselines); it sees the combined direction.
    order: ``"random"`` (the paper): each source is projected against the others in its own random
      order, redrawn every update from a key kept in the state; ``"fixed"``: against j = 0, 1, ..., S−1.
      With S = 2 both agree.
    seed: seed of the random orders.
    reduction: ``"sum"`` (the paper, Σ_i g_i^PC) or ``"mean"`` (Σ_i g_i^PC / S, which equals the mean
      gradient when no pair conflicts, i.e. gradient accumulation's scale).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``PCGradState``.
  """
  checks.check_transformation(outer)
  checks.check_choice("order", order, ORDERS)
  checks.check_choice("reduction", reduction, REDUCTIONS)
  checks.check_static_int("seed", seed, 0)

  def init_fn(params):
    key = jax.random.key_data(jax.random.key(seed)) if order == "random" else None
    return PCGradState(key=key, outer_state=outer.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    del extra_args
    num_sources = _source_count(updates)
    key = state.key
    if order == "random":
      key, orders_key = jax.random.split(jax.random.wrap_key_data(state.key))
      orders = jax.vmap(lambda k: jax.random.permutation(k, num_sources))(
        jax.random.split(orders_key, num_sources)
      )
      key = jax.random.key_data(key)
    else:
      orders = jnp.broadcast_to(jnp.arange(num_sources), (num_sources, num_sources))
    coefficients = projection_coefficients(per_source.tree_gram(updates), orders)
    weights = jnp.sum(coefficients, axis=0)
    if reduction == "mean":
      weights = weights / num_sources
    stacked = tree_utils.at_least_float32(updates)
    direction = jax.tree.map(lambda x: jnp.tensordot(weights.astype(x.dtype), x, axes=1), stacked)
    if params is not None:
      direction = optax.tree.cast_like(direction, params)
    outer_updates, outer_state = outer.update(direction, state.outer_state, params)
    return outer_updates, PCGradState(key=key, outer_state=outer_state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
