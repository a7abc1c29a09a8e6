"""SAM over the K micro-batches of an outer step, in the two-loop methods' opaque calling convention.

Reference: P. Foret, A. Kleiner, H. Mobahi, B. Neyshabur, "Sharpness-Aware Minimization for Efficiently
Improving Generalization", ICLR 2021, arXiv:2010.01412. With ḡ(θ) the mean gradient of the K
micro-batches::

  ε = ρ ḡ(θ) / ‖ḡ(θ)‖;   θ ← θ + optimizer.update(ḡ(θ + ε))

The SAM step itself is ``optax.contrib.sam`` (opaque mode, ``sync_period=2``, adversarial optimizer
``chain(optax.contrib.normalize(), optax.sgd(ρ))``, i.e. the paper's single normalized ascent step).
This module only adapts its calling convention to the one Nexus, Lookahead and SNOO use:
``update(params, state, params, grad_fn=grad_fn)`` with ``grad_fn(params, i)`` the gradient of
micro-batch ``i`` (or ``value_and_grad_fn``), so the same trainer step drives all of them. The mean
over the K micro-batches is taken at θ and again at θ + ε: SAM costs 2K gradient evaluations per outer
step for the same tokens. As in ``optax.contrib.normalize``, a zero mean gradient gives NaN.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from nexus.optim import tree_utils
from nexus.optim.lookahead import check_in_range
from nexus.optim.two_loop import check_grad_fn_output


class SAMDiagnostics(NamedTuple):
  """Measurements of the last update at θ (read with ``optax.tree.get(state, "diagnostics")``).

  Attributes:
    inner_losses: float32[K], the loss of each micro-batch at θ when given a ``value_and_grad_fn``;
      NaN with a ``grad_fn``.
    inner_grad_norms: float32[K], the L2 norm of each micro-batch gradient at θ (whole tree).
  """

  inner_losses: jax.Array
  inner_grad_norms: jax.Array


class MicrobatchSAMState(NamedTuple):
  """State of ``microbatch_sam``: the ``optax.contrib.sam`` state and the diagnostics."""

  sam_state: Any
  diagnostics: SAMDiagnostics


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
    num_microbatches: K ≥ 1, the micro-batches ``grad_fn(params, i)`` serves (``i = 0..K−1``), static.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose state is a ``MicrobatchSAMState``; call it as
    ``update(params, state, params, grad_fn=grad_fn)`` (the incoming updates are not used).
  """
  check_in_range("rho", rho, 0.0, float("inf"), closed="right")
  if isinstance(num_microbatches, bool) or not isinstance(num_microbatches, int) or num_microbatches < 1:
    raise ValueError(f"num_microbatches must be a Python int >= 1, got {num_microbatches!r}.")
  k = int(num_microbatches)
  adversarial = optax.chain(optax.contrib.normalize(), optax.sgd(rho))
  sam = optax.contrib.sam(optimizer, adversarial, sync_period=2, opaque_mode=True)

  def init_fn(params):
    return MicrobatchSAMState(
        sam_state=sam.init(params),
        diagnostics=SAMDiagnostics(
            inner_losses=jnp.full([k], jnp.nan, jnp.float32), inner_grad_norms=jnp.zeros([k], jnp.float32)
        ),
    )

  def update_fn(updates, state, params=None, *, grad_fn=None, value_and_grad_fn=None, **extra_args):
    del updates, extra_args
    if params is None:
      raise ValueError("microbatch_sam needs params in update(updates, state, params, grad_fn=...).")
    if (grad_fn is None) == (value_and_grad_fn is None):
      raise ValueError(
          "microbatch_sam needs exactly one of grad_fn(params, i) or value_and_grad_fn(params, i) for "
          "micro-batches i = 0..K-1."
      )
    if grad_fn is not None:
      nan = jnp.full([], jnp.nan, jnp.float32)
      value_and_grad_fn = lambda p, i: (nan, grad_fn(p, i))
    check_grad_fn_output(lambda p, i: value_and_grad_fn(p, i)[1], params)

    def mean_gradient(point):
      """Mean gradient of the K micro-batches at ``point``, with each one's loss and gradient norm."""

      def accumulate(total, i):
        loss, grad = value_and_grad_fn(point, i)
        grad = tree_utils.at_least_float32(grad)
        return optax.tree.add(total, grad), (jnp.asarray(loss, jnp.float32), tree_utils.tree_norm32(grad))

      total, (losses, norms) = jax.lax.scan(
          accumulate, tree_utils.at_least_float32(optax.tree.zeros_like(point)), jnp.arange(k)
      )
      return optax.tree.cast_like(optax.tree.scale(1.0 / k, total), point), losses, norms

    grad, losses, norms = mean_gradient(params)
    new_updates, sam_state = sam.update(
        grad, state.sam_state, params, grad_fn=lambda point, _: mean_gradient(point)[0]
    )
    diagnostics = SAMDiagnostics(inner_losses=losses, inner_grad_norms=norms)
    return new_updates, MicrobatchSAMState(sam_state=sam_state, diagnostics=diagnostics)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
