"""Schedules for Nexus's inner step length γ.

Reproductions of Nexus (arXiv:2604.09258) tie γ to the outer learning-rate schedule,
γ_t = γ_peak · η_t / η_peak, so the inner steps shrink during warmup and decay with the outer
learning rate. A constant γ is the other option (pass a float to ``nexus.nexus``).
"""

from typing import Callable

import jax
import jax.numpy as jnp


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
    raise TypeError("learning_rate must be a schedule (a function of the step count), e.g. optax.cosine_decay_schedule(...).")
  if peak_inner_learning_rate < 0:
    raise ValueError(f"peak_inner_learning_rate must be >= 0, got {peak_inner_learning_rate}.")
  if peak_learning_rate <= 0:
    raise ValueError(f"peak_learning_rate must be > 0, got {peak_learning_rate}; pass the schedule's peak value.")
  ratio = peak_inner_learning_rate / peak_learning_rate

  def schedule(count: jax.Array) -> jax.Array:
    return ratio * jnp.asarray(learning_rate(count), jnp.float32)

  return schedule
