"""One table of every optimizer the trainer can run: Nexus, its ablations and its baselines.

``build(name, **hyperparameters) -> tx``. The hyperparameters are one flat namespace shared by every
method (the fields of ``Hyperparameters``), so a single config section fits them all: each method reads
the ones it uses and ignores the rest. Every value is checked here, as strictly as the optimizer API
checks it and more where a value would silently train nothing (γ = 0), with one-line errors.

Every method follows one calling convention (``nexus.optim.microbatches``)::

  updates, state = tx.update(params, state, params, loss_fn=loss_fn)

with ``loss_fn(params, i)`` the loss of micro-batch ``i`` of the K of one outer step; each method decides
where to evaluate which micro-batch, and every one consumes the same K micro-batches per step and keeps
their losses in ``optax.tree.get(state, "inner_losses")`` (at θ for the methods that evaluate there, at
the inner points φ_k for the two-loop methods).

Clipping at ``clip_norm`` (the paper's AdamW baseline clips the mean gradient at 1.0) is applied to
what AdamW (or Muon) receives: the mean gradient (``adamw``), the pseudo-gradient inside the outer chain
(the Nexus family), the combined direction (``pcgrad``, ``nexus_first_order``), the gradient at the
perturbed point (``sam``), and each raw inner gradient for ``lookahead`` and ``snoo``, whose AdamW runs
inside the loop (their pseudo-gradient is a K-step AdamW displacement fed to an interpolation or to
Nesterov SGD, and clipping it would change the outer step length, not guard against spikes).
"""

from collections.abc import Callable
import dataclasses
from typing import NamedTuple

import optax

from nexus.optim import checks
from nexus.optim import microbatches
from nexus.optim._lookahead import lookahead
from nexus.optim._lookahead import snoo
from nexus.optim._nexus import PSEUDO_GRADIENT_SCALES
from nexus.optim._nexus import ScalarOrSchedule
from nexus.optim._nexus import nexus
from nexus.optim._order_free import order_free_nexus
from nexus.optim._pcgrad import pcgrad
from nexus.optim._per_source import first_order_nexus
from nexus.optim._sam import microbatch_sam
from nexus.optim.normalize import NORMALIZATIONS

# Muon's updates of 2D params are rescaled to AdamW's typical RMS (Liu et al. 2025, "Muon is Scalable
# for LLM Training", arXiv:2502.16982), so nexus_muon shares AdamW's learning rate and weight decay.
MUON_CONSISTENT_RMS = 0.2


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
  """Every hyperparameter of every registered method (the methods using each in brackets).

  Attributes:
    learning_rate: η, a float or a schedule of the outer step count [all]; for lookahead and snoo it is
      the inner AdamW's, read at ``inner_count // K`` so the schedule keeps counting outer steps.
    num_inner_steps: K, the micro-batches per outer step [two-loop methods, sam, order_free; the
      others receive the K micro-batches' gradients from the trainer, so K is required for every method].
    b1, b2, eps, weight_decay: AdamW's, defaults as ``optax.adamw`` [all; Muon's Adam part and eps too].
    clip_norm: global-norm clipping threshold (module docstring); None or 0 disables it [all].
    inner_learning_rate: γ, a float or a schedule of the outer step count (see
      ``tied_inner_learning_rate``) [nexus, nexus_unnormalized (an SGD learning rate there),
      nexus_muon, nexus_first_order, order_free].
    normalize: ``"global"``, ``"leaf"`` or ``"none"`` [nexus, nexus_muon, nexus_first_order, order_free].
    pseudo_gradient_scale: ``"raw"`` or ``"inverse_gamma"`` [nexus, nexus_unnormalized, nexus_muon,
      nexus_first_order; order_free supports ``"raw"`` only].
    slow_step_size: Lookahead's α [lookahead].
    outer_learning_rate, outer_momentum: SNOO's Nesterov SGD on the pseudo-gradient (0.7 and 0.9, as
      DiLoCo) [snoo].
    rho: SAM's ascent step length (0.05, the paper's default) [sam].
    projection_order: ``"random"`` (the paper) or ``"fixed"`` [pcgrad].
    seed: seed of PCGrad's random projection orders [pcgrad].
    order: 2 keeps order-free Nexus's γ² term, 1 drops it [order_free].
    per_source_method, per_source_batch_size: ``"vmap"`` or ``"map"`` (with sources per chunk) for the
      per-source gradients [order_free].
  """

  learning_rate: ScalarOrSchedule
  num_inner_steps: int
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 1e-4
  clip_norm: float | None = 1.0
  inner_learning_rate: ScalarOrSchedule | None = None
  normalize: str = "global"
  pseudo_gradient_scale: str = "raw"
  slow_step_size: float = 0.5
  outer_learning_rate: float = 0.7
  outer_momentum: float = 0.9
  rho: float = 0.05
  projection_order: str = "random"
  seed: int = 0
  order: int = 2
  per_source_method: str = "vmap"
  per_source_batch_size: int | None = None


HYPERPARAMETERS = tuple(field.name for field in dataclasses.fields(Hyperparameters))
REQUIRED = tuple(
  field.name
  for field in dataclasses.fields(Hyperparameters)
  if field.default is dataclasses.MISSING
)


# Methods whose pseudo-gradient is γ times a (sum of) normalized or SGD step(s): γ = 0 trains nothing.
USES_GAMMA = ("nexus", "nexus_unnormalized", "nexus_muon", "nexus_first_order", "order_free")


def check_hyperparameters(name: str, hp: Hyperparameters) -> None:
  """One-line errors for values no method should train with (each method's factory checks the rest)."""
  unbounded = float("inf")
  checks.check_num_inner_steps(hp.num_inner_steps)
  checks.check_scalar_in_range("learning_rate", hp.learning_rate, 0.0, unbounded, closed="neither")
  checks.check_scalar_in_range("b1", hp.b1, 0.0, 1.0, closed="left")
  checks.check_scalar_in_range("b2", hp.b2, 0.0, 1.0, closed="left")
  checks.check_scalar_in_range("eps", hp.eps, 0.0, unbounded, closed="left")
  checks.check_scalar_in_range("weight_decay", hp.weight_decay, 0.0, unbounded, closed="left")
  if hp.clip_norm is not None:
    checks.check_scalar_in_range(
      "clip_norm",
      hp.clip_norm,
      0.0,
      unbounded,
      closed="left",
      fix="pass None or 0 to disable clipping.",
    )
  checks.check_choice("normalize", hp.normalize, NORMALIZATIONS)
  checks.check_choice("pseudo_gradient_scale", hp.pseudo_gradient_scale, PSEUDO_GRADIENT_SCALES)
  if name in USES_GAMMA and not (
    name == "nexus_first_order" and hp.pseudo_gradient_scale == "inverse_gamma"
  ):
    if hp.inner_learning_rate is None:
      raise ValueError(f"optimizer {name!r} needs inner_learning_rate (γ).")
    checks.check_scalar_in_range(
      "inner_learning_rate",
      hp.inner_learning_rate,
      0.0,
      unbounded,
      closed="neither",
      fix=f"γ = 0 makes {name} train nothing; pass the inner step length γ > 0.",
    )


def _clipped(hp: Hyperparameters, tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """``tx`` preceded by global-norm clipping at ``hp.clip_norm`` (none when None or 0)."""
  if hp.clip_norm is None or hp.clip_norm == 0:
    return tx
  return optax.chain(optax.clip_by_global_norm(hp.clip_norm), tx)


def _adamw(hp: Hyperparameters) -> optax.GradientTransformation:
  """Clipped AdamW: the baseline's optimizer, and the outer optimizer of the Nexus family."""
  return _clipped(
    hp, optax.adamw(hp.learning_rate, b1=hp.b1, b2=hp.b2, eps=hp.eps, weight_decay=hp.weight_decay)
  )


def _accumulated_adamw(hp: Hyperparameters):
  return microbatches.accumulate_gradients(_adamw(hp), hp.num_inner_steps)


def _nexus_with(hp: Hyperparameters, outer: optax.GradientTransformation, normalize: str):
  return nexus(
    outer,
    hp.inner_learning_rate,
    num_inner_steps=hp.num_inner_steps,
    normalize=normalize,
    pseudo_gradient_scale=hp.pseudo_gradient_scale,
  )


def _nexus(hp: Hyperparameters):
  return _nexus_with(hp, _adamw(hp), hp.normalize)


def _nexus_unnormalized(hp: Hyperparameters):
  return _nexus_with(hp, _adamw(hp), "none")


def _nexus_muon(hp: Hyperparameters):
  muon = optax.contrib.muon(
    hp.learning_rate,
    eps=hp.eps,
    weight_decay=hp.weight_decay,
    adam_b1=hp.b1,
    adam_b2=hp.b2,
    adam_weight_decay=hp.weight_decay,
    consistent_rms=MUON_CONSISTENT_RMS,
  )
  return _nexus_with(hp, _clipped(hp, muon), hp.normalize)


def _nexus_first_order(hp: Hyperparameters):
  """γ Σ_k g_k/‖g_k‖ at θ; "inverse_gamma" feeds the plain sum."""
  gamma = 1.0 if hp.pseudo_gradient_scale == "inverse_gamma" else hp.inner_learning_rate
  tx = first_order_nexus(_adamw(hp), gamma, normalize=hp.normalize)
  return microbatches.stacked_gradients(tx, hp.num_inner_steps)


def _order_free(hp: Hyperparameters):
  if hp.pseudo_gradient_scale != "raw":
    raise ValueError(
      f"order_free supports pseudo_gradient_scale='raw' only, got {hp.pseudo_gradient_scale!r}."
    )
  return order_free_nexus(
    _adamw(hp),
    hp.inner_learning_rate,
    num_inner_steps=hp.num_inner_steps,
    num_sources=hp.num_inner_steps,
    order=hp.order,
    normalize=hp.normalize,
    method=hp.per_source_method,
    batch_size=hp.per_source_batch_size,
  )


def _inner_adamw(hp: Hyperparameters) -> optax.GradientTransformation:
  """Clipped AdamW for K inner steps per outer step: a schedule is read at inner_count // K."""
  learning_rate = hp.learning_rate
  if callable(learning_rate):
    schedule, k = learning_rate, hp.num_inner_steps
    learning_rate = lambda inner_count: schedule(inner_count // k)
  return _adamw(dataclasses.replace(hp, learning_rate=learning_rate))


def _lookahead(hp: Hyperparameters):
  return lookahead(
    _inner_adamw(hp), num_inner_steps=hp.num_inner_steps, slow_step_size=hp.slow_step_size
  )


def _snoo(hp: Hyperparameters):
  return snoo(
    _inner_adamw(hp),
    num_inner_steps=hp.num_inner_steps,
    outer_learning_rate=hp.outer_learning_rate,
    outer_momentum=hp.outer_momentum,
  )


def _sam(hp: Hyperparameters):
  return microbatch_sam(_adamw(hp), rho=hp.rho, num_microbatches=hp.num_inner_steps)


def _pcgrad(hp: Hyperparameters):
  # The mean keeps AdamW accumulation's scale (equal to it when no pair conflicts), so clip_norm means
  # the same as for the baseline; the paper's sum differs by the factor K only.
  tx = pcgrad(_adamw(hp), order=hp.projection_order, seed=hp.seed, reduction="mean")
  return microbatches.stacked_gradients(tx, hp.num_inner_steps)


class Method(NamedTuple):
  """A registered optimizer: ``factory(Hyperparameters) -> tx`` and a one-line summary."""

  factory: Callable[[Hyperparameters], optax.GradientTransformation]
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


def build(name: str, **hyperparameters) -> optax.GradientTransformationExtraArgs:
  """Returns the optimizer ``name`` (a key of ``METHODS``), called as the module docstring says.

  Args:
    name: the method.
    **hyperparameters: fields of ``Hyperparameters``; ``learning_rate`` and ``num_inner_steps`` are
      required, the others have defaults, and those ``name`` does not use are ignored.

  Raises:
    ValueError / TypeError: eagerly, for an unknown method or hyperparameter name, a missing required
      one, or an invalid value.
  """
  if name not in METHODS:
    raise ValueError(f"unknown optimizer {name!r}; pick one of {sorted(METHODS)}.")
  unknown = sorted(set(hyperparameters) - set(HYPERPARAMETERS))
  if unknown:
    raise ValueError(
      f"unknown hyperparameters {unknown} for optimizer {name!r}; known: {list(HYPERPARAMETERS)}."
    )
  missing = [key for key in REQUIRED if key not in hyperparameters]
  if missing:
    raise ValueError(f"optimizer {name!r} needs the hyperparameters {missing}.")
  hp = Hyperparameters(**hyperparameters)
  check_hyperparameters(name, hp)
  return METHODS[name].factory(hp)
