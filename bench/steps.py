"""The one place where the benchmarks build an optimizer and the trainer's step function from it.

The optimizer's calling convention belongs to ``nexus.optim`` and ``nexus.train.step``; keeping
every benchmark's call here means a change of that API is a change of this function only.
"""

import dataclasses

from nexus.optim import registry
from nexus.train import step as step_lib


def optimizer_and_step(
  num_inner_steps: int,
  *,
  opt_cfg: registry.OptimizerConfig | None = None,
  method: str = "adamw",
  total_steps: int = 1000,
  seed: int = 0,
):
  """Returns ``(tx, make_step)``: the optimizer, and ``make_step(microbatch_loss)`` -> the trainer's
  ``step(state, batch)`` (not jitted) for a ``loss(params, tokens[B, L+1]) -> scalar``.

  Args:
    num_inner_steps: K micro-batches per step.
    opt_cfg: the trainer's ``opt`` section; None: the registry's defaults (needs no ml_collections).
    method: the optimizer's name (replaces ``opt_cfg.name``).
    total_steps: the length of the learning-rate schedule.
    seed: the optimizer's seed (methods with randomness).
  """
  opt_cfg = dataclasses.replace(opt_cfg or registry.OptimizerConfig(), name=method)
  tx = registry.build(opt_cfg, num_inner_steps=num_inner_steps, total_steps=total_steps, seed=seed)
  return tx, lambda microbatch_loss: step_lib.make_train_step(microbatch_loss, tx)
