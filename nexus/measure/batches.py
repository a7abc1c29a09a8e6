"""Stacks per-source batches into one pytree with leading ``[S, N]`` axes, for vmapped/scanned measurements.

Evaluation batches arrive as ``{source: [batch, ...]}`` (``nexus.data.make_eval_batches``). Gradient
geometry and closeness run one jitted program over every source, so they need the sources' batches
as one array per leaf: ``leaf[s, n]`` is batch ``n`` of source ``s``. Stacking uses ``jnp.stack``,
so batches already placed on devices (even as global arrays over several processes) stay there.
"""

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def stack_source_batches(
  batches: Mapping[str, Sequence[Any]],
  num_batches: int | None = None,
  *,
  min_sources: int = 1,
) -> tuple[list[str], Any]:
  """The source names (in ``batches`` order) and their first ``num_batches`` batches stacked ``[S, N, ...]``.

  Args:
    batches: ``{source: [batch, ...]}``; every batch is a pytree of arrays with the same structure and
      shapes across all sources and batches.
    num_batches: batches taken per source (None: all, which must then be the same count for every source).
    min_sources: the fewest sources the caller's measurement is defined for.

  Returns:
    ``(sources, stacked)`` where each leaf of ``stacked`` is an array ``[S, N, *batch_leaf_shape]``.
  """
  if not isinstance(batches, Mapping) or len(batches) < min_sources:
    raise ValueError(
      f"batches must map at least {min_sources} source name(s) to lists of batches; "
      f"got {type(batches).__name__} with {len(batches) if isinstance(batches, Mapping) else 0}."
    )
  counts = {name: len(source_batches) for name, source_batches in batches.items()}
  if num_batches is None:
    if len(set(counts.values())) != 1:
      raise ValueError(
        f"sources have different numbers of batches {counts}; pass num_batches to use the same "
        "count for every source."
      )
    num_batches = next(iter(counts.values()))
  if not isinstance(num_batches, int) or num_batches < 1:
    raise ValueError(f"num_batches={num_batches!r} must be a positive integer.")
  short = {name: count for name, count in counts.items() if count < num_batches}
  if short:
    raise ValueError(
      f"sources {short} have fewer than num_batches={num_batches} batches; lower num_batches or "
      "supply more batches."
    )
  sources = list(batches)
  first = batches[sources[0]][0]
  reference = jax.tree.structure(first), [np.shape(x) for x in jax.tree.leaves(first)]
  for name in sources:
    for index, batch in enumerate(batches[name][:num_batches]):
      if (jax.tree.structure(batch), [np.shape(x) for x in jax.tree.leaves(batch)]) != reference:
        raise ValueError(
          f"batch {index} of source {name!r} differs in structure or shape from batch 0 of "
          f"{sources[0]!r}; every source needs batches of one shape to be stacked."
        )
  per_source = [
    jax.tree.map(lambda *leaves: jnp.stack(leaves), *batches[name][:num_batches])
    for name in sources
  ]
  return sources, jax.tree.map(lambda *leaves: jnp.stack(leaves), *per_source)
