"""One table of every optimizer the trainer can run: Nexus, its ablations and its baselines.

``build(OptimizerConfig(...), num_inner_steps=K, total_steps=T) -> tx``. ``OptimizerConfig`` is the
experiment's ``opt`` section itself: one flat namespace shared by every method, with one set of
defaults, so a single config section fits them all; each method reads the fields it uses. Every
value is checked when the section is built, as strictly as the optimizer API checks it and more
where a value would silently train nothing (γ = 0), with one-line errors naming ``opt.<field>``.

Every method follows one calling convention (``nexus.optim.microbatches``)::

  updates, state = tx.update(params, state, params, loss_fn=loss_fn)

with ``loss_fn(params, i)`` the loss of micro-batch ``i`` of the K of one outer step; each method
decides where to evaluate which micro-batch, and every one consumes the same K micro-batches per
step and keeps their losses in ``optax.tree.get(state, "inner_losses")`` (at θ for the methods that
evaluate there, at the inner points φ_k for the two-loop methods).

Clipping at ``clip_norm`` (the paper's AdamW baseline clips the mean gradient at 1.0) is applied to
what AdamW (or Muon) receives: the mean gradient (``adamw``), the pseudo-gradient inside the outer
chain (the Nexus family), the combined direction (``pcgrad``, ``nexus_first_order``), the gradient
at the perturbed point (``sam``), and each raw inner gradient for ``lookahead`` and ``snoo``, whose
AdamW runs inside the loop (their pseudo-gradient is a K-step AdamW displacement fed to an
interpolation or to Nesterov SGD, and clipping it would change the outer step length, not guard
against spikes).
"""

from collections.abc import Callable
import dataclasses
from typing import NamedTuple

import optax

from nexus.optim import checks
from nexus.optim import microbatches
from nexus.optim import schedules
from nexus.optim._lookahead import lookahead
from nexus.optim._lookahead import snoo
from nexus.optim._nexus import PSEUDO_GRADIENT_SCALES
from nexus.optim._nexus import ScalarOrSchedule
from nexus.optim._nexus import nexus
from nexus.optim._order_free import ORDERS
from nexus.optim._order_free import order_free_nexus
from nexus.optim._pcgrad import ORDERS as PROJECTION_ORDERS
from nexus.optim._pcgrad import pcgrad
from nexus.optim._per_source import PER_SOURCE_METHODS
from nexus.optim._per_source import first_order_nexus
from nexus.optim._sam import microbatch_sam
from nexus.optim.normalize import NORMALIZATIONS
from nexus.optim.schedules import inner_call_schedule
from nexus.optim.schedules import tied_inner_learning_rate

# Muon's updates of 2D params are rescaled to AdamW's typical RMS (Liu et al. 2025, "Muon is
# Scalable for LLM Training", arXiv:2502.16982), so nexus_muon shares AdamW's learning rate and
# weight decay.
MUON_CONSISTENT_RMS = 0.2


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """The ``opt`` section of an experiment: every method's hyperparameters, one set of defaults.

  The trainer's command line sets these (``--config.opt.learning_rate=3e-3``); the schedules are
  built from the peak values here by ``build`` (``nexus.optim.schedules.learning_rate_schedule``).
  Which methods read which field is in brackets.

  Attributes:
    name: the method, a key of ``METHODS``.
    learning_rate: η_peak, the peak of the outer learning-rate schedule [all]; for lookahead and snoo
      it is the inner AdamW's, read at ``inner_count // K`` so the schedule keeps counting outer steps.
    schedule: ``"cosine"``, ``"wsd"`` (warmup-stable-decay) or ``"constant"`` (after warmup) [all].
    warmup_steps: linear warmup from 0 [all].
    final_lr_fraction: the schedule ends at ``learning_rate * final_lr_fraction`` [cosine, wsd].
    decay_fraction: the share of the steps the wsd decay takes [wsd].
    decay_start: the step where wsd's decay starts; None starts it at
      ``steps - decay_fraction * steps``. A cooldown branch from a stable-phase checkpoint sets it to
      that checkpoint's step and ``decay_fraction`` to the branch's share of the new ``steps`` [wsd].
    b1, b2, eps, weight_decay: AdamW's (the outer optimizer of the Nexus family; Muon's Adam part) [all].
    clip_norm: global-norm clipping threshold (module docstring); None or 0 disables it [all].
    inner_learning_rate: γ_peak, the inner step length [nexus, nexus_unnormalized (an SGD learning
      rate there), nexus_muon, nexus_first_order, order_free].
    gamma_schedule: ``"tied"`` (γ_t = γ·η_t/η_peak, ``tied_inner_learning_rate``) or ``"constant"``.
    normalize: ``"global"``, ``"leaf"`` or ``"none"`` [nexus, nexus_muon, nexus_first_order, order_free].
    pseudo_gradient_scale: ``"raw"`` or ``"inverse_gamma"`` [nexus, nexus_unnormalized, nexus_muon,
      nexus_first_order; order_free supports ``"raw"`` only].
    slow_step_size: Lookahead's α [lookahead].
    outer_learning_rate, outer_momentum: SNOO's Nesterov SGD on the pseudo-gradient (0.7 and 0.9, as
      DiLoCo) [snoo].
    rho: SAM's ascent step length (0.05, the paper's default) [sam].
    projection_order: ``"random"`` (the paper) or ``"fixed"`` [pcgrad].
    order: 2 keeps order-free Nexus's γ² term, 1 drops it [order_free].
    per_source_method, per_source_batch_size: ``"vmap"`` or ``"map"`` (with sources per chunk) for the
      per-source gradients [order_free].
  """

  name: str = "nexus"
  learning_rate: float = 1e-3
  schedule: str = "cosine"
  warmup_steps: int = 20
  final_lr_fraction: float = 0.1
  decay_fraction: float = 0.2
  decay_start: int | None = None
  b1: float = 0.9
  b2: float = 0.95
  eps: float = 1e-10
  weight_decay: float = 0.2
  clip_norm: float | None = 1.0
  inner_learning_rate: float = 0.01
  gamma_schedule: str = "tied"
  normalize: str = "global"
  pseudo_gradient_scale: str = "raw"
  slow_step_size: float = 0.5
  outer_learning_rate: float = 0.7
  outer_momentum: float = 0.9
  rho: float = 0.05
  projection_order: str = "random"
  order: int = 2
  per_source_method: str = "vmap"
  per_source_batch_size: int | None = None

  def __post_init__(self):
    check_optimizer_config(self)


# Methods whose pseudo-gradient is γ times a (sum of) normalized or SGD step(s): γ = 0 trains
# nothing.
USES_GAMMA = ("nexus", "nexus_unnormalized", "nexus_muon", "nexus_first_order", "order_free")
GAMMA_SCHEDULES = ("tied", "constant")


def check_optimizer_config(config: OptimizerConfig) -> None:
  """One-line errors for values no method should train with (each factory checks the rest)."""
  unbounded = float("inf")
  checks.check_choice("opt.name", config.name, METHODS)
  checks.check_choice("opt.schedule", config.schedule, schedules.SCHEDULES)
  checks.check_choice("opt.gamma_schedule", config.gamma_schedule, GAMMA_SCHEDULES)
  checks.check_scalar_in_range(
    "opt.learning_rate", config.learning_rate, 0.0, unbounded, closed="neither"
  )
  checks.check_static_int("opt.warmup_steps", config.warmup_steps, 0)
  checks.check_scalar_in_range("opt.final_lr_fraction", config.final_lr_fraction, 0.0, 1.0)
  checks.check_scalar_in_range("opt.decay_fraction", config.decay_fraction, 0.0, 1.0)
  if config.decay_start is not None:
    checks.check_static_int("opt.decay_start", config.decay_start, 0)
  for name in ("b1", "b2"):
    checks.check_scalar_in_range(f"opt.{name}", getattr(config, name), 0.0, 1.0, closed="left")
  for name in ("eps", "weight_decay", "slow_step_size", "outer_learning_rate", "rho"):
    checks.check_scalar_in_range(
      f"opt.{name}", getattr(config, name), 0.0, unbounded, closed="left"
    )
  checks.check_scalar_in_range("opt.outer_momentum", config.outer_momentum, 0.0, 1.0, closed="left")
  if config.clip_norm is not None:
    checks.check_scalar_in_range(
      "opt.clip_norm",
      config.clip_norm,
      0.0,
      unbounded,
      closed="left",
      fix="pass None or 0 to disable clipping.",
    )
  checks.check_choice("opt.normalize", config.normalize, NORMALIZATIONS)
  checks.check_choice(
    "opt.pseudo_gradient_scale", config.pseudo_gradient_scale, PSEUDO_GRADIENT_SCALES
  )
  checks.check_choice("opt.projection_order", config.projection_order, PROJECTION_ORDERS)
  checks.check_choice("opt.order", config.order, ORDERS)
  checks.check_choice("opt.per_source_method", config.per_source_method, PER_SOURCE_METHODS)
  if config.per_source_batch_size is not None:
    checks.check_static_int("opt.per_source_batch_size", config.per_source_batch_size, 1)
  gamma_is_used = config.name in USES_GAMMA and not (
    config.name == "nexus_first_order" and config.pseudo_gradient_scale == "inverse_gamma"
  )
  if gamma_is_used:
    checks.check_scalar_in_range(
      "opt.inner_learning_rate",
      config.inner_learning_rate,
      0.0,
      unbounded,
      closed="neither",
      fix=f"γ = 0 makes {config.name} train nothing; pass the inner step length γ > 0.",
    )
  if config.name == "order_free" and config.pseudo_gradient_scale != "raw":
    raise ValueError(
      f"opt.pseudo_gradient_scale={config.pseudo_gradient_scale!r}: order_free supports 'raw' only."
    )


class Rates(NamedTuple):
  """What ``build`` resolves from the config and the run: the schedules, K and the seed."""

  learning_rate: ScalarOrSchedule
  inner_learning_rate: ScalarOrSchedule
  num_inner_steps: int
  seed: int


def _clipped(
  config: OptimizerConfig, tx: optax.GradientTransformation
) -> optax.GradientTransformation:
  """``tx`` preceded by global-norm clipping at ``config.clip_norm`` (none when None or 0)."""
  if not config.clip_norm:
    return tx
  return optax.chain(optax.clip_by_global_norm(config.clip_norm), tx)


def _adamw(
  config: OptimizerConfig, learning_rate: ScalarOrSchedule
) -> optax.GradientTransformation:
  """Clipped AdamW: the baseline's optimizer, and the outer optimizer of the Nexus family."""
  adamw = optax.adamw(
    learning_rate, b1=config.b1, b2=config.b2, eps=config.eps, weight_decay=config.weight_decay
  )
  return _clipped(config, adamw)


def _accumulated_adamw(config: OptimizerConfig, rates: Rates):
  return microbatches.accumulate_gradients(
    _adamw(config, rates.learning_rate), rates.num_inner_steps
  )


def _nexus_with(config, rates, outer: optax.GradientTransformation, normalize: str):
  return nexus(
    outer,
    rates.inner_learning_rate,
    num_inner_steps=rates.num_inner_steps,
    normalize=normalize,
    pseudo_gradient_scale=config.pseudo_gradient_scale,
  )


def _nexus(config: OptimizerConfig, rates: Rates):
  return _nexus_with(config, rates, _adamw(config, rates.learning_rate), config.normalize)


def _nexus_unnormalized(config: OptimizerConfig, rates: Rates):
  return _nexus_with(config, rates, _adamw(config, rates.learning_rate), "none")


def _nexus_muon(config: OptimizerConfig, rates: Rates):
  muon = optax.contrib.muon(
    rates.learning_rate,
    eps=config.eps,
    weight_decay=config.weight_decay,
    adam_b1=config.b1,
    adam_b2=config.b2,
    adam_weight_decay=config.weight_decay,
    consistent_rms=MUON_CONSISTENT_RMS,
  )
  return _nexus_with(config, rates, _clipped(config, muon), config.normalize)


def _nexus_first_order(config: OptimizerConfig, rates: Rates):
  """γ Σ_k g_k/‖g_k‖ at θ; "inverse_gamma" feeds the plain sum."""
  gamma = 1.0 if config.pseudo_gradient_scale == "inverse_gamma" else rates.inner_learning_rate
  tx = first_order_nexus(_adamw(config, rates.learning_rate), gamma, normalize=config.normalize)
  return microbatches.stacked_gradients(tx, rates.num_inner_steps)


def _order_free(config: OptimizerConfig, rates: Rates):
  return order_free_nexus(
    _adamw(config, rates.learning_rate),
    rates.inner_learning_rate,
    num_inner_steps=rates.num_inner_steps,
    num_sources=rates.num_inner_steps,
    order=config.order,
    normalize=config.normalize,
    method=config.per_source_method,
    batch_size=config.per_source_batch_size,
  )


def _inner_adamw(config: OptimizerConfig, rates: Rates) -> optax.GradientTransformation:
  """Clipped AdamW for K inner steps per outer step: a schedule is read at inner_count // K."""
  learning_rate = rates.learning_rate
  assert callable(learning_rate)  # build() passes the schedule
  return _adamw(config, inner_call_schedule(learning_rate, rates.num_inner_steps))


def _lookahead(config: OptimizerConfig, rates: Rates):
  return lookahead(
    _inner_adamw(config, rates),
    num_inner_steps=rates.num_inner_steps,
    slow_step_size=config.slow_step_size,
  )


def _snoo(config: OptimizerConfig, rates: Rates):
  return snoo(
    _inner_adamw(config, rates),
    num_inner_steps=rates.num_inner_steps,
    outer_learning_rate=config.outer_learning_rate,
    outer_momentum=config.outer_momentum,
  )


def _sam(config: OptimizerConfig, rates: Rates):
  return microbatch_sam(
    _adamw(config, rates.learning_rate), rho=config.rho, num_microbatches=rates.num_inner_steps
  )


def _pcgrad(config: OptimizerConfig, rates: Rates):
  # The mean keeps AdamW accumulation's scale (equal to it when no pair conflicts), so clip_norm
  # means the same as for the baseline; the paper's sum differs by the factor K only.
  tx = pcgrad(
    _adamw(config, rates.learning_rate),
    order=config.projection_order,
    seed=rates.seed,
    reduction="mean",
  )
  return microbatches.stacked_gradients(tx, rates.num_inner_steps)


class Method(NamedTuple):
  """A registered optimizer: ``factory(config, rates) -> tx`` and a one-line summary."""

  factory: Callable[[OptimizerConfig, Rates], optax.GradientTransformationExtraArgs]
  summary: str


METHODS = {
  "adamw": Method(_accumulated_adamw, "AdamW on the mean of the K micro-batch gradients at θ"),
  "nexus": Method(_nexus, "K normalized inner steps of length γ, AdamW on θ − φ"),
  "nexus_first_order": Method(
    _nexus_first_order, "Nexus's γ→0 limit: AdamW on γ Σ_k g_k/‖g_k‖ at θ"
  ),
  "nexus_unnormalized": Method(
    _nexus_unnormalized, "Fish-like: K plain SGD inner steps of rate γ, AdamW on θ − φ"
  ),
  "nexus_muon": Method(_nexus_muon, "Nexus with Muon (AdamW for non-2D params) as the outer"),
  "order_free": Method(_order_free, "Nexus's update averaged over source orders, to O(γ²)"),
  "lookahead": Method(_lookahead, "K AdamW steps, then θ ← θ + α(φ − θ)"),
  "snoo": Method(_snoo, "K AdamW steps, then Nesterov SGD on θ − φ"),
  "sam": Method(_sam, "AdamW on the mean gradient at θ + ρ ḡ/‖ḡ‖ (optax.contrib.sam)"),
  "pcgrad": Method(_pcgrad, "AdamW on the mean of PCGrad-projected micro-batch gradients"),
}


def inner_learning_rate(config: OptimizerConfig, learning_rate: optax.Schedule) -> ScalarOrSchedule:
  """γ as configured: tied to the outer schedule (γ_t = γ·η_t/η_peak) or constant."""
  if config.gamma_schedule == "constant":
    return float(config.inner_learning_rate)
  return tied_inner_learning_rate(
    float(config.inner_learning_rate), learning_rate, float(config.learning_rate)
  )


def build(
  config: OptimizerConfig, *, num_inner_steps: int, total_steps: int, seed: int = 0
) -> optax.GradientTransformationExtraArgs:
  """Returns the optimizer ``config.name``, called as the module docstring says.

  Args:
    config: the ``opt`` section (checked when it was built).
    num_inner_steps: K, the micro-batches per outer step (every method consumes K per step).
    total_steps: the run's outer steps, the length of the learning-rate schedule.
    seed: seed of the methods with randomness (PCGrad's projection orders).

  Raises:
    ValueError / TypeError: eagerly, for K < 1 or a schedule that does not fit ``total_steps``.
  """
  checks.check_num_inner_steps(num_inner_steps)
  learning_rate = schedules.learning_rate_schedule(config, total_steps)
  rates = Rates(
    learning_rate=learning_rate,
    inner_learning_rate=inner_learning_rate(config, learning_rate),
    num_inner_steps=num_inner_steps,
    seed=seed,
  )
  return METHODS[config.name].factory(config, rates)
