"""Order-free Nexus: the expected Nexus update over random source orders, exact to second order in γ.

Sequential Nexus (``nexus.optim.nexus``) takes K normalized steps of length γ, each on a source
drawn i.i.d. uniformly from S sources, so its pseudo-gradient ĝ depends on the random order.
Expanding the
inner trajectory around θ (Chen et al. 2026, arXiv:2604.09258; derivation in docs/order_free.md)::

  ĝ = γ Σ_m ĝ_{s_m} − γ² Σ_m Σ_{l<m} 𝒥_{s_m} ĝ_{s_l} + O(γ³)

with ĝ_i = ∇L_i(θ)/‖∇L_i(θ)‖ and 𝒥_i its Jacobian. Each s_m is uniform and independent of the
others,
so E[ĝ_{s_m}] = v/S with v = Σ_j ĝ_j, and each of the K(K−1)/2 pairs l < m contributes Σ_i 𝒥_i v / S²::

  E[ĝ] = γ (K/S) v − γ² K(K−1)/(2S²) Σ_i 𝒥_i v + O(γ³)

Every term is a per-source quantity at θ: the S gradients come from ``jax.vmap`` over ``jax.grad``
(or ``jax.lax.map`` to bound activation memory), and Σ_i 𝒥_i v is the JVP along v of θ ↦ Σ_i
normalize(∇L_i(θ)) (forward-over-reverse), which also covers the ``"leaf"`` and ``"none"``
normalizations. ``jax.linearize`` gives the S gradients and the JVP from one evaluation. The outer
optimizer sees E[ĝ] once per call; no inner loop runs and no order is drawn, so the update carries
no ordering noise. The expectation is over i.i.d. uniform draws (the paper's sampling); visiting
each of K = S micro-batches once in a random order has a different second-order term (see
docs/order_free.md).
"""

from typing import Any
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from nexus.optim import _per_source as per_source
from nexus.optim import checks
from nexus.optim import microbatches
from nexus.optim import normalize as normalize_lib
from nexus.optim import tree_utils
from nexus.optim._nexus import ScalarOrSchedule
from nexus.optim._nexus import as_schedule

ORDERS = (1, 2)


class OrderFreeDiagnostics(NamedTuple):
  """Measurements of the last update, kept in the state (read with ``optax.tree.get(state, "diagnostics")``).

  Attributes:
    source_grad_norms: float32[S], ‖∇L_i(θ)‖ over the whole tree for every source.
    mean_pairwise_cosine: mean over i ≠ j of the cosine between the raw gradients ∇L_i and ∇L_j (the
      cross-source similarity Nexus raises; equal to the normalized gradients' Gram for ``"global"``);
      NaN when S = 1.
    first_order_norm: ‖γ (K/S) Σ_i ĝ_i‖.
    second_order_norm: ‖γ² K(K−1)/(2S²) Σ_i 𝒥_i v‖; 0 when K = 1, NaN when ``order=1`` (not computed).
    pseudo_gradient_norm: ‖E[ĝ]‖, the norm of what the outer optimizer is fed.
    inner_losses: float32[S], the loss of every source at θ.
  """

  source_grad_norms: jax.Array
  mean_pairwise_cosine: jax.Array
  first_order_norm: jax.Array
  second_order_norm: jax.Array
  pseudo_gradient_norm: jax.Array
  inner_losses: jax.Array


class OrderFreeState(NamedTuple):
  """State of ``order_free_nexus``: no parameter copy, only the outer state and a step count.

  Attributes:
    count: number of completed updates (int32); γ schedules are evaluated at it.
    outer_state: state of the outer transformation (initialized on at-least-float32 params).
    diagnostics: an ``OrderFreeDiagnostics``.
  """

  count: jax.Array  # type: ignore[assignment]  # shadows tuple.count, as optax's states do
  outer_state: Any
  diagnostics: OrderFreeDiagnostics


def _mean_off_diagonal(matrix: jax.Array) -> jax.Array:
  size = matrix.shape[0]
  if size == 1:
    return jnp.full([], jnp.nan, jnp.float32)
  return ((jnp.sum(matrix) - jnp.trace(matrix)) / (size * (size - 1))).astype(jnp.float32)


def order_free_nexus(
  outer: optax.GradientTransformation,
  inner_learning_rate: ScalarOrSchedule,
  *,
  num_inner_steps: int,
  num_sources: int,
  order: int = 2,
  normalize: str = "global",
  method: str = "vmap",
  batch_size: int | None = None,
) -> optax.GradientTransformationExtraArgs:
  """Nexus's update averaged over i.i.d. uniform source orders, to second order, without an inner loop.

  Example::

    import jax, jax.numpy as jnp, optax, nexus
    loss_fn = lambda p, batch: jnp.mean(jnp.cos(batch @ p["w"]))
    params = {"w": jnp.ones(3)}
    batches = jnp.arange(4 * 5 * 3.0).reshape(4, 5, 3) / 60   # S = 4 sources, 5 rows each
    tx = nexus.optim.order_free_nexus(optax.adamw(1e-3), 0.01, num_inner_steps=4, num_sources=4)
    state = tx.init(params)
    updates, state = tx.update(params, state, params, loss_fn=lambda p, i: loss_fn(p, batches[i]))
    params = optax.apply_updates(params, updates)

  ``update(updates, state, params, *, loss_fn)`` follows ``nexus.optim.microbatches``: ``updates`` is
  ignored and ``loss_fn(params, i)`` is the scalar loss of source ``i = 0..S−1``. The losses are evaluated
  at ``params`` in their own dtype; the normalized gradients, the JVP's result, E[ĝ] and the outer
  optimizer's inputs are at least float32.

  Args:
    outer: any Optax transformation (AdamW in the paper); it sees E[ĝ] once per call, so its count,
      moments and schedules advance once per outer step.
    inner_learning_rate: γ, a non-negative scalar or a schedule of the outer step count (as in
      ``nexus.optim.nexus``; see ``tied_inner_learning_rate``).
    num_inner_steps: K ≥ 1, the number of inner steps of the sequential update being averaged.
    num_sources: S ≥ 1, the size of ``stacked_batch``'s leading axis (static, so the diagnostics have a
      fixed shape).
    order: 2 (default) keeps the γ² term; 1 keeps only the γ→0 term γ (K/S) Σ_i ĝ_i and skips the JVP.
    normalize: ``"global"`` (whole-tree L2, the paper), ``"leaf"`` or ``"none"``, as in ``nexus``.
    method: ``"vmap"`` evaluates all S sources in parallel (S copies of the activations); ``"map"`` loops
      over them with ``jax.lax.map`` (one source, or ``batch_size`` sources, at a time), bounding
      activation memory. Both keep the S per-source gradients, stacked, for the diagnostics.
    batch_size: sources per chunk for ``method="map"`` (None: one at a time).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is an ``OrderFreeState``.

  Raises:
    ValueError / TypeError: eagerly, for invalid arguments (K or S < 1, a negative or non-finite γ,
    unknown order, normalization or method, a batch size without ``method="map"``, an outer that is not
    an Optax transformation), and at update time for a missing or non-callable ``loss_fn`` or one that
    does not return a scalar.
  """
  checks.check_transformation(outer)
  checks.check_num_inner_steps(num_inner_steps)
  checks.check_static_int("num_sources", num_sources, 1)
  checks.check_choice("order", order, ORDERS)
  checks.check_choice("normalize", normalize, normalize_lib.NORMALIZATIONS)
  checks.check_choice("method", method, per_source.PER_SOURCE_METHODS)
  if batch_size is not None:
    if method != "map":
      raise ValueError("batch_size only applies to method='map'; leave it None with method='vmap'.")
    checks.check_static_int("batch_size", batch_size, 1)
  checks.check_inner_learning_rate(inner_learning_rate, "raw")

  schedule = as_schedule(inner_learning_rate)
  k, s = int(num_inner_steps), int(num_sources)
  first_order_coefficient = k / s
  second_order_coefficient = k * (k - 1) / (2 * s * s)

  def uncomputed_second_order_norm() -> jax.Array:
    """NaN when order=1 (the term is not computed), 0 when K = 1 (its coefficient K(K−1) is 0)."""
    return jnp.full([], jnp.nan if order == 1 else 0.0, jnp.float32)

  def init_fn(params: Any) -> OrderFreeState:
    return OrderFreeState(
      count=jnp.zeros([], jnp.int32),
      outer_state=outer.init(tree_utils.at_least_float32(params)),
      diagnostics=OrderFreeDiagnostics(
        source_grad_norms=jnp.zeros([s], jnp.float32),
        mean_pairwise_cosine=jnp.full([], jnp.nan, jnp.float32),
        first_order_norm=jnp.zeros([], jnp.float32),
        second_order_norm=uncomputed_second_order_norm(),
        pseudo_gradient_norm=jnp.zeros([], jnp.float32),
        inner_losses=jnp.full([s], jnp.nan, jnp.float32),
      ),
    )

  def update_fn(updates, state, params=None, *, loss_fn=None, **extra_args):
    del extra_args
    if params is None:
      raise ValueError(
        "order_free_nexus needs params in update(updates, state, params, loss_fn=...)."
      )
    microbatches.check_updates(updates, params, "order_free_nexus")
    if loss_fn is None:
      raise ValueError(
        "order_free_nexus needs update(..., loss_fn=loss_fn) with loss_fn(params, i) the scalar loss of "
        "source i = 0..S-1."
      )
    checks.check_callable("loss_fn", loss_fn, "loss_fn(params, i) with i the source index")
    checks.check_scalar_output(
      "order_free_nexus: loss_fn(params, i)", loss_fn, params, jnp.zeros([], jnp.int32)
    )
    sources = jnp.arange(s)

    def summed_normalized(point):
      """θ ↦ Σ_i normalize(∇L_i(θ)); also returns the losses and stacked raw gradients ∇L_i(θ)."""
      losses, grads = per_source.per_source_values_and_gradients(
        loss_fn, point, sources, method=method, batch_size=batch_size
      )
      return per_source.sum_normalized(grads, normalize), (losses, grads)

    gamma = schedule(state.count)
    if order == 2 and k > 1:
      # One evaluation gives the S gradients (auxiliary), their normalized sum v and v ↦ Σ_i 𝒥_i v.
      direction_sum, jacobian_vector_product, (losses, grads) = jax.linearize(
        summed_normalized, params, has_aux=True
      )
      jacobian_products = jacobian_vector_product(optax.tree.cast_like(direction_sum, params))
      second_order = optax.tree.scale(
        gamma**2 * second_order_coefficient, tree_utils.at_least_float32(jacobian_products)
      )
    else:
      direction_sum, (losses, grads) = summed_normalized(params)
      second_order = None
    first_order = optax.tree.scale(gamma * first_order_coefficient, direction_sum)
    if second_order is None:
      pseudo_gradient = first_order
      second_order_norm = uncomputed_second_order_norm()
    else:
      pseudo_gradient = optax.tree.sub(first_order, second_order)
      second_order_norm = tree_utils.tree_norm32(second_order)

    outer_params = tree_utils.at_least_float32(params)
    pseudo_gradient = optax.tree.cast_like(pseudo_gradient, outer_params)
    outer_updates, outer_state = outer.update(pseudo_gradient, state.outer_state, outer_params)

    gram = per_source.tree_gram(grads)
    diagnostics = OrderFreeDiagnostics(
      source_grad_norms=jnp.sqrt(jnp.clip(jnp.diagonal(gram), 0.0)).astype(jnp.float32),
      mean_pairwise_cosine=_mean_off_diagonal(per_source.cosine_from_gram(gram)),
      first_order_norm=tree_utils.tree_norm32(first_order),
      second_order_norm=second_order_norm,
      pseudo_gradient_norm=tree_utils.tree_norm32(pseudo_gradient),
      inner_losses=jnp.asarray(losses, jnp.float32),
    )
    new_state = OrderFreeState(
      count=optax.safe_increment(state.count), outer_state=outer_state, diagnostics=diagnostics
    )
    return optax.tree.cast_like(outer_updates, params), new_state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
