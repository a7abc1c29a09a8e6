"""bench/peer_gap.py and bench/fused_projections.py compute what they say they time."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bench import fused_projections
from bench import model_vs_peer
from bench import peer_gap
from nexus.model import layers

SHAPE = dataclasses.replace(model_vs_peer.SHAPES["tiny"], num_layers=1, batch=2, seq_len=16)


def first_loss(variant: str) -> float:
  tokens = jnp.asarray(np.random.default_rng(0).integers(1, SHAPE.vocab_size, (2, 17)), jnp.int32)
  with peer_gap.patched(peer_gap.VARIANTS[variant]):
    step, state = model_vs_peer.our_step(model_vs_peer.our_config(SHAPE, "float32"))
    _, loss = step(state, tokens)
  return float(loss)


def test_each_variant_changes_only_its_piece_and_restores_the_model():
  original = (layers.apply_rotary, layers.RMSNorm.__call__, model_vs_peer.mean_token_loss)
  without_rotary = first_loss("rotary off")
  assert without_rotary != first_loss("ours")
  # In float32 the norm variant and nanodo's loss compute the same numbers as ours.
  np.testing.assert_allclose(first_loss("all three"), without_rotary, rtol=1e-6)
  assert (layers.apply_rotary, layers.RMSNorm.__call__, model_vs_peer.mean_token_loss) == original


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_and_separate_projections_agree(dtype):
  runners = fused_projections.projection_steps(SHAPE, dtype)
  (separate_loss, separate_grads), (fused_loss, fused_grads) = (
    runners["separate"](),
    runners["fused"](),
  )
  tolerance = 1e-5 if dtype == "float32" else 2e-2
  np.testing.assert_allclose(fused_loss, separate_loss, rtol=tolerance)
  for name in ("qkv", "gate_up"):
    stacked = jnp.stack(separate_grads[name], axis=1)
    np.testing.assert_allclose(fused_grads[name], stacked, rtol=tolerance, atol=tolerance)
  assert jax.tree.structure(fused_grads) != jax.tree.structure(separate_grads)
