"""Gradient geometry across sources at one point θ: cosine matrix, norms, conflicts, the bound's sums.

For sources k = 1..S with mean gradients g_k = ∇L_k(θ) (each averaged over N batches of that
source), this reports the S×S Gram matrix G_ij = g_iᵀg_j and cosine matrix, the norms ‖g_k‖, the
number of conflicting pairs (cos < 0, i < j), the mean off-diagonal cosine, and the quantities of
the paper's closeness bound (Chen et al. 2026, arXiv:2604.09258): Σ_{i≠j} −g_iᵀg_j, Σ_k ‖g_k‖² and
Σ_{i≠j} (1 − cos_ij). Note ‖Σ_k g_k‖² = Σ_k ‖g_k‖² − Σ_{i≠j} −g_iᵀg_j: the first two are the parts
of the summed gradient's norm.

Per-source gradients come from ``nexus.optim.per_source_gradients`` (``method="vmap"``: all sources
in parallel; ``"map"``: a memory-bounded ``jax.lax.map`` over sources) and inner products from
``nexus.optim.tree_gram`` (leaf by leaf; the model is never flattened into one vector).
"""

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import functools
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nexus import optim
from nexus.measure import batches as batches_lib
from nexus.optim import tree_utils

LossFn = Callable[[Any, Any], jax.Array]


class GradientGeometry(NamedTuple):
  """The geometry of S per-source gradients (all float32 except the pair count)."""

  gram: jax.Array
  """``[S, S]`` inner products g_iᵀg_j."""
  cosine: jax.Array
  """``[S, S]`` cosine similarities (0 where a gradient is zero)."""
  norms: jax.Array
  """``[S]`` gradient norms ‖g_k‖."""
  num_conflicting_pairs: jax.Array
  """int32: pairs i < j with cos_ij < 0."""
  mean_cosine: jax.Array
  """Mean of cos_ij over the S(S−1) ordered pairs i ≠ j."""
  neg_cross_dot_sum: jax.Array
  """Σ_{i≠j} −g_iᵀg_j (positive when sources conflict on balance)."""
  sq_norm_sum: jax.Array
  """Σ_k ‖g_k‖²."""
  cosine_gap_sum: jax.Array
  """Σ_{i≠j} (1 − cos_ij), the factor of the paper's closeness bound."""


def geometry_from_gram(gram: jax.Array) -> GradientGeometry:
  """Every geometry quantity from an ``[S, S]`` Gram matrix (S ≥ 2)."""
  if gram.ndim != 2 or gram.shape[0] != gram.shape[1] or gram.shape[0] < 2:
    raise ValueError(
      f"gram must be a square [S, S] matrix with S >= 2 sources; got shape {gram.shape}."
    )
  num_sources = gram.shape[0]
  gram = gram.astype(jnp.float32)
  cosine = optim.cosine_from_gram(gram).astype(jnp.float32)
  off_diagonal = ~jnp.eye(num_sources, dtype=bool)
  upper = jnp.triu(jnp.ones((num_sources, num_sources), dtype=bool), k=1)
  diagonal = jnp.diagonal(gram)
  return GradientGeometry(
    gram=gram,
    cosine=cosine,
    norms=jnp.sqrt(jnp.clip(diagonal, 0.0)),
    num_conflicting_pairs=jnp.sum(upper & (cosine < 0)).astype(jnp.int32),
    mean_cosine=jnp.sum(jnp.where(off_diagonal, cosine, 0.0)) / (num_sources * (num_sources - 1)),
    neg_cross_dot_sum=-jnp.sum(jnp.where(off_diagonal, gram, 0.0)),
    sq_norm_sum=jnp.sum(diagonal),
    cosine_gap_sum=jnp.sum(jnp.where(off_diagonal, 1.0 - cosine, 0.0)),
  )


def mean_source_gradients(
  loss_fn: LossFn,
  params: Any,
  stacked_batches: Any,
  *,
  method: str = "vmap",
  batch_size: int | None = None,
) -> Any:
  """Per-source gradients averaged over batches: ``[S, *param_shape]`` from batches stacked ``[S, N, ...]``.

  Scans over the N batches, computing all S sources' gradients of each with ``per_source_gradients``
  and keeping a float32 running sum, so memory holds two stacked gradients whatever N is. The average
  weighs every batch equally.
  """
  num_sources, num_batches = jax.tree.leaves(stacked_batches)[0].shape[:2]
  by_batch = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), stacked_batches)  # [N, S, ...]

  def add_batch(total, source_batches):
    grads = optim.per_source_gradients(
      loss_fn, params, source_batches, method=method, batch_size=batch_size
    )
    return jax.tree.map(lambda t, g: t + g.astype(t.dtype), total, grads), None

  zeros = tree_utils.at_least_float32(
    jax.tree.map(lambda p: jnp.zeros((num_sources,) + p.shape, p.dtype), params)
  )
  total, _ = jax.lax.scan(add_batch, zeros, by_batch)
  return jax.tree.map(lambda t: t / num_batches, total)


def gradient_geometry(
  loss_fn: LossFn,
  params: Any,
  stacked_batches: Any,
  *,
  method: str = "vmap",
  batch_size: int | None = None,
) -> GradientGeometry:
  """The gradient geometry at ``params`` of the sources of ``stacked_batches`` (leaves ``[S, N, ...]``).

  Pure and jittable (``loss_fn``, ``method`` and ``batch_size`` static), so a trainer can also call it
  inside its own jitted function. ``loss_fn(params, batch)`` is one source's scalar mean loss.
  """
  grads = mean_source_gradients(
    loss_fn, params, stacked_batches, method=method, batch_size=batch_size
  )
  return geometry_from_gram(optim.tree_gram(grads))


def geometry_metrics(geometry: GradientGeometry, sources: Sequence[str]) -> dict[str, Any]:
  """The ``geometry/...`` metrics (JSON-ready Python values) of a geometry over named sources."""
  geometry = jax.device_get(geometry)
  metrics: dict[str, Any] = {
    "geometry/sources": list(sources),
    "geometry/cosine_matrix": np.asarray(geometry.cosine, np.float64).tolist(),
    "geometry/num_conflicting_pairs": int(geometry.num_conflicting_pairs),
    "geometry/mean_cosine": float(geometry.mean_cosine),
    "geometry/neg_cross_dot_sum": float(geometry.neg_cross_dot_sum),
    "geometry/sq_norm_sum": float(geometry.sq_norm_sum),
    "geometry/cosine_gap_sum": float(geometry.cosine_gap_sum),
  }
  metrics.update(
    {f"geometry/grad_norm/{name}": float(norm) for name, norm in zip(sources, geometry.norms)}
  )
  return metrics


def make_gradient_geometry(
  loss_fn: LossFn,
  *,
  num_batches: int | None = None,
  method: str = "vmap",
  batch_size: int | None = None,
) -> Callable[[Any, Mapping[str, Sequence[Any]]], dict]:
  """Builds ``measure(params, batches) -> {"geometry/...": value}`` for ``{source: [batch, ...]}``.

  Args:
    loss_fn: ``loss_fn(params, batch)``, one source's scalar mean loss on one batch.
    num_batches: batches averaged per source (None: all of them; the same count for every source). More
      batches average the gradient over more tokens, at proportional cost.
    method: ``"vmap"`` (all sources' backward passes at once) or ``"map"`` (one source at a time, for
      models where S parallel backward passes do not fit in memory).
    batch_size: sources per chunk with ``method="map"`` (None: one at a time).

  Returns:
    ``measure``, jitted once per batch shape. Its metrics: ``geometry/sources``, ``geometry/cosine_matrix``
    (list of lists), ``geometry/grad_norm/<source>``, ``geometry/num_conflicting_pairs``,
    ``geometry/mean_cosine``, ``geometry/neg_cross_dot_sum``, ``geometry/sq_norm_sum``,
    ``geometry/cosine_gap_sum``.
  """
  if method not in optim.PER_SOURCE_METHODS:
    raise ValueError(f"method={method!r} is not one of {optim.PER_SOURCE_METHODS}.")
  if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
    raise ValueError(f"batch_size={batch_size!r} must be a positive integer or None.")
  geometry_fn = jax.jit(
    functools.partial(gradient_geometry, loss_fn, method=method, batch_size=batch_size)
  )

  def measure(params: Any, batches: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    sources, stacked = batches_lib.stack_source_batches(batches, num_batches, min_sources=2)
    return geometry_metrics(geometry_fn(params, stacked), sources)

  return measure
