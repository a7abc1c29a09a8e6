"""The jitted training step: one outer step over K micro-batches, for every calling convention.

A batch holds ``tokens: int32[K, B, L+1]`` (see docs/design.md). How the K micro-batches reach the
optimizer depends on its calling convention (``nexus.optim.registry``):

- ``accumulate`` (AdamW baseline): the K gradients are taken at θ and averaged (gradient accumulation);
- ``opaque`` (Nexus, Lookahead, SNOO, ...): the optimizer runs its K inner steps itself through
  ``value_and_grad_fn(params, i)`` on micro-batch ``i``, in one ``jax.lax.scan``;
- ``per_source``: the K micro-batch gradients at θ are stacked ``[K, ...]`` (γ→0 Nexus, PCGrad);
- ``loss_fn``: the optimizer gets the loss function and the stacked micro-batches (order-free Nexus).

Every convention consumes exactly the same tokens per step. A non-finite loss or update never reaches
the state: the step keeps the previous state and counts the skip (``nonfinite='stop'`` makes the host
stop on it instead).
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

CONVENTIONS = ("accumulate", "opaque", "per_source", "loss_fn")


class TrainState(NamedTuple):
  """Everything a step updates (and a checkpoint saves).

  Attributes:
    step: completed outer steps (int32).
    params: the model parameters as a pure dict of arrays.
    opt_state: the optimizer state.
    skipped_steps: steps skipped for a non-finite loss or update (int32).
  """

  step: jax.Array
  params: Any
  opt_state: Any
  skipped_steps: jax.Array


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
    convention: str,
) -> Callable[[TrainState, dict], tuple[TrainState, dict]]:
  """Returns ``step(state, batch) -> (state, metrics)`` (not yet jitted).

  Args:
    microbatch_loss: ``loss(params, tokens[B, L+1]) -> scalar`` mean next-token loss of one micro-batch.
    tx: the optimizer.
    convention: how ``tx`` takes the K micro-batches (see the module docstring).
  """
  if convention not in CONVENTIONS:
    raise ValueError(f"optimizer calling convention {convention!r} is not one of {CONVENTIONS}.")
  value_and_grad = jax.value_and_grad(microbatch_loss)

  def optimizer_update(state: TrainState, tokens: jax.Array):
    params = state.params
    if convention == "accumulate":
      def accumulate(total, microbatch):
        loss, grads = value_and_grad(params, microbatch)
        return optax.tree.add(total, grads), loss

      total, losses = jax.lax.scan(accumulate, optax.tree.zeros_like(params), tokens)
      grads = optax.tree.scale(1.0 / tokens.shape[0], total)
      updates, opt_state = tx.update(grads, state.opt_state, params)
      return updates, opt_state, losses
    if convention == "opaque":
      updates, opt_state = tx.update(
          params, state.opt_state, params,
          value_and_grad_fn=lambda p, i: value_and_grad(p, tokens[i]),
      )
      return updates, opt_state, _find_diagnostics(opt_state).inner_losses
    if convention == "per_source":
      losses, stacked = jax.lax.map(lambda microbatch: value_and_grad(params, microbatch), tokens)
      updates, opt_state = tx.update(stacked, state.opt_state, params)
      return updates, opt_state, losses
    losses = jax.lax.map(lambda microbatch: microbatch_loss(params, microbatch), tokens)
    updates, opt_state = tx.update(
        params, state.opt_state, params, loss_fn=microbatch_loss, stacked_batch=tokens
    )
    return updates, opt_state, losses

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
