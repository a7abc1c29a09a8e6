"""Masked next-token cross entropy: padding targets are ignored, everything is float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nexus.model import mean_token_loss
from nexus.model import next_token_loss
from nexus.model import per_row_loss

V = 7


def reference_losses(logits, targets):
  """Cross entropy of each position by the textbook formula, in float64."""
  logits = np.asarray(logits, np.float64)
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  return -np.take_along_axis(log_probs, np.asarray(targets)[..., None], -1)[..., 0]


def test_next_token_loss_masks_padding_targets():
  logits = jax.random.normal(jax.random.key(0), (2, 5, V))
  targets = jnp.array([[3, 1, 0, 0, 0], [2, 6, 5, 4, 1]])
  sums, counts = next_token_loss(logits, targets)
  expected = reference_losses(logits, targets) * (np.asarray(targets) != 0)
  np.testing.assert_allclose(sums, expected.sum(-1), rtol=1e-6)
  np.testing.assert_array_equal(counts, [2.0, 5.0])
  # Logits at padded positions do not matter.
  noisy = logits.at[0, 2:].set(100.0 * jax.random.normal(jax.random.key(1), (3, V)))
  np.testing.assert_array_equal(next_token_loss(noisy, targets)[0], sums)


def test_next_token_loss_upcasts_to_float32():
  logits = jax.random.normal(jax.random.key(0), (1, 4, V)).astype(jnp.bfloat16)
  sums, counts = next_token_loss(logits, jnp.array([[1, 2, 3, 4]]))
  assert sums.dtype == counts.dtype == jnp.float32
  np.testing.assert_allclose(
    sums, reference_losses(logits.astype(jnp.float32), [[1, 2, 3, 4]]).sum(-1), rtol=1e-6
  )


def test_next_token_loss_rejects_mismatched_shapes():
  with pytest.raises(ValueError, match="must agree"):
    next_token_loss(jnp.zeros((2, 5, V)), jnp.zeros((2, 4), jnp.int32))


def fixed_logits_model(logits):
  """A stand-in model returning fixed logits for any input of the right shape."""
  return lambda inputs: logits[:, : inputs.shape[1]]


def test_per_row_and_mean_token_loss():
  tokens = jnp.array([[1, 3, 4, 0, 0], [1, 2, 5, 6, 2], [1, 0, 0, 0, 0]])
  logits = jax.random.normal(jax.random.key(2), (3, 4, V))
  losses = reference_losses(logits, tokens[:, 1:])
  scored = np.asarray(tokens[:, 1:]) != 0
  model = fixed_logits_model(logits)
  rows = per_row_loss(model, tokens)
  assert rows.shape == (3,) and rows.dtype == jnp.float32
  np.testing.assert_allclose(rows[:2], [losses[0, :2].mean(), losses[1].mean()], rtol=1e-6)
  assert rows[2] == 0.0  # a row without targets contributes 0, not NaN
  np.testing.assert_allclose(mean_token_loss(model, tokens), losses[scored].mean(), rtol=1e-6)


def test_row_losses_reject_a_bad_batch():
  with pytest.raises(ValueError, match="length\\+1 >= 2"):
    per_row_loss(fixed_logits_model(jnp.zeros((2, 1, V))), jnp.ones((2, 1), jnp.int32))
