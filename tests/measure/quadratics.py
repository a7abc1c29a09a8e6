"""Quadratic sources L_k(θ) = ½‖θ − c_k‖² over a two-leaf parameter tree: every measurement in closed form.

∇L_k(θ) = θ − c_k, and plain SGD with learning rate η for n steps gives θ_n = c_k + (1 − η)ⁿ (θ −
c_k). A batch is ``{"center": tree}``; averaging batches whose centers average to c_k averages the
gradients too.
"""

import jax
import jax.numpy as jnp
import numpy as np


def loss_fn(params, batch):
  return 0.5 * sum(
    jnp.sum((p - c) ** 2) for p, c in zip(jax.tree.leaves(params), jax.tree.leaves(batch["center"]))
  )


def tree(vector, dtype=jnp.float32):
  """A length-7 vector as the params tree {"a": [3], "b": [2, 2]}."""
  vector = np.asarray(vector, np.float64)
  return {"a": jnp.asarray(vector[:3], dtype), "b": jnp.asarray(vector[3:].reshape(2, 2), dtype)}


def flat(params):
  return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree.leaves(params)])


def batches(centers, offsets=None):
  """``{source_k: [{"center": c_k + e_n} for e_n in offsets]}`` (offsets None: one batch at c_k)."""
  offsets = [np.zeros(7)] if offsets is None else offsets
  return {
    f"s{k}": [{"center": tree(np.asarray(c) + np.asarray(e))} for e in offsets]
    for k, c in enumerate(centers)
  }
