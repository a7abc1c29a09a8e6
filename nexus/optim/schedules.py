"""Learning-rate schedules: the outer η (warmup + cosine, warmup-stable-decay) and Nexus's γ.

``learning_rate_schedule`` builds η from the ``opt`` config section (``nexus.optim.registry``).

Reproductions of Nexus (arXiv:2604.09258) tie γ to the outer learning-rate schedule,
γ_t = γ_peak · η_t / η_peak, so the inner steps shrink during warmup and decay with the outer
learning rate. A constant γ is the other option (pass a float to ``nexus.nexus``).

``optax.inject_hyperparams`` evaluates a schedule at its own count, which advances once per
``update`` call: once per outer step in opaque mode, but K times per outer step in transparent mode.
``inner_call_schedule`` turns a schedule of the outer step into one of that call count.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from nexus.optim import checks

SCHEDULES = ("cosine", "wsd", "constant")


def learning_rate_schedule(config, total_steps: int) -> optax.Schedule:
  """The outer learning-rate schedule ``config.schedule`` of an ``OptimizerConfig`` over ``total_steps``.

  - ``cosine``: linear warmup to ``learning_rate`` over ``warmup_steps``, cosine decay to
    ``learning_rate * final_lr_fraction`` at ``total_steps``;
  - ``wsd``: warmup, constant, then linear decay to ``learning_rate * final_lr_fraction`` over the last
    ``decay_fraction`` of training, or from step ``decay_start`` to the end when that is set (Hu et al.
    2024, MiniCPM, arXiv:2404.06395). Cooldown branches of one stable run share every step before their
    ``decay_start``, so their end points anneal from different points of one trajectory;
  - ``constant``: warmup then constant.
  """
  checks.check_static_int("train.steps", total_steps, 1)
  peak, warmup = float(config.learning_rate), int(config.warmup_steps)
  final = peak * float(config.final_lr_fraction)
  if not 0 <= warmup < total_steps:
    raise ValueError(
      f"opt.warmup_steps={warmup} must be in [0, train.steps={total_steps}); shorten the warmup."
    )
  warmup_schedule = optax.linear_schedule(0.0, peak, max(warmup, 1))
  if config.schedule == "cosine":
    main = optax.cosine_decay_schedule(peak, total_steps - warmup, alpha=final / peak)
    return optax.join_schedules([warmup_schedule, main], [warmup])
  if config.schedule == "constant":
    return optax.join_schedules([warmup_schedule, optax.constant_schedule(peak)], [warmup])
  if config.decay_start is None:
    decay_start = total_steps - max(1, round(float(config.decay_fraction) * total_steps))
  else:
    decay_start = int(config.decay_start)
  if not warmup <= decay_start < total_steps:
    raise ValueError(
      f"the wsd decay starts at step {decay_start}, outside [opt.warmup_steps={warmup}, "
      f"train.steps={total_steps}); shorten opt.decay_fraction or move opt.decay_start."
    )
  decay = optax.linear_schedule(peak, final, total_steps - decay_start)
  stable = optax.constant_schedule(peak)
  return optax.join_schedules([warmup_schedule, stable, decay], [warmup, decay_start])


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
