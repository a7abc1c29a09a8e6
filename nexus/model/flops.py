"""Model FLOPs per token and accelerator peaks: model FLOPs utilization (MFU) as in PaLM.

MFU = (model FLOPs per token x tokens per second) / peak FLOP/s (Chowdhery et al. 2022,
arXiv:2204.02311, appendix B). A training step costs 6 FLOPs per matmul weight per token (2 in the
forward pass, 4 in the backward pass: Kaplan et al. 2020, arXiv:2001.08361) plus the attention
scores and the weighted sum of values, 12 · layers · heads · head_dim · seq_len per token. The
attention term counts the full ``seq_len x seq_len`` score matrix, as PaLM does and as the
``einsum``/``xla`` attention paths compute it (a causal kernel skips about half of it).

Only matmul weights count: the input embedding is a table lookup (no FLOPs), norms' scales are
elementwise. The output projection is a matmul whether or not it is tied to the input embedding, so
a tied model counts its ``vocab x d_model`` matrix once (as the projection) and an untied one counts
the unembedding once and the embedding not at all.

Used by ``bench/train_step.py``, ``bench/gpu.py`` and the trainer's summary.
"""

import jax

from nexus.model.config import ModelConfig

# Dense bfloat16 peak FLOP/s per chip, from the vendors' datasheets; matched as substrings of
# ``device.device_kind`` (case-insensitive), first match wins, so the more specific names come
# first.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
  ("H100 PCIe", 756e12),
  ("H100", 989e12),  # SXM
  ("H200", 989e12),
  ("A100", 312e12),
  ("TPU v4", 275e12),
  ("TPU v5 lite", 197e12),  # v5e
  ("TPU v5e", 197e12),
  ("TPU v5p", 459e12),
  ("TPU v5", 459e12),
  ("TPU v6 lite", 918e12),  # v6e (Trillium)
  ("TPU v6e", 918e12),
)


def matmul_params(config: ModelConfig) -> int:
  """Weights that take part in a matmul: every block's projections and the output projection."""
  d, n, k, h = config.d_model, config.num_heads, config.kv_heads, config.head_size
  attention = d * n * h * 2 + d * k * h * 2  # query and output; key and value
  mlp = 3 * d * config.mlp_dim  # SwiGLU: gate, up, down
  return config.num_layers * (attention + mlp) + d * config.vocab_size


def model_flops_per_token(config: ModelConfig, seq_len: int) -> float:
  """Training FLOPs (forward + backward) per token of a ``seq_len``-token row; see the module docstring."""
  attention = 12 * config.num_layers * config.num_heads * config.head_size * seq_len
  return 6 * matmul_params(config) + attention


def device_peak_flops(device: jax.Device | None = None) -> float | None:
  """Dense bfloat16 peak FLOP/s of one ``device`` (default: the first device), or None if unknown."""
  kind = (device or jax.devices()[0]).device_kind.lower()
  for name, peak in PEAK_BF16_FLOPS:
    if name.lower() in kind:
      return peak
  return None
