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

from typing import Callable, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nexus.optim import normalize as normalize_lib
from nexus.optim import two_loop

PSEUDO_GRADIENT_SCALES = ("raw", "inverse_gamma")

ScalarOrSchedule = Union[float, jax.Array, Callable[[jax.Array], jax.Array]]


def check_transformation(tx, name: str = "outer") -> None:
  """Raises a TypeError unless ``tx`` (the argument called ``name``) is an Optax gradient transformation."""
  if not (hasattr(tx, "init") and hasattr(tx, "update")):
    raise TypeError(
        f"{name} must be an Optax GradientTransformation (e.g. optax.adamw(1e-3)), got {type(tx).__name__}."
    )


def check_inner_learning_rate(inner_learning_rate: ScalarOrSchedule, pseudo_gradient_scale: str) -> None:
  if callable(inner_learning_rate):
    return
  if isinstance(inner_learning_rate, jax.core.Tracer):
    return  # A hyperparameter injected by optax.inject_hyperparams: checked when it was concrete.
  value = np.asarray(inner_learning_rate)
  if value.shape != () or not np.issubdtype(value.dtype, np.number):
    raise ValueError(
        f"inner_learning_rate must be a non-negative scalar or a schedule, got {inner_learning_rate!r}."
    )
  if not np.isfinite(value) or value < 0:
    raise ValueError(
        f"inner_learning_rate must be finite and >= 0, got {float(value)}; pass the inner step length γ."
    )
  if pseudo_gradient_scale == "inverse_gamma" and value == 0:
    raise ValueError(
        "pseudo_gradient_scale='inverse_gamma' divides by γ, so inner_learning_rate must be > 0."
    )


def check_num_inner_steps(num_inner_steps: int) -> None:
  if isinstance(num_inner_steps, jax.core.Tracer):
    raise TypeError(
        "num_inner_steps must be a static Python int; with optax.inject_hyperparams pass "
        "static_args=('num_inner_steps',)."
    )
  if isinstance(num_inner_steps, bool) or not isinstance(num_inner_steps, (int, np.integer)):
    raise TypeError(f"num_inner_steps must be a Python int, got {type(num_inner_steps).__name__}.")
  if num_inner_steps < 1:
    raise ValueError(f"num_inner_steps must be >= 1, got {num_inner_steps}; K is the number of inner steps.")


def as_schedule(inner_learning_rate: ScalarOrSchedule) -> Callable[[jax.Array], jax.Array]:
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
    return jax.tree.map(lambda d: -gamma * d, direction), state

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _scale_by_inverse_gamma(schedule: Callable[[jax.Array], jax.Array]) -> optax.GradientTransformation:
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
    grad_fn = lambda p, i: jax.grad(loss)(p, batches[i])
    updates, state = tx.update(params, state, params, grad_fn=grad_fn)
    params = optax.apply_updates(params, updates)

  Args:
    outer: any Optax transformation (AdamW in the paper). It sees the pseudo-gradient and the float32
      outer params once per outer step, so its count, moments and schedules advance once per step.
      Clipping of ĝ belongs inside it: ``optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(...))``.
    inner_learning_rate: γ, a non-negative scalar or a schedule of the *outer* step count
      (see ``tied_inner_learning_rate`` to follow the outer learning-rate schedule).
    num_inner_steps: K ≥ 1, static. With ``optax.inject_hyperparams`` pass
      ``static_args=('num_inner_steps',)``.
    normalize: ``"global"`` (whole-tree L2, the paper), ``"leaf"`` or ``"none"`` (Fish-like).
    pseudo_gradient_scale: ``"raw"`` feeds ĝ = θ − φ (the paper); ``"inverse_gamma"`` feeds ĝ/γ_t, which
      keeps ĝ's scale independent of γ (useful with SGD-like outer optimizers).
    mode: ``"opaque"`` (one call runs the K inner steps via ``grad_fn``) or ``"transparent"`` (one call
      per inner step); see ``nexus.optim.two_loop``.
    track_gradient_sum: opaque mode only: also report the cosine between ĝ and the summed raw inner
      gradients (costs a temporary params-sized accumulator).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``two_loop.TwoLoopState``; the
    diagnostics of the last outer step are ``optax.tree.get(state, "diagnostics")``.

  Raises:
    ValueError / TypeError: eagerly, for K < 1, a negative or non-finite γ, unknown option names or an
    outer that is not an Optax transformation.
  """
  check_transformation(outer)
  check_num_inner_steps(num_inner_steps)
  normalize_lib.check_normalization(normalize)
  if pseudo_gradient_scale not in PSEUDO_GRADIENT_SCALES:
    raise ValueError(
        f"pseudo_gradient_scale={pseudo_gradient_scale!r} is not one of {PSEUDO_GRADIENT_SCALES}."
    )
  if mode not in two_loop.MODES:
    raise ValueError(f"mode={mode!r} is not one of {two_loop.MODES}.")
  check_inner_learning_rate(inner_learning_rate, pseudo_gradient_scale)

  if pseudo_gradient_scale == "inverse_gamma":
    outer = optax.chain(_scale_by_inverse_gamma(as_schedule(inner_learning_rate)), outer)
  return two_loop.two_loop(
      normalized_descent(inner_learning_rate, normalize), outer, int(num_inner_steps), mode=mode,
      track_gradient_sum=track_gradient_sum,
  )
