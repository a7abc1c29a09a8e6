"""The two-loop core shared by Nexus and its relatives (Lookahead, SNOO, Reptile-style updates).

One outer step starts an inner copy ``φ ← θ``, runs ``K`` steps of an *inner* transformation on the
moving point ``φ`` (each step sees the gradient at ``φ``), forms the pseudo-gradient ``ĝ = θ − φ``
and feeds it once to the *outer* transformation, whose update lands on the new outer params.

The outer params ``θ`` live in the optimizer state as a float32 copy (in the spirit of
``optax.contrib.sam``), never in the params type, so the transformation works with plain pytrees,
``optax.chain`` and ``flax.nnx.Optimizer``. The inner trajectory and ``ĝ`` are float32 whatever the
params dtype: a step of length γ spread over d parameters moves each by about γ/√d, below bfloat16
resolution.

Two modes, as in ``optax.contrib.sam``:

- ``"opaque"``: one ``update(updates, state, params, *, grad_fn)`` call runs the K inner steps with
  ``jax.lax.scan``; ``grad_fn(params, i)`` returns the gradient of inner micro-batch ``i`` at
  ``params``. Alternatively pass ``value_and_grad_fn(params, i) -> (loss, gradient)``: the scalar losses
  along the inner trajectory are then kept in the diagnostics (``inner_losses``), so a trainer can log
  the training loss without extra forward passes. The incoming ``updates`` are not used (transformations chained *before* this one do not
  see the inner gradients; put clipping inside the outer transformation or after this one). The
  returned update moves ``params`` exactly onto the new outer params. ``params`` are only read for
  their dtypes: the float32 master copy in the state is the outer point.
- ``"transparent"``: each ``update`` call is one inner step taking ``updates`` as the gradient at the
  current inner point ``params``; every K-th call also takes the outer step and returns the update that
  moves ``params`` onto the new outer params. Jittable: the branch is a ``jax.lax.cond``. With float32
  params the caller's params *are* the inner point; with lower-precision params an extra float32 inner
  copy is kept in the state so the inner steps are not lost to rounding.
"""

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from nexus.optim import tree_utils

MODES = ("opaque", "transparent")


class TwoLoopDiagnostics(NamedTuple):
  """Measurements of the last completed outer step, kept in the state (read with optax.tree.get).

  Attributes:
    inner_grad_norms: float32[K], the L2 norm of each inner gradient (whole tree). In transparent mode
      entries of the outer step in progress are overwritten as its inner steps run.
    inner_losses: float32[K], the loss at each inner point when opaque mode was given a
      ``value_and_grad_fn``; NaN otherwise.
    inner_path_length: Σ_m ‖Δ_m‖, the summed length of the inner steps (K·γ for Nexus with global
      normalization).
    pseudo_gradient_norm: ‖ĝ‖ = ‖θ − φ_K‖, the raw displacement fed to the outer transformation.
    alignment: ‖ĝ‖ / Σ_m ‖Δ_m‖ ∈ [0, 1]. For Nexus with global normalization this is ‖ĝ‖/(Kγ): 1 when
      all normalized inner gradients agree, about 1/√K when they are orthogonal.
    summed_gradient_cosine: cosine between ĝ and the plain sum of the K inner gradients Σ_m g_m (what
      gradient accumulation would have used, up to the moving evaluation points). Computed only in
      opaque mode with ``track_gradient_sum=True`` (it costs a params-sized float32 accumulator and one
      more pass over it per inner step); NaN otherwise.
  """

  inner_grad_norms: jax.Array
  inner_losses: jax.Array
  inner_path_length: jax.Array
  pseudo_gradient_norm: jax.Array
  alignment: jax.Array
  summed_gradient_cosine: jax.Array


class TwoLoopState(NamedTuple):
  """State of a two-loop transformation.

  Attributes:
    count: number of completed outer steps (int32).
    inner_step: index of the next inner step within the current outer step (transparent mode; always
      0 between opaque updates).
    outer_params: float32 copy of the outer params θ (the one extra copy Nexus needs).
    inner_params: float32 inner point φ, kept only in transparent mode when some params are not float32
      (otherwise None: the caller's params are the inner point).
    inner_state: state of the inner transformation (empty for Nexus's normalized steps).
    outer_state: state of the outer transformation; advances once per outer step.
    diagnostics: a TwoLoopDiagnostics.
  """

  count: jax.Array
  inner_step: jax.Array
  outer_params: Any
  inner_params: Optional[Any]
  inner_state: Any
  outer_state: Any
  diagnostics: TwoLoopDiagnostics


def _difference_like(target: Any, params: Any) -> Any:
  """``target − params`` computed in (at least) float32, cast to the params' dtypes."""
  return jax.tree.map(
      lambda t, p: (t - p.astype(t.dtype)).astype(p.dtype), target, params
  )


def check_grad_fn_output(grad_fn: Callable[[Any, Any], Any], params: Any) -> None:
  """Raises a TypeError when ``grad_fn(params, i)`` does not return a tree shaped like ``params``."""
  out = jax.eval_shape(grad_fn, params, jnp.zeros((), jnp.int32))
  expected = jax.tree.structure(params)
  got = jax.tree.structure(out)
  if got != expected:
    raise TypeError(
        f"grad_fn(params, i) must return a gradient with the params' tree structure {expected}, "
        f"got {got}; return jax.grad(loss)(params, batch_i)."
    )
  for path_and_grad, param in zip(jax.tree.leaves_with_path(out), jax.tree.leaves(params)):
    path, grad = path_and_grad
    if tuple(grad.shape) != tuple(jnp.shape(param)):
      raise TypeError(
          f"grad_fn(params, i) returned shape {grad.shape} at {jax.tree_util.keystr(path)} where the "
          f"param has shape {jnp.shape(param)}; return the gradient of one micro-batch."
      )


def two_loop(
    inner: optax.GradientTransformation,
    outer: optax.GradientTransformation,
    num_inner_steps: int,
    *,
    mode: str = "opaque",
    track_gradient_sum: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """Runs ``num_inner_steps`` steps of ``inner`` from θ, then one ``outer`` step on ĝ = θ − φ.

  The inner transformation is called as ``inner.update(g, inner_state, φ, outer_count=count)`` with the
  float32 gradient ``g`` at the inner point ``φ`` and must return the float32 step ``Δ`` (``φ ← φ + Δ``).
  Validation of arguments is the caller's job (see ``nexus.optim.nexus``).

  Args:
    inner: the inner transformation (stateless normalized descent for Nexus).
    outer: any Optax transformation; it sees ĝ and the float32 outer params once per outer step.
    num_inner_steps: K, static.
    mode: ``"opaque"`` or ``"transparent"`` (see the module docstring).
    track_gradient_sum: in opaque mode, also sum the raw inner gradients to report
      ``summed_gradient_cosine`` (a temporary accumulator; about 5-10% step time on a bandwidth-bound
      CPU, negligible where the gradient dominates).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``TwoLoopState``.
  """
  inner = optax.with_extra_args_support(inner)
  k = num_inner_steps

  def init_fn(params: Any) -> TwoLoopState:
    outer_params = tree_utils.at_least_float32_copy(params)
    keep_inner_copy = mode == "transparent" and not tree_utils.is_at_least_float32(params)
    return TwoLoopState(
        count=jnp.zeros([], jnp.int32),
        inner_step=jnp.zeros([], jnp.int32),
        outer_params=outer_params,
        inner_params=tree_utils.at_least_float32_copy(params) if keep_inner_copy else None,
        inner_state=inner.init(outer_params),
        outer_state=outer.init(outer_params),
        diagnostics=TwoLoopDiagnostics(
            inner_grad_norms=jnp.zeros([k], jnp.float32),
            inner_losses=jnp.full([k], jnp.nan, jnp.float32),
            inner_path_length=jnp.zeros([], jnp.float32),
            pseudo_gradient_norm=jnp.zeros([], jnp.float32),
            alignment=jnp.zeros([], jnp.float32),
            summed_gradient_cosine=jnp.full([], jnp.nan, jnp.float32),
        ),
    )

  def outer_step(state, final_inner_point, inner_state, grad_norms, losses, path_length, summed_grad):
    """Feeds ĝ = θ − φ_K to the outer transformation; returns (outer update, θ_new, new state)."""
    theta = state.outer_params
    pseudo_gradient = optax.tree.sub(theta, final_inner_point)
    outer_updates, outer_state = outer.update(pseudo_gradient, state.outer_state, theta)
    outer_updates = optax.tree.cast_like(outer_updates, theta)
    new_theta = optax.apply_updates(theta, outer_updates)
    pseudo_norm = tree_utils.tree_norm32(pseudo_gradient)
    cosine = (
        tree_utils.tree_cosine(pseudo_gradient, summed_grad)
        if summed_grad is not None
        else jnp.full([], jnp.nan, jnp.float32)
    )
    diagnostics = TwoLoopDiagnostics(
        inner_grad_norms=grad_norms,
        inner_losses=losses,
        inner_path_length=path_length,
        pseudo_gradient_norm=pseudo_norm,
        alignment=tree_utils.safe_divide(pseudo_norm, path_length),
        summed_gradient_cosine=cosine,
    )
    new_state = TwoLoopState(
        count=optax.safe_increment(state.count),
        inner_step=jnp.zeros([], jnp.int32),
        outer_params=new_theta,
        inner_params=None if state.inner_params is None else new_theta,
        inner_state=inner_state,
        outer_state=outer_state,
        diagnostics=diagnostics,
    )
    return outer_updates, new_theta, new_state

  def opaque_update(state, params, value_and_grad_fn):
    check_grad_fn_output(lambda p, i: value_and_grad_fn(p, i)[1], params)

    def inner_body(carry, i):
      phi, inner_state, grad_sum, path_length = carry
      loss, grad = value_and_grad_fn(optax.tree.cast_like(phi, params), i)
      grad = tree_utils.at_least_float32(grad)
      delta, inner_state = inner.update(grad, inner_state, phi, outer_count=state.count)
      phi = optax.tree.add(phi, delta)
      if track_gradient_sum:
        grad_sum = optax.tree.add(grad_sum, grad)
      carry = (phi, inner_state, grad_sum, path_length + tree_utils.tree_norm32(delta))
      return carry, (tree_utils.tree_norm32(grad), jnp.asarray(loss, jnp.float32))

    grad_sum = optax.tree.zeros_like(state.outer_params) if track_gradient_sum else None
    init = (state.outer_params, state.inner_state, grad_sum, jnp.zeros([], jnp.float32))
    (phi, inner_state, grad_sum, path_length), (grad_norms, losses) = jax.lax.scan(
        inner_body, init, jnp.arange(k)
    )
    outer_updates, new_theta, new_state = outer_step(
        state, phi, inner_state, grad_norms, losses, path_length, grad_sum
    )
    if tree_utils.is_at_least_float32(params):
      # params == θ, so params + outer_updates reproduces new_theta bit for bit.
      return optax.tree.cast_like(outer_updates, params), new_state
    return _difference_like(new_theta, params), new_state

  def transparent_update(updates, state, params):
    phi = params if state.inner_params is None else state.inner_params
    phi = tree_utils.at_least_float32(phi)
    grad = tree_utils.at_least_float32(updates)
    delta, inner_state = inner.update(grad, state.inner_state, phi, outer_count=state.count)
    new_phi = optax.tree.add(phi, delta)
    diag = state.diagnostics
    grad_norms = diag.inner_grad_norms.at[state.inner_step].set(tree_utils.tree_norm32(grad))
    previous_path = jnp.where(state.inner_step == 0, 0.0, diag.inner_path_length)
    path_length = previous_path + tree_utils.tree_norm32(delta)

    def finish_outer_step():
      _, new_theta, new_state = outer_step(
          state, new_phi, inner_state, grad_norms, diag.inner_losses, path_length, None
      )
      return _difference_like(new_theta, params), new_state

    def continue_inner_loop():
      new_state = state._replace(
          inner_step=state.inner_step + 1,
          inner_params=None if state.inner_params is None else new_phi,
          inner_state=inner_state,
          diagnostics=diag._replace(inner_grad_norms=grad_norms, inner_path_length=path_length),
      )
      if state.inner_params is None:
        return optax.tree.cast_like(delta, params), new_state
      return _difference_like(new_phi, params), new_state

    return jax.lax.cond(state.inner_step == k - 1, finish_outer_step, continue_inner_loop)

  def update_fn(updates, state, params=None, *, grad_fn=None, value_and_grad_fn=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError("This two-loop optimizer needs params in update(updates, state, params).")
    if grad_fn is not None and value_and_grad_fn is not None:
      raise ValueError("Pass either grad_fn or value_and_grad_fn, not both.")
    if mode == "opaque":
      if grad_fn is not None:
        nan = jnp.full([], jnp.nan, jnp.float32)
        value_and_grad_fn = lambda p, i: (nan, grad_fn(p, i))
      if value_and_grad_fn is None:
        raise ValueError(
            "Opaque mode needs update(..., grad_fn=grad_fn) with grad_fn(params, i) -> gradient of "
            "micro-batch i; or build the optimizer with mode='transparent'."
        )
      return opaque_update(state, params, value_and_grad_fn)
    if grad_fn is not None or value_and_grad_fn is not None:
      raise ValueError("grad_fn is only used in opaque mode; build the optimizer with mode='opaque'.")
    return transparent_update(updates, state, params)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
