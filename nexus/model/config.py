"""``ModelConfig``: the shape and numerics of the decoder-only transformer, validated eagerly.

Every field is a plain Python value so a config round-trips through ``dataclasses.asdict`` and an
``ml_collections.ConfigDict`` (``configs/base.py`` does exactly that); ``ModelConfig.from_dict``
rebuilds it and rejects unknown keys. Invalid values raise a one-line ``ValueError`` at
construction, before any parameter is created or anything is compiled.
"""

from collections.abc import Mapping
import dataclasses
from typing import Any

import jax

DTYPES = ("float32", "bfloat16")

# How attention is computed (``nexus.model.layers.attend``): "einsum" is the plain
# score/softmax/value computation; "xla" is ``jax.nn.dot_product_attention``'s reference path;
# "cudnn" is its fused (flash) kernel, NVIDIA GPUs only, bfloat16 compute.
ATTENTION_IMPLEMENTATIONS = ("einsum", "xla", "cudnn")

# Rematerialization policies by name (``jax.checkpoint_policies``); "none" disables remat and "full"
# saves nothing (recomputes the whole layer in the backward pass).
REMAT_POLICIES = {
  "none": None,
  "full": jax.checkpoint_policies.nothing_saveable,
  "dots_saveable": jax.checkpoint_policies.dots_saveable,
  "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
  # Keeps the tensors the blocks tag with ``checkpoint_name`` (see ``nexus.model.layers``): the
  # attention inputs and output and the MLP input, so the backward pass recomputes only elementwise
  # work and the MLP/output matmuls.
  "save_qkv_attention": jax.checkpoint_policies.save_only_these_names(
    "query", "key", "value", "attention"
  ),
}


def _check_positive_int(name: str, value: Any) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"ModelConfig.{name}={value!r} must be a positive integer.")


def _check_positive_number(name: str, value: Any) -> None:
  if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
    raise ValueError(f"ModelConfig.{name}={value!r} must be a positive number.")


def _check_choice(name: str, value: Any, choices) -> None:
  if value not in choices:
    raise ValueError(f"ModelConfig.{name}={value!r} is not one of {tuple(choices)}.")


def _check_bool(name: str, value: Any) -> None:
  if not isinstance(value, bool):
    raise ValueError(f"ModelConfig.{name}={value!r} must be True or False.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """A LLaMA-style decoder-only transformer (Touvron et al. 2023, arXiv:2302.13971).

  Attributes:
    vocab_size: number of token ids; id 0 is padding.
    num_layers: transformer blocks.
    d_model: residual stream width.
    num_heads: query heads.
    mlp_dim: hidden width of the SwiGLU MLP.
    num_kv_heads: key/value heads (grouped-query attention, Ainslie et al. 2023, arXiv:2305.13245);
      None means ``num_heads`` (multi-head attention). Must divide ``num_heads``. Stored as given
      (None stays None, so overriding ``num_heads`` alone keeps multi-head attention); read the
      resolved value from ``kv_heads``.
    head_dim: width of each head; None means ``d_model // num_heads`` (then ``num_heads`` must divide
      ``d_model``). Stored as given, so overriding ``d_model`` or ``num_heads`` re-derives it; read
      the resolved value from ``head_size``. Must be even (rotary embeddings rotate pairs).
    max_seq_len: the longest sequence the model accepts (inputs and generation buffers).
    tie_embeddings: use the input embedding matrix as the output projection (Press & Wolf 2017).
    rope_theta: base of the rotary position embedding frequencies (Su et al. 2021, arXiv:2104.09864).
    param_dtype: storage dtype of the parameters.
    compute_dtype: dtype of activations and matmul inputs; norms, softmax and logits stay float32.
    remat: rematerialization policy of each block, a key of ``REMAT_POLICIES``.
    scan_layers: run the blocks with ``jax.lax.scan`` (compile time independent of depth) instead of an
      unrolled Python loop. The parameter layout (stacked over a ``layers`` axis) is the same either way.
    scan_unroll: blocks per scan iteration (``jax.lax.scan``'s ``unroll``); must divide
      ``num_layers``. Larger values trade compile time for fewer loop iterations.
    attention: a key of ``ATTENTION_IMPLEMENTATIONS``; "cudnn" needs ``compute_dtype="bfloat16"`` and
      a GPU, and applies to training and evaluation (generation with a KV cache uses "xla").
    loss_chunk_size: if set, the training loss computes the output logits and their cross entropy
      this many positions at a time (and recomputes them in the backward pass), so the float32
      ``[B, L, V]`` logits and their gradient are never materialized whole. None: all at once.
    init_std: standard deviation of the normal initializer of every matrix; the two projections that
      write into the residual stream are further scaled by 1/sqrt(2·num_layers) (GPT-2, Radford et al.
      2019).
  """

  vocab_size: int
  num_layers: int
  d_model: int
  num_heads: int
  mlp_dim: int
  num_kv_heads: int | None = None
  head_dim: int | None = None
  max_seq_len: int = 2048
  tie_embeddings: bool = False
  rope_theta: float = 10000.0
  param_dtype: str = "float32"
  compute_dtype: str = "float32"
  remat: str = "none"
  scan_layers: bool = True
  scan_unroll: int = 1
  attention: str = "einsum"
  loss_chunk_size: int | None = None
  init_std: float = 0.02

  def __post_init__(self):
    for name in ("vocab_size", "num_layers", "d_model", "num_heads", "mlp_dim", "max_seq_len"):
      _check_positive_int(name, getattr(self, name))
    if self.num_kv_heads is not None:
      _check_positive_int("num_kv_heads", self.num_kv_heads)
      if self.num_heads % self.num_kv_heads:
        raise ValueError(
          f"ModelConfig.num_kv_heads={self.num_kv_heads} does not divide num_heads={self.num_heads}; "
          "use a divisor of num_heads."
        )
    if self.head_dim is None:
      if self.d_model % self.num_heads:
        raise ValueError(
          f"ModelConfig.num_heads={self.num_heads} does not divide d_model={self.d_model}; "
          "change one of them or set head_dim explicitly."
        )
    else:
      _check_positive_int("head_dim", self.head_dim)
    if self.head_size % 2:
      raise ValueError(
        f"ModelConfig.head_dim={self.head_size} must be even (rotary embeddings rotate pairs)."
      )
    _check_bool("tie_embeddings", self.tie_embeddings)
    _check_bool("scan_layers", self.scan_layers)
    _check_positive_int("scan_unroll", self.scan_unroll)
    if self.num_layers % self.scan_unroll:
      raise ValueError(
        f"ModelConfig.scan_unroll={self.scan_unroll} does not divide num_layers={self.num_layers}; "
        "use a divisor of num_layers."
      )
    _check_choice("attention", self.attention, ATTENTION_IMPLEMENTATIONS)
    if self.attention == "cudnn" and self.compute_dtype != "bfloat16":
      raise ValueError(
        f"ModelConfig.attention='cudnn' needs compute_dtype='bfloat16', not {self.compute_dtype!r}; "
        "set compute_dtype or use attention='einsum'."
      )
    if self.loss_chunk_size is not None:
      _check_positive_int("loss_chunk_size", self.loss_chunk_size)
    _check_positive_number("rope_theta", self.rope_theta)
    _check_positive_number("init_std", self.init_std)
    _check_choice("param_dtype", self.param_dtype, DTYPES)
    _check_choice("compute_dtype", self.compute_dtype, DTYPES)
    _check_choice("remat", self.remat, REMAT_POLICIES)

  @property
  def kv_heads(self) -> int:
    """Key/value heads: ``num_kv_heads``, or ``num_heads`` when that is None."""
    return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

  @property
  def head_size(self) -> int:
    """Width of each head: ``head_dim``, or ``d_model // num_heads`` when that is None."""
    return self.d_model // self.num_heads if self.head_dim is None else self.head_dim

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
    """Builds a config from a mapping (e.g. ``config.model.to_dict()``), rejecting unknown keys."""
    names = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
      raise ValueError(f"unknown ModelConfig keys {unknown}; valid keys are {names}.")
    required = [
      field.name for field in dataclasses.fields(cls) if field.default is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in values]
    if missing:
      raise ValueError(f"ModelConfig is missing required keys {missing}.")
    return cls(**values)
