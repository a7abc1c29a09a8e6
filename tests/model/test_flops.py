"""Model FLOPs: the formula agrees with XLA's count of the compiled training computation; device peaks."""

from types import SimpleNamespace

from flax import nnx
import jax
import jax.numpy as jnp
import pytest

from nexus.model import Transformer
from nexus.model import count_params
from nexus.model import device_peak_flops
from nexus.model import flops
from nexus.model import mean_token_loss
from tests.model.fixtures import small_config

BATCH, SEQ_LEN = 2, 64


def xla_flops_per_token(config) -> float:
  """``cost_analysis`` FLOPs of loss + gradients, per token (layers unrolled: a scan body counts once)."""
  graphdef, params = nnx.split(nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0))))
  grads = jax.value_and_grad(lambda p, tokens: mean_token_loss(nnx.merge(graphdef, p), tokens))
  tokens = jax.ShapeDtypeStruct((BATCH, SEQ_LEN + 1), jnp.int32)
  cost = jax.jit(grads).lower(params, tokens).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return cost["flops"] / (BATCH * SEQ_LEN)


@pytest.mark.parametrize("tie_embeddings", [True, False])
def test_formula_matches_xla_cost_analysis(tie_embeddings):
  # A large vocabulary, so that counting the untied input embedding as a matmul would be far off.
  config = small_config(
    vocab_size=512,
    d_model=64,
    num_heads=4,
    num_kv_heads=2,
    mlp_dim=192,
    max_seq_len=SEQ_LEN,
    tie_embeddings=tie_embeddings,
    scan_layers=False,
  )
  measured = xla_flops_per_token(config)
  formula = flops.model_flops_per_token(config, SEQ_LEN)
  assert abs(formula / measured - 1) < 0.06, (formula, measured)  # the rest is elementwise work
  naive = 6 * count_params(config) + (
    formula - 6 * flops.matmul_params(config)
  )  # every parameter a matmul
  if not tie_embeddings:
    assert naive / measured - 1 > 0.15, (naive, measured)


def test_matmul_params_skip_the_lookup_table_only():
  tied, untied = small_config(tie_embeddings=True), small_config(tie_embeddings=False)
  assert flops.matmul_params(tied) == flops.matmul_params(untied)
  norms = (2 * tied.num_layers + 1) * tied.d_model
  assert flops.matmul_params(tied) == count_params(tied) - norms
  assert (
    flops.matmul_params(untied) == count_params(untied) - norms - untied.vocab_size * untied.d_model
  )


@pytest.mark.parametrize(
  "kind, peak",
  [
    ("NVIDIA H100 80GB HBM3", 989e12),
    ("NVIDIA H100 PCIe", 756e12),
    ("NVIDIA H200", 989e12),
    ("NVIDIA A100-SXM4-80GB", 312e12),
    ("TPU v4", 275e12),
    ("TPU v5 lite", 197e12),
    ("TPU v5p", 459e12),
    ("TPU v6 lite", 918e12),
    ("cpu", None),
  ],
)
def test_device_peak_flops(kind, peak):
  assert device_peak_flops(SimpleNamespace(device_kind=kind)) == peak
