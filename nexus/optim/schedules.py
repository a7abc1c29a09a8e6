"""Schedules for Nexus's inner step length γ.

Reproductions of Nexus (arXiv:2604.09258) tie γ to the outer learning-rate schedule,
γ_t = γ_peak · η_t / η_peak, so the inner steps shrink during warmup and decay with the outer
learning rate. A constant γ is the other option (pass a float to ``nexus.nexus``).

``optax.inject_hyperparams`` evaluates a schedule at its own count, which advances once per ``update``
call: once per outer step in opaque mode, but K times per outer step in transparent mode.
``inner_call_schedule`` turns a schedule of the outer step into one of that call count.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from nexus.optim import checks


def tied_inner_learning_rate(
  peak_inner_learning_rate: float,
  learning_rate: Callable[[jax.Array], jax.Array],
  peak_learning_rate: float,
) -> Callable[[jax.Array], jax.Array]:
  """Returns the schedule ``count ↦ γ_peak · learning_rate(count) / peak_learning_rate``.

  Args:
    peak_inner_learning_rate: γ_peak ≥ 0, the inner step length where the outer rate peaks.
    learning_rate: the outer learning-rate schedule (a function of the outer step count).
    peak_learning_rate: its peak value η_peak > 0 (e.g. ``peak_value`` of a warmup-cosine schedule).
  """
  if not callable(learning_rate):
    raise TypeError(
      "learning_rate must be a schedule (a function of the step count), e.g. optax.cosine_decay_schedule(...)."
    )
  checks.check_scalar_in_range(
    "peak_inner_learning_rate", peak_inner_learning_rate, 0.0, float("inf"), closed="left"
  )
  checks.check_scalar_in_range(
    "peak_learning_rate",
    peak_learning_rate,
    0.0,
    float("inf"),
    closed="neither",
    fix="pass the schedule's peak value.",
  )
  ratio = peak_inner_learning_rate / peak_learning_rate

  def schedule(count: jax.Array) -> jax.Array:
    return ratio * jnp.asarray(learning_rate(count), jnp.float32)

  return schedule


def inner_call_schedule(
  schedule: Callable[[jax.Array], jax.Array], num_inner_steps: int
) -> Callable[[jax.Array], jax.Array]:
  """``schedule`` (a function of the outer step) as a function of the inner-call count: ``c ↦ schedule(c // K)``.

  For γ (or any hyperparameter) injected with ``optax.inject_hyperparams`` into a transparent-mode
  two-loop optimizer, where one ``update`` call is one inner step and inject's count advances per call.
  """
  if not callable(schedule):
    raise TypeError(
      "schedule must be a function of the outer step count, e.g. optax.cosine_decay_schedule(...)."
    )
  checks.check_num_inner_steps(num_inner_steps)
  return lambda count: schedule(count // num_inner_steps)
