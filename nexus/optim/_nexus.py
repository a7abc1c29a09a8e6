"""Nexus as a composable Optax gradient transformation.

Reference: H. Chen, H. Zhang, X. Li, Y. Dong, K. Shen, J. Zhu, "Nexus: Same Pretraining Loss, Better
Downstream Generalization via Common Minima", arXiv:2604.09258 (2026).

One outer step t::

  φ ← θ                                   (float32 inner copy)
  for m = 1..K:  g ← ∇L_{s_m}(φ);  φ ← φ − γ_t · g/‖g‖₂      (‖·‖ over the whole tree)
  ĝ ← θ − φ                               (pseudo-gradient, raw displacement)
  θ ← θ + outer.update(ĝ, outer_state, θ)

To second order, ĝ = γ Σ_m ĝ_{s_m}(θ) − γ² Σ_m Σ_{l<m} 𝒥_{s_m}(θ) ĝ_{s_l}(θ) + O(γ³), where
ĝ_i = ∇L_i/‖∇L_i‖ and 𝒥_i is its Jacobian: descending ĝ ascends the cross-source gradient cosine.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from nexus.optim import checks
from nexus.optim import normalize as normalize_lib
from nexus.optim._two_loop import UPDATE_MODES
from nexus.optim._two_loop import two_loop

PSEUDO_GRADIENT_SCALES = ("raw", "inverse_gamma")

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]


def as_schedule(inner_learning_rate: ScalarOrSchedule) -> Callable[[jax.Array], Any]:
  if callable(inner_learning_rate):
    return inner_learning_rate
  return lambda count: inner_learning_rate


def normalized_descent(
  inner_learning_rate: ScalarOrSchedule, normalize: str = "global"
) -> optax.GradientTransformationExtraArgs:
  """Nexus's inner step: stateless ``−γ_t · normalize(g)``, γ_t a function of the outer step count.

  No momentum, weight decay or clipping (the paper's inner loop). Expects the ``outer_count`` extra
  argument that ``two_loop`` passes.
  """
  schedule = as_schedule(inner_learning_rate)

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None, *, outer_count, **extra_args):
    del params, extra_args
    gamma = schedule(outer_count)
    direction = normalize_lib.normalize_tree(updates, normalize)
    # γ may be wider than the direction (a float64 γ under x64): the step keeps the direction's
    # dtype.
    return jax.tree.map(lambda d: (-gamma * d).astype(d.dtype), direction), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _scale_by_inverse_gamma(
  schedule: Callable[[jax.Array], jax.Array],
) -> optax.GradientTransformation:
  """Divides the pseudo-gradient by γ_t (0 when γ_t = 0), so the outer optimizer sees ĝ/γ."""

  def inverse(count):
    gamma = jnp.asarray(schedule(count))
    return jnp.where(gamma > 0, 1.0 / jnp.where(gamma > 0, gamma, 1.0), 0.0)

  return optax.scale_by_schedule(inverse)


def nexus(
  outer: optax.GradientTransformation,
  inner_learning_rate: ScalarOrSchedule,
  *,
  num_inner_steps: int,
  normalize: str = "global",
  pseudo_gradient_scale: str = "raw",
  mode: str = "opaque",
  track_gradient_sum: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """The Nexus optimizer: K normalized inner steps, then ``outer`` on the pseudo-gradient.

  Example (opaque mode: one call per outer step, K micro-batches)::

    import jax, jax.numpy as jnp, optax, nexus
    loss = lambda p, batch: jnp.mean((batch @ p["w"]) ** 2)
    params = {"w": jnp.ones(3)}
    batches = jnp.arange(4 * 5 * 3.0).reshape(4, 5, 3) / 60   # K = 4 micro-batches
    tx = nexus.nexus(optax.adamw(1e-3), 0.01, num_inner_steps=4)
    state = tx.init(params)
    loss_fn = lambda p, i: loss(p, batches[i])                 # the loss of micro-batch i
    updates, state = tx.update(params, state, params, loss_fn=loss_fn)
    params = optax.apply_updates(params, updates)

  Memory and precision, composition and non-finite steps: see ``nexus.optim._two_loop``. In short, with
  float32 params opaque mode's state is the outer optimizer's state and nothing more.

  Args:
    outer: any Optax transformation (AdamW in the paper). It sees the pseudo-gradient and the float32
      outer params once per outer step, so its count, moments and schedules advance once per step.
      Clipping of ĝ belongs inside it: ``optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(...))``.
    inner_learning_rate: γ, a non-negative scalar or a schedule of the *outer* step count
      (see ``tied_inner_learning_rate`` to follow the outer learning-rate schedule). Under
      ``optax.inject_hyperparams`` in transparent mode, whose count advances once per inner call, wrap a
      γ schedule in ``inner_call_schedule(schedule, K)`` so it still sees the outer step.
    num_inner_steps: K ≥ 1, static. With ``optax.inject_hyperparams`` pass
      ``static_args=('num_inner_steps',)``.
    normalize: ``"global"`` (whole-tree L2, the paper), ``"leaf"`` or ``"none"`` (Fish-like).
    pseudo_gradient_scale: ``"raw"`` feeds ĝ = θ − φ (the paper); ``"inverse_gamma"`` feeds ĝ/γ_t, which
      keeps ĝ's scale independent of γ (useful with SGD-like outer optimizers).
    mode: ``"opaque"`` (one call runs the K inner steps via ``loss_fn(params, i)``, the calling
      convention of ``nexus.optim.microbatches``) or ``"transparent"`` (one call per inner step, fed the
      gradient); see ``nexus.optim._two_loop``.
    track_gradient_sum: opaque mode only: also report the cosine between ĝ and the summed raw inner
      gradients (costs a temporary params-sized accumulator).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``two_loop.TwoLoopState``; the
    diagnostics of the last outer step are ``optax.tree.get(state, "diagnostics")``.

  Raises:
    ValueError / TypeError: eagerly, for K < 1, a negative or non-finite γ, unknown option names or an
    outer that is not an Optax transformation; at the first update, for a missing or non-callable
    ``loss_fn`` or gradients not shaped like the params.
  """
  checks.check_transformation(outer)
  checks.check_num_inner_steps(num_inner_steps)
  checks.check_choice("normalize", normalize, normalize_lib.NORMALIZATIONS)
  checks.check_choice("pseudo_gradient_scale", pseudo_gradient_scale, PSEUDO_GRADIENT_SCALES)
  checks.check_choice("mode", mode, UPDATE_MODES)
  checks.check_inner_learning_rate(inner_learning_rate, pseudo_gradient_scale)

  if pseudo_gradient_scale == "inverse_gamma":
    outer = optax.chain(_scale_by_inverse_gamma(as_schedule(inner_learning_rate)), outer)
  return two_loop(
    normalized_descent(inner_learning_rate, normalize),
    outer,
    int(num_inner_steps),
    mode=mode,
    track_gradient_sum=track_gradient_sum,
  )
