"""Lookahead and SNOO: K steps of any inner optimizer on fast weights, then an outer step on θ − φ.

References:
  M. R. Zhang, J. Lucas, G. Hinton, J. Ba, "Lookahead Optimizer: k steps forward, 1 step back",
  NeurIPS 2019, arXiv:1907.08610.
  D. Kallusky, V. Rao, V. Nandavanam, H.-J. M. Shi, "SNOO: Step-K Nesterov Outer Optimizer - The
  Surprising Effectiveness of Nesterov Momentum Applied to Pseudo-Gradients", arXiv:2510.15830 (2025).

One outer step t, with ĝ = θ − φ_K the pseudo-gradient::

  φ_0 ← θ;  φ_{m+1} ← φ_m + inner.update(∇L_m(φ_m))      m = 0..K−1 (e.g. AdamW steps)
  Lookahead:  θ ← θ + α (φ_K − θ) = θ − α ĝ               (SGD with learning rate α on ĝ)
  SNOO:       b ← μ b + ĝ;  θ ← θ − η (μ b + ĝ)           (Nesterov SGD on ĝ; μ = 0 is Lookahead)

Both are ``nexus.optim._two_loop.two_loop`` with a stateful inner optimizer. Unlike
``optax.lookahead``, whose params are a pair of fast and slow weights, the slow weights θ live in
the optimizer state (two_loop's float32 outer copy), so params stay a plain pytree and the trainer
needs no special case. The inner optimizer's state (moments, count) carries over from one outer step
to the next, as ``optax.lookahead`` does by default. Its count advances K times per outer step, so a
schedule written in outer steps must be read at ``count // K`` (``nexus.optim.registry`` does this).
"""

import optax

from nexus.optim import checks
from nexus.optim._two_loop import two_loop


def lookahead(
  inner: optax.GradientTransformation,
  *,
  num_inner_steps: int,
  slow_step_size: float = 0.5,
  mode: str = "opaque",
) -> optax.GradientTransformationExtraArgs:
  """Lookahead (Zhang et al. 2019) with the slow weights in the optimizer state.

  Args:
    inner: the fast optimizer (AdamW in the baselines); stateful transformations are fine, and those
      that do not take the ``outer_count`` extra argument are wrapped by ``two_loop``.
    num_inner_steps: k ≥ 1 fast steps per slow step, static.
    slow_step_size: α ∈ (0, 1], the interpolation θ ← θ + α(φ − θ) (a schedule of the slow step count
      is accepted as is).
    mode: ``"opaque"`` (one ``update(params, state, params, loss_fn=...)`` per slow step) or
      ``"transparent"`` (one call per fast step); see ``nexus.optim._two_loop``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``two_loop.TwoLoopState``.
  """
  checks.check_scalar_in_range("slow_step_size", slow_step_size, 0.0, 1.0, closed="right")
  return two_loop(inner, optax.sgd(slow_step_size), num_inner_steps, mode=mode)


def snoo(
  inner: optax.GradientTransformation,
  *,
  num_inner_steps: int,
  outer_learning_rate: float,
  outer_momentum: float = 0.9,
  mode: str = "opaque",
) -> optax.GradientTransformationExtraArgs:
  """SNOO (Kallusky et al. 2025): Nesterov momentum SGD on the pseudo-gradient of K inner steps.

  Args:
    inner: the inner optimizer (AdamW or Muon in the paper); its state persists across outer steps.
    num_inner_steps: K ≥ 1, static.
    outer_learning_rate: η > 0 (or a schedule of the outer step count); DiLoCo, whose single-worker
      case SNOO is, uses 0.7.
    outer_momentum: μ ∈ [0, 1); μ = 0 reduces to Lookahead with α = η.
    mode: ``"opaque"`` or ``"transparent"``, as in ``lookahead``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``two_loop.TwoLoopState``.
  """
  checks.check_scalar_in_range(
    "outer_learning_rate", outer_learning_rate, 0.0, float("inf"), closed="right"
  )
  checks.check_scalar_in_range("outer_momentum", outer_momentum, 0.0, 1.0, closed="left")
  outer = optax.sgd(outer_learning_rate, momentum=outer_momentum, nesterov=True)
  return two_loop(inner, outer, num_inner_steps, mode=mode)
