"""The one place where the benchmarks build an optimizer and the trainer's step function from it.

The optimizer's calling convention belongs to ``nexus.optim`` and ``nexus.train.step``; keeping every
benchmark's call here means a change of that API is a change of this function only.
"""

from nexus.optim import registry
from nexus.train import optimizer as optimizer_lib
from nexus.train import step as step_lib


def optimizer_and_step(
  num_inner_steps: int,
  *,
  opt_cfg=None,
  method: str = "adamw",
  learning_rate=1e-3,
  inner_learning_rate: float = 0.01,
  seed: int = 0,
):
  """Returns ``(tx, make_step)``: the optimizer, and ``make_step(microbatch_loss)`` -> the trainer's
  ``step(state, batch)`` (not jitted) for a ``loss(params, tokens[B, L+1]) -> scalar``.

  Args:
    num_inner_steps: K micro-batches per step.
    opt_cfg: the trainer's ``opt`` config section; None builds ``method`` with the registry's
      default hyperparameters (for scripts that do without ml_collections).
    method: the optimizer's name when ``opt_cfg`` is None.
    learning_rate: a float or schedule.
    inner_learning_rate: Nexus's γ when ``opt_cfg`` is None.
    seed: the optimizer's seed (methods with randomness).
  """
  if opt_cfg is None:
    tx = registry.build(
      method,
      learning_rate=learning_rate,
      num_inner_steps=num_inner_steps,
      inner_learning_rate=inner_learning_rate,
    )
  else:
    tx = optimizer_lib.build_optimizer(opt_cfg, learning_rate, num_inner_steps, seed=seed)
  return tx, lambda microbatch_loss: step_lib.make_train_step(microbatch_loss, tx)
