"""The jitted training step: one outer step over K micro-batches, the same code for every optimizer.

A batch holds ``tokens: int32[K, B, L+1]`` (see docs/design.md). Every registered optimizer follows
one calling convention (``nexus.optim.microbatches``): ``tx.update(params, state, params,
loss_fn=loss_fn)`` with ``loss_fn(params, i)`` the loss of micro-batch ``i``. The optimizer decides
where to evaluate it (Nexus along its inner trajectory, AdamW at θ with gradient accumulation, ...)
and keeps the K micro-batch losses in its state (``inner_losses``), which the step logs, so no extra
forward pass runs.

A non-finite loss or update never reaches the state: the step keeps the previous state and counts
the skip (``nonfinite='stop'`` makes the host stop on it instead).
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


class TrainState(NamedTuple):
  """Everything a step updates (and a checkpoint saves).

  Attributes:
    step: completed outer steps (int32).
    params: the model parameters as a pure dict of arrays.
    opt_state: the optimizer state.
    skipped_steps: steps skipped for a non-finite loss or update (int32).
  """

  step: Any  # an int32 array; its sharding or ShapeDtypeStruct in a Run's abstract trees
  params: Any
  opt_state: Any
  skipped_steps: Any


def _find_diagnostics(opt_state: Any):
  found = optax.tree.get_all_with_path(opt_state, "diagnostics")
  return found[0][1] if found else None


def _diagnostic_metrics(diagnostics) -> dict:
  """The optimizer's diagnostics (any NamedTuple of arrays) as ``opt/<field>`` metrics.

  Scalars are logged as they are; vectors (e.g. the K inner gradient norms) by their mean. The inner
  losses are already the step's ``loss``.
  """
  if diagnostics is None:
    return {}
  return {
    f"opt/{name}": value if jnp.ndim(value) == 0 else jnp.mean(value)
    for name, value in diagnostics._asdict().items()
    if name != "inner_losses"
  }


def make_train_step(
  microbatch_loss: Callable[[Any, jax.Array], jax.Array],
  tx: optax.GradientTransformation,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Returns ``step(state, batch) -> (state, metrics)`` (not yet jitted).

  Args:
    microbatch_loss: ``loss(params, tokens[B, L+1]) -> scalar`` mean next-token loss of one micro-batch.
    tx: the optimizer, following ``nexus.optim.microbatches``'s calling convention.
  """

  def optimizer_update(state: TrainState, tokens: jax.Array):
    loss_fn = lambda params, i: microbatch_loss(params, tokens[i])
    updates, opt_state = tx.update(state.params, state.opt_state, state.params, loss_fn=loss_fn)
    return updates, opt_state, _find_diagnostics(opt_state).inner_losses

  def step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
    updates, opt_state, losses = optimizer_update(state, batch["tokens"])
    losses = jnp.asarray(losses, jnp.float32)
    update_norm = optax.tree.norm(updates)
    finite = jnp.all(jnp.isfinite(losses)) & jnp.isfinite(update_norm)
    new_state = TrainState(
      step=state.step + 1,
      params=optax.apply_updates(state.params, updates),
      opt_state=opt_state,
      skipped_steps=state.skipped_steps,
    )
    # Keep the previous state (but advance the step) when anything is non-finite: never poison it.
    kept = state._replace(step=state.step + 1, skipped_steps=state.skipped_steps + 1)
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, kept)
    metrics = {
      "loss": jnp.mean(losses),
      "microbatch_losses": losses,
      "update_norm": update_norm,
      "param_norm": optax.tree.norm(new_state.params),
      "finite": finite,
      "skipped_steps": new_state.skipped_steps,
    }
    metrics.update(_diagnostic_metrics(_find_diagnostics(opt_state)))
    return new_state, metrics

  return step
