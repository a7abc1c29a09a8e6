"""Closeness of per-source minima: fine-tune a copy of θ on each source alone and measure how far each goes.

From the point θ, a copy is fine-tuned on source k alone for a fixed number of steps, giving θ̂_k (an
estimate of the nearest minimum of L_k). The paper (Chen et al. 2026, arXiv:2604.09258) reports

- (1/K) Σ_k ‖θ − θ̂_k‖²: how far θ is from the per-source minima (small at a "common minimum");
- the spread (1/K) Σ_k ‖θ̂_k − θ̄‖² with θ̄ = (1/K) Σ_k θ̂_k: how far the minima are from each other;
- each source's loss before and after fine-tuning (the drop).

Comparable numbers need the same optimizer, step count and batches for every source and every run
compared: the caller passes all three, and nothing here is random. The fine-tuned copies are float32 (a
bf16 copy would lose small-learning-rate steps). Sources are fine-tuned one after the other
(``jax.lax.scan`` over sources, then over steps), so memory holds one copy and its optimizer state plus
the running mean of the displacements; the spread is accumulated with Welford's update, which is exact
(0) for identical sources.
"""

import functools
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.eval import batches as batches_lib
from nexus.optim import tree_utils

LossFn = Callable[[Any, Any], jax.Array]


class Closeness(NamedTuple):
  """Closeness of the per-source fine-tuned points θ̂_k to θ and to each other (float32)."""
  mean_sq_dist: jax.Array
  """(1/K) Σ_k ‖θ − θ̂_k‖²."""
  spread: jax.Array
  """(1/K) Σ_k ‖θ̂_k − mean_j θ̂_j‖²."""
  sq_dist: jax.Array
  """``[K]``: ‖θ − θ̂_k‖² per source."""
  loss_before: jax.Array
  """``[K]``: each source's mean loss over its batches at θ."""
  loss_after: jax.Array
  """``[K]``: the same at θ̂_k."""


def finetune_closeness(loss_fn: LossFn, params: Any, stacked_batches: Any, *,
                       optimizer: optax.GradientTransformation, num_steps: int) -> Closeness:
  """Fine-tunes ``params`` on each source of ``stacked_batches`` (leaves ``[K, N, ...]``) and measures closeness.

  Step t of source k uses batch ``t mod N`` of that source; ``optimizer`` starts from its ``init`` for
  every source. Pure and jittable with ``loss_fn``, ``optimizer`` and ``num_steps`` static.
  """
  theta = tree_utils.at_least_float32_copy(params)
  num_batches = jax.tree.leaves(stacked_batches)[0].shape[1]
  grad_fn = jax.grad(loss_fn)

  def mean_loss(point, source_batches):
    return jnp.mean(jax.lax.map(lambda batch: loss_fn(point, batch), source_batches)).astype(jnp.float32)

  def finetune(source_batches):
    def step(carry, t):
      point, opt_state = carry
      batch = jax.tree.map(lambda x: x[t % num_batches], source_batches)
      updates, opt_state = optimizer.update(grad_fn(point, batch), opt_state, point)
      return (optax.apply_updates(point, updates), opt_state), None

    (point, _), _ = jax.lax.scan(step, (theta, optimizer.init(theta)), jnp.arange(num_steps))
    return point

  def visit_source(carry, inputs):
    mean_displacement, sum_sq_deviation = carry
    count, source_batches = inputs
    point = finetune(source_batches)
    displacement = jax.tree.map(jnp.subtract, point, theta)
    # Welford: mean_k = mean_{k-1} + (d_k − mean_{k-1})/k;  M2 += ⟨d_k − mean_{k-1}, d_k − mean_k⟩.
    deviation_before = jax.tree.map(jnp.subtract, displacement, mean_displacement)
    mean_displacement = jax.tree.map(lambda m, d: m + d / count, mean_displacement, deviation_before)
    deviation_after = jax.tree.map(jnp.subtract, displacement, mean_displacement)
    sum_sq_deviation = sum_sq_deviation + tree_utils.tree_vdot(deviation_before, deviation_after).astype(jnp.float32)
    outputs = (tree_utils.tree_vdot(displacement, displacement).astype(jnp.float32),
               mean_loss(theta, source_batches), mean_loss(point, source_batches))
    return (mean_displacement, sum_sq_deviation), outputs

  num_sources = jax.tree.leaves(stacked_batches)[0].shape[0]
  init = (jax.tree.map(jnp.zeros_like, theta), jnp.zeros((), jnp.float32))
  counts = jnp.arange(1, num_sources + 1, dtype=jnp.float32)
  (_, sum_sq_deviation), (sq_dist, loss_before, loss_after) = jax.lax.scan(
      visit_source, init, (counts, stacked_batches))
  return Closeness(mean_sq_dist=jnp.mean(sq_dist), spread=sum_sq_deviation / num_sources, sq_dist=sq_dist,
                   loss_before=loss_before, loss_after=loss_after)


def closeness_metrics(closeness: Closeness, sources: Sequence[str]) -> dict[str, float]:
  """The ``closeness/...`` metrics (Python floats) of a closeness measurement over named sources."""
  closeness = jax.device_get(closeness)
  metrics = {
      "closeness/mean_sq_dist": float(closeness.mean_sq_dist),
      "closeness/spread": float(closeness.spread),
      "closeness/mean_loss_drop": float(np.mean(closeness.loss_before - closeness.loss_after)),
  }
  for index, name in enumerate(sources):
    before, after = float(closeness.loss_before[index]), float(closeness.loss_after[index])
    metrics[f"closeness/sq_dist/{name}"] = float(closeness.sq_dist[index])
    metrics[f"closeness/loss_before/{name}"] = before
    metrics[f"closeness/loss_after/{name}"] = after
    metrics[f"closeness/loss_drop/{name}"] = before - after
  return metrics


def make_closeness(loss_fn: LossFn, optimizer: optax.GradientTransformation, *, num_steps: int,
                   num_batches: Optional[int] = None) -> Callable[[Any, Mapping[str, Sequence[Any]]], dict]:
  """Builds ``measure(params, batches) -> {"closeness/...": float}`` for ``{source: [batch, ...]}``.

  Args:
    loss_fn: ``loss_fn(params, batch)``, one source's scalar mean loss on one batch.
    optimizer: the fine-tuning optimizer, e.g. ``optax.sgd(1e-3)`` (short and small: θ̂_k should stay in
      θ's basin). Use the same one for every run compared.
    num_steps: fine-tuning steps per source (batches are cycled when there are fewer).
    num_batches: batches used per source (None: all; the same count for every source).

  Returns:
    ``measure``, jitted once per batch shape. Its metrics: ``closeness/mean_sq_dist``, ``closeness/spread``,
    ``closeness/mean_loss_drop`` and per source ``closeness/{sq_dist,loss_before,loss_after,loss_drop}/<source>``.
  """
  if not isinstance(num_steps, int) or num_steps < 1:
    raise ValueError(f"num_steps={num_steps!r} must be a positive integer.")
  if not isinstance(optimizer, optax.GradientTransformation):
    raise ValueError(f"optimizer must be an optax.GradientTransformation, e.g. optax.sgd(1e-3); got "
                     f"{type(optimizer).__name__}.")
  closeness_fn = jax.jit(functools.partial(finetune_closeness, loss_fn, optimizer=optimizer, num_steps=num_steps))

  def measure(params: Any, batches: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    sources, stacked = batches_lib.stack_source_batches(batches, num_batches, min_sources=1)
    return closeness_metrics(closeness_fn(params, stacked), sources)

  return measure
