"""Small multi-source problems and the one direct reference loop of the two-loop methods (Nexus,
Lookahead, SNOO, Fish), shared by the optimizer tests."""

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


def reference_two_loop(
  params,
  num_inner_steps,
  num_outer_steps,
  inner_step,
  outer_step,
  inner_state=None,
  outer_state=None,
):
  """The two-loop algorithm of docs/nexus-algorithm.md written as plainly as possible (Python loops).

  Each outer step t starts φ at θ, takes K inner steps ``φ, inner_state = inner_step(t, φ, ∇L_s(φ),
  inner_state)`` on the sources of ``source_of``, then ``θ, outer_state = outer_step(t, θ, θ − φ,
  outer_state)``. The methods differ only in these two rules (Nexus, Lookahead, SNOO, Fish).
  Returns (θ, outer_state).
  """
  theta = params
  for t in range(num_outer_steps):
    phi = theta
    for m in range(num_inner_steps):
      grad = jax.grad(source_loss)(phi, source_of(t, m, num_inner_steps))
      phi, inner_state = inner_step(t, phi, grad, inner_state)
    pseudo_gradient = jax.tree.map(lambda a, b: a - b, theta, phi)
    theta, outer_state = outer_step(t, theta, pseudo_gradient, outer_state)
  return theta, outer_state


def sgd_rule(learning_rate, normalize="none"):
  """An inner or outer rule: x ← x − lr(t) · normalized(g); ``learning_rate`` a number or schedule."""

  def step(t, x, grad, state):
    lr = learning_rate(t) if callable(learning_rate) else learning_rate
    return jax.tree.map(lambda p, d: p - lr * d, x, _normalized(grad, normalize)), state

  return step


def optax_rule(optimizer):
  """An inner or outer rule that applies an optax optimizer (its state threaded through the loop)."""

  def step(t, x, grad, state):
    del t
    updates, state = optimizer.update(grad, state, x)
    return jax.tree.map(lambda p, u: p + u, x, updates), state

  return step


def reference_nexus(
  params,
  outer,
  gamma,
  num_inner_steps,
  num_outer_steps,
  normalize="global",
  pseudo_gradient_scale="raw",
):
  """Nexus: normalized SGD steps of γ inside, the optax optimizer ``outer`` on the pseudo-gradient
  (divided by γ with ``pseudo_gradient_scale="inverse_gamma"``)."""
  gamma_at = lambda t: gamma(t) if callable(gamma) else gamma
  apply_outer = optax_rule(outer)

  def outer_step(t, theta, pseudo_gradient, state):
    if pseudo_gradient_scale == "inverse_gamma":
      pseudo_gradient = jax.tree.map(lambda g: g / gamma_at(t), pseudo_gradient)
    return apply_outer(t, theta, pseudo_gradient, state)

  return reference_two_loop(
    params,
    num_inner_steps,
    num_outer_steps,
    sgd_rule(gamma_at, normalize),
    outer_step,
    outer_state=outer.init(params),
  )
