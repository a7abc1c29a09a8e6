"""The one calling convention of every optimizer here that consumes the K micro-batches of a step.

Nexus, Lookahead, SNOO, micro-batch SAM, order-free Nexus and the adapters below are all called as::

  updates, state = tx.update(params, state, params, loss_fn=loss_fn)

with ``loss_fn(params, i)`` the scalar loss of micro-batch ``i`` (``i = 0..K−1``, an int32 scalar,
possibly traced) at ``params``. Each method decides where to evaluate which micro-batch: Nexus at
the moving inner point, AdamW-with-accumulation at θ. Users who only have gradients may pass
``grad_fn(params, i)`` or ``value_and_grad_fn(params, i) -> (loss, gradient)`` instead (losses are
then NaN, resp. recorded). The incoming ``updates`` are not used: pass the params (so wrappers that
inspect them, such as ``optax.apply_if_finite``, see a params-shaped tree) or None. Every such state
keeps a ``diagnostics`` NamedTuple whose ``inner_losses: float32[K]`` holds the micro-batch losses
of the last step (read with ``optax.tree.get(state, "inner_losses")``).

Plain Optax transformations join this convention through two adapters:

- ``accumulate_gradients(tx, K)``: the mean of the K micro-batch gradients at θ, accumulated in
  float32 (gradient accumulation, the AdamW baseline);
- ``stacked_gradients(tx, K)``: the K gradients at θ stacked ``[K, *param_shape]`` (PCGrad, Nexus's
  γ→0 limit, any transformation of ``optax.experimental``'s aggregating kind).
"""

from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from nexus.optim import checks
from nexus.optim import tree_utils

ValueAndGradFn = Callable[[Any, jax.Array], tuple[jax.Array, Any]]


class MicrobatchDiagnostics(NamedTuple):
  """Measurements of the last step (read with ``optax.tree.get(state, "diagnostics")``).

  Attributes:
    inner_losses: float32[K], the loss of each micro-batch at θ (NaN when given a ``grad_fn``).
    inner_grad_norms: float32[K], the L2 norm (whole tree) of each micro-batch gradient at θ.
  """

  inner_losses: jax.Array
  inner_grad_norms: jax.Array


class MicrobatchState(NamedTuple):
  """State of an adapter: the wrapped transformation's state and the diagnostics."""

  inner_state: Any
  diagnostics: MicrobatchDiagnostics


def initial_diagnostics(num_microbatches: int) -> MicrobatchDiagnostics:
  return MicrobatchDiagnostics(
    inner_losses=jnp.full([num_microbatches], jnp.nan, jnp.float32),
    inner_grad_norms=jnp.zeros([num_microbatches], jnp.float32),
  )


def check_updates(updates: Any, params: Any, name: str) -> None:
  """The ignored ``updates`` must be None or shaped like the params (a mistake is named, not ignored)."""
  if updates is None:
    return
  checks.check_tree_like(
    f"{name}: the ignored updates",
    updates,
    params,
    "pass the params (or None) as updates: the gradients come from loss_fn.",
  )


def value_and_grad_fn_from(
  name: str,
  params: Any,
  *,
  loss_fn: Callable[[Any, jax.Array], jax.Array] | None = None,
  grad_fn: Callable[[Any, jax.Array], Any] | None = None,
  value_and_grad_fn: ValueAndGradFn | None = None,
) -> ValueAndGradFn:
  """Checks the one micro-batch function given and returns it as ``value_and_grad_fn(params, i)``.

  Raises one-line errors (naming ``name``) when none or several are given, when it is not callable, or
  when its loss is not a scalar or its gradient is not shaped like ``params``.
  """
  given = {
    key: fn
    for key, fn in (
      ("loss_fn", loss_fn),
      ("grad_fn", grad_fn),
      ("value_and_grad_fn", value_and_grad_fn),
    )
    if fn is not None
  }
  if len(given) != 1:
    raise ValueError(
      f"{name} needs exactly one of loss_fn(params, i) (the loss of micro-batch i), grad_fn(params, i) "
      f"or value_and_grad_fn(params, i) as a keyword argument of update, got {sorted(given) or 'none'}."
    )
  ((key, fn),) = given.items()
  checks.check_callable(key, fn, f"{key}(params, i) with i the micro-batch index")
  index = jnp.zeros([], jnp.int32)
  chosen: Callable[..., Any] = fn
  if key == "loss_fn":
    checks.check_scalar_output(f"{name}: loss_fn(params, i)", chosen, params, index)
    result: ValueAndGradFn = jax.value_and_grad(chosen)
  elif key == "grad_fn":
    nan = jnp.full([], jnp.nan, jnp.float32)
    result = lambda p, i: (nan, chosen(p, i))
  else:
    result = chosen
  gradient = jax.eval_shape(lambda p, i: result(p, i)[1], params, index)
  checks.check_tree_like(
    f"{name}: the gradient of {key}(params, i)",
    gradient,
    params,
    "return the gradient of one micro-batch with respect to params.",
  )
  return result


def resolve(name: str, updates: Any, params: Any, **functions: Any) -> ValueAndGradFn:
  """Checks one call of the convention (params given, ``updates`` None or params-shaped, exactly one
  micro-batch function) and returns the function as ``value_and_grad_fn(params, i)``."""
  if params is None:
    raise ValueError(f"{name} needs params in update(updates, state, params, loss_fn=...).")
  check_updates(updates, params, name)
  return value_and_grad_fn_from(name, params, **functions)


def mean_gradient(value_and_grad_fn: ValueAndGradFn, params: Any, num_microbatches: int):
  """The mean gradient of the micro-batches ``0..K−1`` at ``params``, summed in at least float32 and
  cast to the params' dtypes, with each micro-batch's loss and gradient norm (float32[K] each).

  One forward/backward per micro-batch in a ``jax.lax.scan``: the activation memory of one micro-batch.
  """

  def accumulate(total, i):
    loss, grad = value_and_grad_fn(params, i)
    grad = tree_utils.at_least_float32(grad)
    return optax.tree.add(total, grad), (
      jnp.asarray(loss, jnp.float32),
      tree_utils.tree_norm32(grad),
    )

  zeros = tree_utils.at_least_float32(optax.tree.zeros_like(params))
  total, (losses, norms) = jax.lax.scan(accumulate, zeros, jnp.arange(num_microbatches))
  return (
    optax.tree.cast_like(optax.tree.scale(1.0 / num_microbatches, total), params),
    losses,
    norms,
  )


def _microbatch_transformation(
  name: str,
  tx: optax.GradientTransformation,
  num_microbatches: int,
  combine: Callable[[Any, ValueAndGradFn], tuple[Any, jax.Array, jax.Array]],
) -> optax.GradientTransformationExtraArgs:
  """An adapter: ``combine(params, value_and_grad_fn) -> (what tx is fed, losses[K], norms[K])``."""
  checks.check_transformation(tx, "tx")
  checks.check_static_int("num_microbatches", num_microbatches, 1)
  tx = optax.with_extra_args_support(tx)

  def init_fn(params):
    return MicrobatchState(
      inner_state=tx.init(params), diagnostics=initial_diagnostics(num_microbatches)
    )

  def update_fn(
    updates, state, params=None, *, loss_fn=None, grad_fn=None, value_and_grad_fn=None, **extra_args
  ):
    value_and_grad_fn = resolve(
      name, updates, params, loss_fn=loss_fn, grad_fn=grad_fn, value_and_grad_fn=value_and_grad_fn
    )
    gradient, losses, norms = combine(params, value_and_grad_fn)
    new_updates, inner_state = tx.update(gradient, state.inner_state, params, **extra_args)
    diagnostics = MicrobatchDiagnostics(inner_losses=losses, inner_grad_norms=norms)
    return new_updates, MicrobatchState(inner_state=inner_state, diagnostics=diagnostics)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def accumulate_gradients(tx: optax.GradientTransformation, num_microbatches: int):
  """``tx`` fed the mean of ``num_microbatches`` micro-batch gradients at θ (gradient accumulation).

  The sum runs in at least float32 whatever the params' dtype (as Nexus's inner trajectory does), and
  the mean is cast to the params' dtypes before ``tx`` sees it (see ``mean_gradient``).
  """

  def combine(params, value_and_grad_fn):
    return mean_gradient(value_and_grad_fn, params, num_microbatches)

  return _microbatch_transformation("accumulate_gradients", tx, num_microbatches, combine)


def stacked_gradients(tx: optax.GradientTransformation, num_microbatches: int):
  """``tx`` fed the ``num_microbatches`` gradients at θ stacked along a leading axis ``[K, *shape]``.

  The gradients are computed one micro-batch at a time (``jax.lax.map``), in the params' dtypes.
  """

  def combine(params, value_and_grad_fn):
    losses, stacked = jax.lax.map(
      lambda i: value_and_grad_fn(params, i), jnp.arange(num_microbatches)
    )
    norms = jax.vmap(tree_utils.tree_norm32)(stacked)
    return stacked, jnp.asarray(losses, jnp.float32), norms

  return _microbatch_transformation("stacked_gradients", tx, num_microbatches, combine)
