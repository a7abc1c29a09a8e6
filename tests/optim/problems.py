"""Small multi-source problems and a direct reference loop of Nexus, shared by the optimizer tests."""

import jax
import jax.numpy as jnp
import numpy as np

NUM_SOURCES = 3


def make_params(dtype=jnp.float64):
  return {
    "a": jnp.asarray([0.3, -0.2, 0.5], dtype),
    "b": jnp.asarray([[0.1, 0.4], [-0.3, 0.2]], dtype),
  }


def _targets(dtype):
  rng = np.random.default_rng(0)
  return [
    {"a": jnp.asarray(rng.normal(size=3), dtype), "b": jnp.asarray(rng.normal(size=(2, 2)), dtype)}
    for _ in range(NUM_SOURCES)
  ]


def source_loss(params, source):
  """A non-quadratic loss per source: weighted squares around a target plus a cosine ripple."""
  targets = _targets(params["a"].dtype)
  total = 0.0
  for s, target in enumerate(targets):
    value = sum(
      jnp.sum((1.0 + s) * (p - t) ** 2 + 0.3 * jnp.cos(2.0 * p + s))
      for p, t in zip(jax.tree.leaves(params), jax.tree.leaves(target))
    )
    total = total + jnp.where(source == s, value, 0.0)
  return total


def source_of(outer_step, inner_step, num_inner_steps):
  """The source visited at an inner step: a fixed, irregular order over the sources."""
  return (7 * (outer_step * num_inner_steps + inner_step) + outer_step) % NUM_SOURCES


def _normalized(grad, normalize):
  if normalize == "global":
    norm = jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(grad)))
    return jax.tree.map(lambda g: g / norm, grad)
  if normalize == "leaf":
    return jax.tree.map(lambda g: g / jnp.linalg.norm(g.ravel()), grad)
  return grad


def reference_nexus(
  params,
  outer,
  gamma,
  num_inner_steps,
  num_outer_steps,
  normalize="global",
  pseudo_gradient_scale="raw",
):
  """The algorithm of docs/nexus-algorithm.md written as plainly as possible (Python loops)."""
  theta = params
  outer_state = outer.init(theta)
  for t in range(num_outer_steps):
    gamma_t = gamma(t) if callable(gamma) else gamma
    phi = theta
    for m in range(num_inner_steps):
      grad = jax.grad(source_loss)(phi, source_of(t, m, num_inner_steps))
      step = _normalized(grad, normalize)
      phi = jax.tree.map(lambda p, d: p - gamma_t * d, phi, step)
    pseudo_gradient = jax.tree.map(lambda a, b: a - b, theta, phi)
    if pseudo_gradient_scale == "inverse_gamma":
      pseudo_gradient = jax.tree.map(lambda g: g / gamma_t, pseudo_gradient)
    updates, outer_state = outer.update(pseudo_gradient, outer_state, theta)
    theta = jax.tree.map(lambda p, u: p + u, theta, updates)
  return theta, outer_state
