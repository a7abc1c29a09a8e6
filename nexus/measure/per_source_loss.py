"""Per-source validation loss with micro and macro averages, for training and held-out (OOD) sources.

A source's loss is the mean of its rows' losses, weighted by each row's token count when a token
counter is given (so it equals the mean over all of the source's tokens) and unweighted otherwise.
Two averages summarize a group of sources (as in levanter's tagged evaluator):

- micro: the mean over every row/token of the group's sources, so sources with more evaluation
  tokens weigh more;
- macro: the plain mean of the per-source losses, so every source counts once.

Training and held-out sources are summarized separately; the held-out (out-of-distribution) loss is
the paper's OOD measurement (Chen et al. 2026, arXiv:2604.09258).

Metric names: ``eval/loss/<source>``, ``eval/loss_micro``, ``eval/loss_macro`` for training sources
and ``eval/ood_loss/<source>``, ``eval/ood_loss_micro``, ``eval/ood_loss_macro`` for held-out ones.
"""

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

RowLossFn = Callable[[Any, Any], jax.Array]
NumTokensFn = Callable[[Any], jax.Array]
PerSourceLossFn = Callable[..., dict[str, float]]


def _weighted_sums(
  row_loss_fn: RowLossFn, num_tokens_fn: NumTokensFn | None, params: Any, batch: Any
) -> tuple[jax.Array, jax.Array]:
  """``(Σ_b w_b·loss_b, Σ_b w_b)`` over a batch's rows, with ``w_b`` its token count (or 1)."""
  losses = jnp.asarray(row_loss_fn(params, batch), jnp.float32)
  if losses.ndim != 1:
    raise ValueError(
      f"row_loss_fn must return one loss per row (float32[B]); got shape {losses.shape}."
    )
  if num_tokens_fn is None:
    weights = jnp.ones_like(losses)
  else:
    weights = jnp.asarray(num_tokens_fn(batch), jnp.float32)
    if weights.shape != losses.shape:
      raise ValueError(
        f"num_tokens_fn returned shape {weights.shape}; it must match the row losses' "
        f"{losses.shape}."
      )
  # A row without tokens may have a 0/0 loss: it contributes nothing, not a NaN.
  return jnp.sum(jnp.where(weights > 0, losses * weights, 0.0)), jnp.sum(weights)


def _summarize(
  sums: Mapping[str, tuple[float, float]], sources: Sequence[str], prefix: str
) -> dict[str, float]:
  """``<prefix>/<source>`` losses and their ``<prefix>_micro``/``<prefix>_macro`` averages."""
  metrics = {f"{prefix}/{name}": sums[name][0] / sums[name][1] for name in sources}
  total_loss = sum(sums[name][0] for name in sources)
  total_weight = sum(sums[name][1] for name in sources)
  metrics[f"{prefix}_micro"] = total_loss / total_weight
  metrics[f"{prefix}_macro"] = float(np.mean([metrics[f"{prefix}/{name}"] for name in sources]))
  return metrics


def make_per_source_loss(
  row_loss_fn: RowLossFn, *, num_tokens_fn: NumTokensFn | None = None
) -> PerSourceLossFn:
  """Builds ``evaluate(params, batches, *, held_out_sources=()) -> {metric: float}``.

  Args:
    row_loss_fn: ``row_loss_fn(params, batch) -> float32[B]``, each row's mean loss over its tokens.
    num_tokens_fn: ``num_tokens_fn(batch) -> [B]``, each row's number of (non-padding) target tokens; with
      it every average is over tokens, without it over rows.

  Returns:
    ``evaluate(params, batches, *, held_out_sources=())`` where ``batches`` maps each source name to a
    non-empty list of batches (shapes may differ between sources) and ``held_out_sources`` names the
    sources reported as OOD. One jitted program per batch shape is compiled, on the first call, and reused
    by later calls of the same ``evaluate``.

  Example::

    evaluate = make_per_source_loss(row_loss, num_tokens_fn=lambda b: (b["tokens"][:, 1:] != 0).sum(-1))
    metrics = evaluate(params, {"web": [...], "code": [...], "poetry": [...]}, held_out_sources=["poetry"])
  """
  batch_sums = jax.jit(functools.partial(_weighted_sums, row_loss_fn, num_tokens_fn))

  def evaluate(
    params: Any, batches: Mapping[str, Sequence[Any]], *, held_out_sources: Sequence[str] = ()
  ) -> dict[str, float]:
    if not isinstance(batches, Mapping) or not batches:
      raise ValueError("batches must be a non-empty mapping {source: [batch, ...]}.")
    empty = [name for name, source_batches in batches.items() if len(source_batches) == 0]
    if empty:
      raise ValueError(f"sources {empty} have no batches; give every source at least one batch.")
    held_out = list(held_out_sources)
    unknown = [name for name in held_out if name not in batches]
    if unknown:
      raise ValueError(
        f"held_out_sources {unknown} have no batches; known sources: {list(batches)}."
      )
    device_sums = {}
    for name, source_batches in batches.items():
      loss_sum, weight_sum = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)
      for batch in source_batches:
        batch_loss, batch_weight = batch_sums(params, batch)
        loss_sum, weight_sum = loss_sum + batch_loss, weight_sum + batch_weight
      device_sums[name] = (loss_sum, weight_sum)
    sums = {
      name: (float(loss), float(weight))
      for name, (loss, weight) in jax.device_get(device_sums).items()
    }
    no_tokens = [name for name, (_, weight) in sums.items() if weight <= 0]
    if no_tokens:
      raise ValueError(
        f"sources {no_tokens} have no tokens in their batches (all padding); check their data."
      )
    train = [name for name in batches if name not in held_out]
    metrics = {}
    if train:
      metrics.update(_summarize(sums, train, "eval/loss"))
    if held_out:
      metrics.update(_summarize(sums, held_out, "eval/ood_loss"))
    return metrics

  return evaluate
