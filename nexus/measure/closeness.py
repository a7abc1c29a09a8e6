"""Closeness of per-source minima: fine-tune a copy of θ on each source alone and measure how far each goes.

From the point θ, a copy is fine-tuned on source k alone, giving θ̂_k (an estimate of the nearest
minimum of L_k). The paper (Chen et al. 2026, arXiv:2604.09258) reports

- (1/K) Σ_k ‖θ − θ̂_k‖²: how far θ is from the per-source minima (small at a "common minimum");
- the spread (1/K) Σ_k ‖θ̂_k − θ̄‖² with θ̄ = (1/K) Σ_k θ̂_k: how far the minima are from each
  other;
- each source's loss before and after fine-tuning (the drop).

Comparable numbers need the same fine-tuning rule and batches for every source and every run
compared: the caller passes both, and nothing here is random. The fine-tuned copies are float32 (a
bf16 copy would lose small-learning-rate steps). Sources are fine-tuned one after the other
(``jax.lax.scan`` over sources, then over steps), so memory holds one copy and its optimizer state
plus the running mean of the displacements; the spread is accumulated with Welford's update, which
is exact (0) for identical sources.

Two ways to get θ̂_k:

- ``make_sgd_closeness`` (the default of ``launch.evaluate``): full-batch gradient descent with a
  small learning rate on a fixed sample of source k's *training* split, until its loss on that
  sample has dropped by a fixed fraction (e.g. 10%) or a step budget runs out. Small full-batch
  steps follow the gradient flow from θ towards the nearest low-loss region of L_k, so ‖θ − θ̂_k‖²
  is the distance to that source's minimum basin at a fixed relative progress, comparable across
  sources and runs; the steps each source needed are reported beside it.
- ``make_closeness``: any Optax optimizer for a fixed number of steps. With Adam the per-coordinate
  step is ≈ lr whatever the gradient, so the distance measures sign consistency more than distance
  to a minimum; kept for exploration (the colab notebooks).
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
import optax

from nexus.measure import batches as batches_lib
from nexus.optim import tree_utils

LossFn = Callable[[Any, Any], jax.Array]
MeasureFn = Callable[[Any, Mapping[str, Sequence[Any]]], dict]


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
  steps: jax.Array
  """``[K]``: fine-tuning steps taken per source."""
  reached: jax.Array
  """``[K]`` bool: whether the source's stopping target was met (always true for a fixed step count)."""


def _mean_loss(loss_fn: LossFn, point: Any, source_batches: Any) -> jax.Array:
  return jnp.mean(jax.lax.map(lambda batch: loss_fn(point, batch), source_batches)).astype(
    jnp.float32
  )


def _closeness_over_sources(theta: Any, stacked_batches: Any, finetune: Callable) -> Closeness:
  """Runs ``finetune(source_batches) -> (θ̂_k, steps, loss_before, loss_after, reached)`` per source."""

  def visit_source(carry, inputs):
    mean_displacement, sum_sq_deviation = carry
    count, source_batches = inputs
    point, steps, loss_before, loss_after, reached = finetune(source_batches)
    displacement = jax.tree.map(jnp.subtract, point, theta)
    # Welford: mean_k = mean_{k-1} + (d_k − mean_{k-1})/k;  M2 += ⟨d_k − mean_{k-1}, d_k − mean_k⟩.
    deviation_before = jax.tree.map(jnp.subtract, displacement, mean_displacement)
    mean_displacement = jax.tree.map(
      lambda m, d: m + d / count, mean_displacement, deviation_before
    )
    deviation_after = jax.tree.map(jnp.subtract, displacement, mean_displacement)
    sum_sq_deviation = sum_sq_deviation + tree_utils.tree_vdot(
      deviation_before, deviation_after
    ).astype(jnp.float32)
    outputs = (
      tree_utils.tree_vdot(displacement, displacement).astype(jnp.float32),
      loss_before,
      loss_after,
      jnp.asarray(steps, jnp.int32),
      jnp.asarray(reached, bool),
    )
    return (mean_displacement, sum_sq_deviation), outputs

  num_sources = jax.tree.leaves(stacked_batches)[0].shape[0]
  init = (jax.tree.map(jnp.zeros_like, theta), jnp.zeros((), jnp.float32))
  counts = jnp.arange(1, num_sources + 1, dtype=jnp.float32)
  (_, sum_sq_deviation), (sq_dist, loss_before, loss_after, steps, reached) = jax.lax.scan(
    visit_source, init, (counts, stacked_batches)
  )
  return Closeness(
    mean_sq_dist=jnp.mean(sq_dist),
    spread=sum_sq_deviation / num_sources,
    sq_dist=sq_dist,
    loss_before=loss_before,
    loss_after=loss_after,
    steps=steps,
    reached=reached,
  )


def finetune_closeness(
  loss_fn: LossFn,
  params: Any,
  stacked_batches: Any,
  *,
  optimizer: optax.GradientTransformation,
  num_steps: int,
) -> Closeness:
  """Fine-tunes ``params`` on each source of ``stacked_batches`` (leaves ``[K, N, ...]``) and measures closeness.

  Step t of source k uses batch ``t mod N`` of that source; ``optimizer`` starts from its ``init`` for
  every source. Pure and jittable with ``loss_fn``, ``optimizer`` and ``num_steps`` static.
  """
  theta = tree_utils.at_least_float32_copy(params)
  num_batches = jax.tree.leaves(stacked_batches)[0].shape[1]
  grad_fn = jax.grad(loss_fn)

  def finetune(source_batches):
    def step(carry, t):
      point, opt_state = carry
      batch = jax.tree.map(lambda x: x[t % num_batches], source_batches)
      updates, opt_state = optimizer.update(grad_fn(point, batch), opt_state, point)
      return (optax.apply_updates(point, updates), opt_state), None

    (point, _), _ = jax.lax.scan(step, (theta, optimizer.init(theta)), jnp.arange(num_steps))
    return (
      point,
      num_steps,
      _mean_loss(loss_fn, theta, source_batches),
      _mean_loss(loss_fn, point, source_batches),
      True,
    )

  return _closeness_over_sources(theta, stacked_batches, finetune)


def sgd_closeness(
  loss_fn: LossFn,
  params: Any,
  stacked_batches: Any,
  *,
  learning_rate: float,
  relative_drop: float,
  max_steps: int,
) -> Closeness:
  """Full-batch gradient descent on each source until its loss drops by ``relative_drop``, then closeness.

  For source k with batches B_k (leaves ``[N, ...]`` of ``stacked_batches[k]``) and
  L̄_k(φ) = mean_n loss_fn(φ, B_k[n]): φ ← φ − lr·∇L̄_k(φ) from φ = θ while
  L̄_k(φ) > (1 − relative_drop)·L̄_k(θ) and fewer than ``max_steps`` steps were taken, stopping early if
  the loss rises above L̄_k(θ) or is not finite (a learning rate too large for the source). The gradient is
  accumulated over the N batches (one batch's activations in memory at a time), and the loss it comes
  with decides the stop, so each step costs N forward-backward passes and nothing more. Pure and jittable
  with ``loss_fn`` and the three keywords static.
  """
  theta = tree_utils.at_least_float32_copy(params)
  value_and_grad = jax.value_and_grad(
    lambda point, batch: loss_fn(point, batch).astype(jnp.float32)
  )

  def full_batch(point, source_batches):
    def add(carry, batch):
      loss, grad = value_and_grad(point, batch)
      return (carry[0] + loss, jax.tree.map(jnp.add, carry[1], grad)), None

    num_batches = jax.tree.leaves(source_batches)[0].shape[0]
    (loss, grad), _ = jax.lax.scan(
      add, (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, point)), source_batches
    )
    return loss / num_batches, jax.tree.map(lambda g: g / num_batches, grad)

  def finetune(source_batches):
    loss_before, grad = full_batch(theta, source_batches)
    target = (1.0 - relative_drop) * loss_before

    def keep_going(carry):
      # A loss above the start (or non-finite) means the step size is too large for plain gradient
      # descent here: stop rather than report the distance of a divergence (the source is then not
      # `reached`).
      _, step, loss, _ = carry
      return (step < max_steps) & (loss > target) & (loss <= loss_before)

    def descend(carry):
      point, step, _, grad = carry
      point = jax.tree.map(lambda p, g: p - learning_rate * g, point, grad)
      loss, grad = full_batch(point, source_batches)
      return point, step + 1, loss, grad

    point, steps, loss_after, _ = jax.lax.while_loop(
      keep_going, descend, (theta, jnp.int32(0), loss_before, grad)
    )
    return point, steps, loss_before, loss_after, loss_after <= target

  return _closeness_over_sources(theta, stacked_batches, finetune)


def closeness_metrics(closeness: Closeness, sources: Sequence[str]) -> dict[str, float]:
  """The ``closeness/...`` metrics (Python floats) of a closeness measurement over named sources."""
  closeness = jax.device_get(closeness)
  metrics = {
    "closeness/mean_sq_dist": float(closeness.mean_sq_dist),
    "closeness/spread": float(closeness.spread),
    "closeness/mean_loss_drop": float(np.mean(closeness.loss_before - closeness.loss_after)),
    "closeness/mean_steps": float(np.mean(closeness.steps)),
    "closeness/all_reached": float(np.all(closeness.reached)),
  }
  for index, name in enumerate(sources):
    before, after = float(closeness.loss_before[index]), float(closeness.loss_after[index])
    metrics[f"closeness/sq_dist/{name}"] = float(closeness.sq_dist[index])
    metrics[f"closeness/loss_before/{name}"] = before
    metrics[f"closeness/loss_after/{name}"] = after
    metrics[f"closeness/loss_drop/{name}"] = before - after
    metrics[f"closeness/steps/{name}"] = float(closeness.steps[index])
    metrics[f"closeness/reached/{name}"] = float(closeness.reached[index])
  return metrics


def _measure_fn(closeness_fn: Callable, num_batches: int | None) -> MeasureFn:
  """``measure(params, {source: [batch, ...]})``: stacks the batches and names the metrics."""

  def measure(params: Any, batches: Mapping[str, Sequence[Any]]) -> dict[str, float]:
    sources, stacked = batches_lib.stack_source_batches(batches, num_batches, min_sources=1)
    return closeness_metrics(closeness_fn(params, stacked), sources)

  return measure


def _check_positive_int(value, name: str) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name}={value!r} must be a positive integer.")


def make_closeness(
  loss_fn: LossFn,
  optimizer: optax.GradientTransformation,
  *,
  num_steps: int,
  num_batches: int | None = None,
) -> MeasureFn:
  """Builds ``measure(params, batches) -> {"closeness/...": float}`` for ``{source: [batch, ...]}``.

  Args:
    loss_fn: ``loss_fn(params, batch)``, one source's scalar mean loss on one batch.
    optimizer: the fine-tuning optimizer, e.g. ``optax.sgd(1e-3)`` (short and small: θ̂_k should stay in
      θ's basin). Use the same one for every run compared.
    num_steps: fine-tuning steps per source (batches are cycled when there are fewer).
    num_batches: batches used per source (None: all; the same count for every source).

  Returns:
    ``measure``, jitted once per batch shape. Its metrics: ``closeness/mean_sq_dist``, ``closeness/spread``,
    ``closeness/mean_loss_drop``, ``closeness/mean_steps``, ``closeness/all_reached`` and per source
    ``closeness/{sq_dist,loss_before,loss_after,loss_drop,steps,reached}/<source>``.
  """
  _check_positive_int(num_steps, "num_steps")
  if not isinstance(optimizer, optax.GradientTransformation):
    raise ValueError(
      f"optimizer must be an optax.GradientTransformation, e.g. optax.sgd(1e-3); got "
      f"{type(optimizer).__name__}."
    )
  closeness_fn = jax.jit(
    functools.partial(finetune_closeness, loss_fn, optimizer=optimizer, num_steps=num_steps)
  )
  return _measure_fn(closeness_fn, num_batches)


def make_sgd_closeness(
  loss_fn: LossFn,
  *,
  learning_rate: float,
  relative_drop: float,
  max_steps: int,
  num_batches: int | None = None,
) -> MeasureFn:
  """Builds ``measure(params, batches)``: closeness by full-batch SGD to a fixed relative loss drop.

  Args:
    loss_fn: ``loss_fn(params, batch)``, one source's scalar mean loss on one batch (positive, e.g.
      cross-entropy, so that a relative drop is meaningful).
    learning_rate: the gradient-descent step size; small, so that θ̂_k is the end of a short gradient flow
      in θ's basin. Use the same value for every run compared.
    relative_drop: the fraction in (0, 1) by which each source's loss on its batches must fall, e.g. 0.1.
    max_steps: the step budget per source; a source that has not reached the drop by then (or whose loss
      rose above its start: lower the learning rate) is reported with ``closeness/reached/<source> = 0``
      (and ``closeness/all_reached = 0``), its distance where it stopped.
    num_batches: batches per source (None: all). Pass batches of each source's *training* split: the
      point is the source's own minimum, not a fit to the evaluation data.

  Returns:
    ``measure``, jitted once per batch shape, with the metrics listed in ``make_closeness``;
    ``closeness/steps/<source>`` is the number of steps the source needed.
  """
  _check_positive_int(max_steps, "max_steps")
  if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
    raise ValueError(f"learning_rate={learning_rate!r} must be a positive number, e.g. 0.01.")
  if not (isinstance(relative_drop, (int, float)) and 0 < relative_drop < 1):
    raise ValueError(
      f"relative_drop={relative_drop!r} must be a fraction in (0, 1), e.g. 0.1 for a 10% drop."
    )
  closeness_fn = jax.jit(
    functools.partial(
      sgd_closeness,
      loss_fn,
      learning_rate=float(learning_rate),
      relative_drop=float(relative_drop),
      max_steps=max_steps,
    )
  )
  return _measure_fn(closeness_fn, num_batches)
