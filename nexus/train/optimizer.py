"""Builds the configured optimizer (Nexus, AdamW or a relative) from the ``opt`` config section."""

import optax

from nexus.optim import checks
from nexus.optim import registry
from nexus.optim import schedules as optim_schedules

GAMMA_SCHEDULES = ("tied", "constant")


def inner_learning_rate(opt_cfg, learning_rate: optax.Schedule):
  """γ as configured: tied to the outer schedule (γ_t = γ·η_t/η_peak) or constant."""
  checks.check_choice("opt.gamma_schedule", opt_cfg.gamma_schedule, GAMMA_SCHEDULES)
  if opt_cfg.gamma_schedule == "constant":
    return float(opt_cfg.inner_learning_rate)
  return optim_schedules.tied_inner_learning_rate(
    float(opt_cfg.inner_learning_rate), learning_rate, float(opt_cfg.learning_rate)
  )


def build_optimizer(opt_cfg, learning_rate: optax.Schedule, num_inner_steps: int, *, seed: int = 0):
  """Returns the optimizer ``opt_cfg.name`` (see ``nexus.optim.registry``), its values checked first.

  The peak values are checked here because the registry receives the schedules built from them.
  """
  unbounded = float("inf")
  checks.check_scalar_in_range(
    "opt.learning_rate", opt_cfg.learning_rate, 0.0, unbounded, closed="neither"
  )
  if opt_cfg.name in registry.USES_GAMMA:
    checks.check_scalar_in_range(
      "opt.inner_learning_rate",
      opt_cfg.inner_learning_rate,
      0.0,
      unbounded,
      closed="neither",
      fix=f"γ = 0 makes {opt_cfg.name} train nothing; pass the inner step length γ > 0.",
    )
  return registry.build(
    opt_cfg.name,
    learning_rate=learning_rate,
    b1=float(opt_cfg.b1),
    b2=float(opt_cfg.b2),
    eps=float(opt_cfg.eps),
    weight_decay=float(opt_cfg.weight_decay),
    clip_norm=float(opt_cfg.clip_norm),
    num_inner_steps=int(num_inner_steps),
    inner_learning_rate=inner_learning_rate(opt_cfg, learning_rate),
    normalize=opt_cfg.normalize,
    pseudo_gradient_scale=opt_cfg.pseudo_gradient_scale,
    slow_step_size=float(opt_cfg.slow_step_size),
    outer_learning_rate=float(opt_cfg.outer_learning_rate),
    outer_momentum=float(opt_cfg.outer_momentum),
    rho=float(opt_cfg.rho),
    projection_order=opt_cfg.projection_order,
    seed=int(seed),
    order=int(opt_cfg.order),
    per_source_method=opt_cfg.per_source_method,
  )
