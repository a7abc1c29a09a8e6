"""Learning-rate schedules of the trainer: warmup + cosine, and warmup-stable-decay (WSD)."""

import optax

SCHEDULES = ("cosine", "wsd", "constant")


def learning_rate_schedule(opt_cfg, total_steps: int) -> optax.Schedule:
  """Builds the outer learning-rate schedule named by ``opt_cfg.schedule``.

  - ``cosine``: linear warmup to ``learning_rate`` over ``warmup_steps``, cosine decay to
    ``learning_rate * final_lr_fraction`` at ``total_steps``;
  - ``wsd``: warmup, constant, then linear decay to ``learning_rate * final_lr_fraction`` over the last
    ``decay_fraction`` of training (Hu et al. 2024, MiniCPM);
  - ``constant``: warmup then constant.
  """
  name = opt_cfg.schedule
  if name not in SCHEDULES:
    raise ValueError(f"opt.schedule={name!r} is not one of {SCHEDULES}.")
  peak = float(opt_cfg.learning_rate)
  warmup = int(opt_cfg.warmup_steps)
  final = peak * float(opt_cfg.final_lr_fraction)
  if not 0 <= warmup < total_steps:
    raise ValueError(f"opt.warmup_steps={warmup} must be in [0, train.steps={total_steps}).")
  warmup_schedule = optax.linear_schedule(0.0, peak, max(warmup, 1))
  if name == "cosine":
    main = optax.cosine_decay_schedule(
      peak, total_steps - warmup, alpha=final / peak if peak else 0.0
    )
    return optax.join_schedules([warmup_schedule, main], [warmup])
  if name == "constant":
    return optax.join_schedules([warmup_schedule, optax.constant_schedule(peak)], [warmup])
  decay_steps = max(1, int(round(float(opt_cfg.decay_fraction) * total_steps)))
  stable_steps = total_steps - warmup - decay_steps
  if stable_steps < 0:
    raise ValueError(
      "opt.warmup_steps + opt.decay_fraction * train.steps exceeds train.steps; shorten them."
    )
  return optax.join_schedules(
    [
      warmup_schedule,
      optax.constant_schedule(peak),
      optax.linear_schedule(peak, final, decay_steps),
    ],
    [warmup, warmup + stable_steps],
  )
