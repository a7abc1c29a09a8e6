"""Fish (Shi et al. 2021): unnormalized inner SGD steps across sources, then an interpolation.

Reference: Y. Shi, J. Seely, P. H. S. Torr, N. Siddharth, A. Hannun, N. Usunier, G. Synnaeve,
"Gradient Matching for Domain Generalization", ICLR 2022, arXiv:2104.09937 (Algorithm 1)::

  φ ← θ;  for each micro-batch m = 1..K:  φ ← φ − α ∇L_m(φ);   θ ← θ + ε (φ − θ)

This is Nexus (``nexus.optim.nexus``) with ``normalize="none"`` (plain SGD inner steps of learning
rate α = γ) and SGD with learning rate ε as the outer optimizer on the raw pseudo-gradient ĝ = θ −
φ, since θ − ε ĝ = θ + ε (φ − θ). To second order in α, Fish's update, like Nexus's, ascends the
inner products between the sources' gradients; Nexus normalizes each step, Fish does not. The
registry's ``nexus_unnormalized`` ablation keeps Nexus's AdamW outer optimizer instead of the
interpolation.
"""

import optax

from nexus.optim import checks
from nexus.optim._nexus import ScalarOrSchedule
from nexus.optim._nexus import nexus


def fish(
  inner_learning_rate: ScalarOrSchedule,
  meta_step_size: float,
  *,
  num_inner_steps: int,
  mode: str = "opaque",
) -> optax.GradientTransformationExtraArgs:
  """Fish: K unnormalized SGD steps of learning rate α, then θ ← θ + ε(φ − θ).

  Args:
    inner_learning_rate: α ≥ 0, a scalar or a schedule of the outer step count.
    meta_step_size: ε ∈ (0, 1], the interpolation factor (a schedule of the outer step count is
      accepted as is).
    num_inner_steps: K ≥ 1 (one step per source or micro-batch), static.
    mode: ``"opaque"`` or ``"transparent"``, as in ``nexus.optim.nexus``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``two_loop.TwoLoopState``.
  """
  checks.check_scalar_in_range("meta_step_size", meta_step_size, 0.0, 1.0, closed="right")
  return nexus(
    optax.sgd(meta_step_size),
    inner_learning_rate,
    num_inner_steps=num_inner_steps,
    normalize="none",
    pseudo_gradient_scale="raw",
    mode=mode,
  )
