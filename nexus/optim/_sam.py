"""SAM over the K micro-batches of an outer step, in the two-loop methods' opaque calling convention.

Reference: P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for
Efficiently Improving Generalization", ICLR 2021, arXiv:2010.01412. With ḡ(θ) the mean gradient of
the K
micro-batches::

  ε = ρ ḡ(θ) / ‖ḡ(θ)‖;   θ ← θ + optimizer.update(ḡ(θ + ε))

The SAM step itself is ``optax.contrib.sam`` (opaque mode, ``sync_period=2``, adversarial optimizer
``chain(optax.contrib.normalize(), optax.sgd(ρ))``, i.e. the paper's single normalized ascent step).
This module only adapts its calling convention to the one every micro-batch optimizer here uses
(``nexus.optim.microbatches``): ``update(params, state, params, loss_fn=loss_fn)`` with
``loss_fn(params, i)`` the loss of micro-batch ``i``, so the same trainer step drives all of them.
The mean over the K micro-batches is taken at θ and again at θ + ε: SAM costs 2K gradient
evaluations per outer step for the same tokens. As in ``optax.contrib.normalize``, a zero mean
gradient gives NaN.
"""

from typing import Any
from typing import NamedTuple

import optax

from nexus.optim import checks
from nexus.optim import microbatches


class MicrobatchSAMState(NamedTuple):
  """State of ``microbatch_sam``: the ``optax.contrib.sam`` state and the losses and gradient norms of
  the micro-batches at θ (a ``microbatches.MicrobatchDiagnostics``)."""

  sam_state: Any
  diagnostics: microbatches.MicrobatchDiagnostics


def microbatch_sam(
  optimizer: optax.GradientTransformation,
  *,
  rho: float,
  num_microbatches: int,
) -> optax.GradientTransformationExtraArgs:
  """SAM on the mean gradient of ``num_microbatches`` micro-batches, via ``optax.contrib.sam``.

  Args:
    optimizer: the optimizer fed the gradient at the perturbed point (AdamW in the baselines); clipping
      belongs inside it.
    rho: ρ > 0, the length of the ascent step (0.05 in the paper).
    num_microbatches: K ≥ 1, the micro-batches ``loss_fn(params, i)`` serves (``i = 0..K−1``), static.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``MicrobatchSAMState``; call it as
    ``update(params, state, params, loss_fn=loss_fn)`` (see ``nexus.optim.microbatches``).
  """
  checks.check_transformation(optimizer, "optimizer")
  checks.check_scalar_in_range("rho", rho, 0.0, float("inf"), closed="right")
  checks.check_static_int("num_microbatches", num_microbatches, 1)
  k = int(num_microbatches)
  adversarial = optax.chain(optax.contrib.normalize(), optax.sgd(rho))
  sam = optax.contrib.sam(optimizer, adversarial, sync_period=2, opaque_mode=True)

  def init_fn(params):
    return MicrobatchSAMState(
      sam_state=sam.init(params), diagnostics=microbatches.initial_diagnostics(k)
    )

  def update_fn(
    updates, state, params=None, *, loss_fn=None, grad_fn=None, value_and_grad_fn=None, **extra_args
  ):
    del extra_args
    value_and_grad_fn = microbatches.resolve(
      "microbatch_sam",
      updates,
      params,
      loss_fn=loss_fn,
      grad_fn=grad_fn,
      value_and_grad_fn=value_and_grad_fn,
    )
    mean_at = lambda point: microbatches.mean_gradient(value_and_grad_fn, point, k)
    grad, losses, norms = mean_at(params)
    new_updates, sam_state = sam.update(
      grad, state.sam_state, params, grad_fn=lambda point, _: mean_at(point)[0]
    )
    diagnostics = microbatches.MicrobatchDiagnostics(inner_losses=losses, inner_grad_norms=norms)
    return new_updates, MicrobatchSAMState(sam_state=sam_state, diagnostics=diagnostics)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
