"""The two-loop core shared by Nexus and its relatives (Lookahead, SNOO, Fish, Reptile-style updates).

One outer step starts an inner copy ``φ ← θ``, runs ``K`` steps of an *inner* transformation on the
moving point ``φ`` (each step sees the gradient at ``φ``), forms the pseudo-gradient ``ĝ = θ − φ``
and feeds it once to the *outer* transformation, whose update lands on the new outer params.

Two modes, as in ``optax.contrib.sam``:

- ``"opaque"``: one ``update(params, state, params, *, loss_fn)`` call runs the K inner steps in a
  ``jax.lax.scan``, with ``loss_fn(params, i)`` the loss of micro-batch ``i`` (the calling
  convention of ``nexus.optim.microbatches``; ``grad_fn``/``value_and_grad_fn`` also work). The
  caller's params are θ.
- ``"transparent"``: each ``update(grads, state, params)`` call is one inner step taking ``grads``
  as the gradient at the current inner point ``params``; every K-th call also takes the outer step.
  Jittable: the branch is a ``jax.lax.cond``. Use it with ``flax.nnx.Optimizer`` or
  ``optax.MultiSteps``.

Precision and memory (state, besides the outer transformation's, which is initialized on
at-least-float32 copies of the params, so AdamW keeps float32 moments): the inner trajectory and ĝ
are at least float32 whatever the params' dtype, since a step of length γ spread over d parameters
moves each by about γ/√d, below bfloat16 resolution. Leaves stored in float32 need no copy in opaque
mode (the caller's params *are* θ); opaque mode keeps a float32 master copy of θ for the leaves
stored below float32 only. Transparent mode keeps θ (float32) for every leaf, since the caller's
params walk along φ, plus a float32 φ for the leaves stored below float32. Leaves without a copy
hold ``optax.MaskedNode()`` (no memory).

Composition: every returned update moves the caller's params onto the new point (rounded to their
dtype), and every outer step starts from the caller's params: where a caller's value differs from
the master copy rounded to its dtype (a transformation chained *after* this one, e.g. clipping or
``optax.masked``, changed the step), the caller's value is adopted, so nothing chained after is lost
or drifts. Transformations chained *before* this one see, in opaque mode, only the ignored
``updates`` (put gradient processing of ĝ inside ``outer``); in transparent mode they process each
inner gradient.

Non-finite values never reach the state: an outer step whose inner gradients, losses (when given),
pseudo-gradient or outer update is not finite is skipped (zero update, state kept) and counted in
``skipped_steps``, as ``optax.apply_if_finite`` does; in transparent mode a non-finite inner
gradient skips that inner call. So ``optax.apply_if_finite`` is not needed (and cannot see opaque
mode's gradients); it composes, since opaque mode's updates are finite.
"""

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from nexus.optim import checks
from nexus.optim import microbatches
from nexus.optim import tree_utils

UPDATE_MODES = ("opaque", "transparent")


class TwoLoopDiagnostics(NamedTuple):
  """Measurements of the last outer step, kept in the state (read with optax.tree.get).

  Attributes:
    inner_grad_norms: float32[K], the L2 norm of each inner gradient (whole tree). In transparent mode
      entries of the outer step in progress are overwritten as its inner steps run.
    inner_losses: float32[K], the loss at each inner point φ_k when opaque mode was given a ``loss_fn``
      or ``value_and_grad_fn``; NaN otherwise.
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
    count: number of completed outer steps (int32); schedules of γ and of the outer optimizer see it.
    inner_step: index of the next inner step within the current outer step (transparent mode; always
      0 between opaque updates).
    outer_params: float32 master copy of θ: in opaque mode for the leaves stored below float32 only,
      in transparent mode for every leaf (``optax.MaskedNode()`` where there is none).
    inner_params: transparent mode: float32 inner point φ for the leaves stored below float32
      (``optax.MaskedNode()`` elsewhere, and everywhere in opaque mode).
    inner_state: state of the inner transformation (empty for Nexus's normalized steps).
    outer_state: state of the outer transformation; advances once per outer step.
    skipped_steps: outer steps (and, in transparent mode, inner calls) skipped for non-finite values.
    diagnostics: a TwoLoopDiagnostics.
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax's states do
  inner_step: jax.Array
  outer_params: Any
  inner_params: Any
  inner_state: Any
  outer_state: Any
  skipped_steps: jax.Array
  diagnostics: TwoLoopDiagnostics


def _check_not_masked(params: Any) -> None:
  masked = [
    leaf
    for leaf in jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, optax.MaskedNode))
    if isinstance(leaf, optax.MaskedNode)
  ]
  if masked:
    raise ValueError(
      "opaque mode evaluates loss_fn at the full params, but optax.masked hid some of them; use "
      "mode='transparent' under optax.masked, or freeze leaves inside the outer transformation "
      "(optax.multi_transform with optax.set_to_zero())."
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
  at-least-float32 gradient ``g`` at the inner point ``φ`` and returns the step ``Δ`` (``φ ← φ + Δ``),
  cast to φ's dtype here.

  Args:
    inner: the inner transformation (stateless normalized descent for Nexus, AdamW for Lookahead).
    outer: any Optax transformation; it sees ĝ and the float32 outer params once per outer step.
    num_inner_steps: K ≥ 1, static.
    mode: ``"opaque"`` or ``"transparent"`` (see the module docstring).
    track_gradient_sum: in opaque mode, also sum the raw inner gradients to report
      ``summed_gradient_cosine`` (a temporary accumulator; about 5-10% step time on a bandwidth-bound
      CPU, negligible where the gradient dominates).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``TwoLoopState``.

  Raises:
    TypeError / ValueError: eagerly, for a non-transformation inner or outer, K that is not an int
    >= 1, or an unknown mode.
  """
  checks.check_transformation(inner, "inner")
  checks.check_transformation(outer, "outer")
  checks.check_num_inner_steps(num_inner_steps)
  checks.check_choice("mode", mode, UPDATE_MODES)
  inner = optax.with_extra_args_support(inner)
  k = int(num_inner_steps)
  transparent = mode == "transparent"

  def init_fn(params: Any) -> TwoLoopState:
    outer_params = tree_utils.float32_copies(
      params, (lambda x: True) if transparent else tree_utils.is_below_float32
    )
    theta = tree_utils.at_least_float32(params)
    return TwoLoopState(
      count=jnp.zeros([], jnp.int32),
      inner_step=jnp.zeros([], jnp.int32),
      outer_params=outer_params,
      inner_params=tree_utils.float32_copies(
        params, tree_utils.is_below_float32 if transparent else (lambda x: False)
      ),
      inner_state=inner.init(theta),
      outer_state=outer.init(theta),
      skipped_steps=jnp.zeros([], jnp.int32),
      diagnostics=TwoLoopDiagnostics(
        inner_grad_norms=jnp.zeros([k], jnp.float32),
        inner_losses=jnp.full([k], jnp.nan, jnp.float32),
        inner_path_length=jnp.zeros([], jnp.float32),
        pseudo_gradient_norm=jnp.zeros([], jnp.float32),
        alignment=jnp.zeros([], jnp.float32),
        summed_gradient_cosine=jnp.full([], jnp.nan, jnp.float32),
      ),
    )

  def inner_step(grad, inner_state, phi, count):
    """One inner step from φ; returns (φ + Δ, inner state, ‖Δ‖)."""
    delta, inner_state = inner.update(grad, inner_state, phi, outer_count=count)
    delta = optax.tree.cast_like(delta, phi)
    return optax.tree.add(phi, delta), inner_state, tree_utils.tree_norm32(delta)

  def outer_step(theta, final_inner_point, outer_state):
    """Feeds ĝ = θ − φ_K to the outer transformation; returns (θ_new, outer state, ĝ, finite)."""
    pseudo_gradient = optax.tree.sub(theta, final_inner_point)
    outer_updates, outer_state = outer.update(pseudo_gradient, outer_state, theta)
    outer_updates = optax.tree.cast_like(outer_updates, theta)
    finite = tree_utils.is_finite(pseudo_gradient, outer_updates)
    return optax.apply_updates(theta, outer_updates), outer_state, pseudo_gradient, finite

  def diagnostics_of(grad_norms, losses, path_length, pseudo_gradient, summed_grad):
    pseudo_norm = tree_utils.tree_norm32(pseudo_gradient)
    cosine = (
      tree_utils.tree_cosine(pseudo_gradient, summed_grad)
      if summed_grad is not None
      else jnp.full([], jnp.nan, jnp.float32)
    )
    return TwoLoopDiagnostics(
      inner_grad_norms=grad_norms,
      inner_losses=losses,
      inner_path_length=path_length,
      pseudo_gradient_norm=pseudo_norm,
      alignment=tree_utils.safe_divide(pseudo_norm, path_length),
      summed_gradient_cosine=cosine,
    )

  def skip(state, params, diagnostics):
    """The state kept as it was (but counting the skip and showing what went wrong), zero update."""
    new_state = state._replace(
      skipped_steps=optax.safe_increment(state.skipped_steps), diagnostics=diagnostics
    )
    return optax.tree.zeros_like(params), new_state

  def opaque_update(state, params, value_and_grad_fn, has_losses):
    theta = tree_utils.resync(params, state.outer_params)

    def inner_body(carry, i):
      phi, inner_state, grad_sum, path_length = carry
      loss, grad = value_and_grad_fn(optax.tree.cast_like(phi, params), i)
      grad = tree_utils.at_least_float32(grad)
      phi, inner_state, step_length = inner_step(grad, inner_state, phi, state.count)
      if track_gradient_sum:
        grad_sum = optax.tree.add(grad_sum, grad)
      carry = (phi, inner_state, grad_sum, path_length + step_length)
      return carry, (tree_utils.tree_norm32(grad), jnp.asarray(loss, jnp.float32))

    grad_sum = optax.tree.zeros_like(theta) if track_gradient_sum else None
    init = (theta, state.inner_state, grad_sum, jnp.zeros([], jnp.float32))
    (phi, inner_state, grad_sum, path_length), (grad_norms, losses) = jax.lax.scan(
      inner_body, init, jnp.arange(k)
    )
    new_theta, outer_state, pseudo_gradient, finite = outer_step(theta, phi, state.outer_state)
    finite &= jnp.all(jnp.isfinite(grad_norms))
    if has_losses:
      finite &= jnp.all(jnp.isfinite(losses))
    diagnostics = diagnostics_of(grad_norms, losses, path_length, pseudo_gradient, grad_sum)

    def accept():
      new_state = TwoLoopState(
        count=optax.safe_increment(state.count),
        inner_step=state.inner_step,
        outer_params=tree_utils.keep_like(new_theta, state.outer_params),
        inner_params=state.inner_params,
        inner_state=inner_state,
        outer_state=outer_state,
        skipped_steps=state.skipped_steps,
        diagnostics=diagnostics,
      )
      return tree_utils.step_onto(new_theta, params), new_state

    return jax.lax.cond(finite, accept, lambda: skip(state, params, diagnostics))

  def transparent_update(updates, state, params):
    checks.check_tree_like(
      "transparent mode's updates (the gradient at params)",
      updates,
      params,
      "pass the gradient of the loss at the current params, shaped like params.",
    )
    first = state.inner_step == 0
    theta = jax.tree.map(
      lambda fresh, kept: jnp.where(first, fresh, kept),
      tree_utils.resync(params, state.outer_params),
      state.outer_params,
    )
    phi = jax.tree.map(
      lambda fresh, at_theta: jnp.where(first, at_theta, fresh),
      tree_utils.resync(params, state.inner_params),
      theta,
    )
    grad = tree_utils.at_least_float32(updates)
    new_phi, inner_state, step_length = inner_step(grad, state.inner_state, phi, state.count)
    diag = state.diagnostics
    grad_norms = diag.inner_grad_norms.at[state.inner_step].set(tree_utils.tree_norm32(grad))
    path_length = jnp.where(first, 0.0, diag.inner_path_length) + step_length
    diag = diag._replace(inner_grad_norms=grad_norms, inner_path_length=path_length)

    def finish_outer_step():
      new_theta, outer_state, pseudo_gradient, finite = outer_step(
        theta, new_phi, state.outer_state
      )
      diagnostics = diagnostics_of(
        grad_norms, diag.inner_losses, path_length, pseudo_gradient, None
      )

      def accept():
        new_state = state._replace(
          count=optax.safe_increment(state.count),
          inner_step=jnp.zeros([], jnp.int32),
          outer_params=new_theta,
          inner_params=tree_utils.keep_like(new_theta, state.inner_params),
          inner_state=inner_state,
          outer_state=outer_state,
          diagnostics=diagnostics,
        )
        return tree_utils.step_onto(new_theta, params), new_state

      def reject():
        # The K inner steps are dropped: params go back onto θ and the outer step starts again.
        new_state = state._replace(
          inner_step=jnp.zeros([], jnp.int32),
          outer_params=theta,
          inner_params=tree_utils.keep_like(theta, state.inner_params),
          skipped_steps=optax.safe_increment(state.skipped_steps),
          diagnostics=diagnostics,
        )
        return tree_utils.step_onto(theta, params), new_state

      return jax.lax.cond(finite, accept, reject)

    def continue_inner_loop():
      new_state = state._replace(
        inner_step=state.inner_step + 1,
        outer_params=theta,
        inner_params=tree_utils.keep_like(new_phi, state.inner_params),
        inner_state=inner_state,
        diagnostics=diag,
      )
      return tree_utils.step_onto(new_phi, params), new_state

    def take_step():
      return jax.lax.cond(state.inner_step == k - 1, finish_outer_step, continue_inner_loop)

    finite = tree_utils.is_finite(grad) & jnp.isfinite(step_length)
    return jax.lax.cond(finite, take_step, lambda: skip(state, params, diag))

  def update_fn(
    updates, state, params=None, *, loss_fn=None, grad_fn=None, value_and_grad_fn=None, **extra_args
  ):
    del extra_args
    if params is None:
      raise ValueError("This two-loop optimizer needs params in update(updates, state, params).")
    if transparent:
      if loss_fn is not None or grad_fn is not None or value_and_grad_fn is not None:
        raise ValueError(
          "transparent mode takes the gradient at params as updates, not loss_fn/grad_fn; build the "
          "optimizer with mode='opaque' to pass loss_fn."
        )
      return transparent_update(updates, state, params)
    _check_not_masked(params)
    has_losses = grad_fn is None
    value_and_grad_fn = microbatches.resolve(
      "opaque mode",
      updates,
      params,
      loss_fn=loss_fn,
      grad_fn=grad_fn,
      value_and_grad_fn=value_and_grad_fn,
    )
    return opaque_update(state, params, value_and_grad_fn, has_losses)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
