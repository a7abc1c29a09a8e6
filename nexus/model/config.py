"""``ModelConfig``: the shape and numerics of the decoder-only transformer, validated eagerly.

Every field is a plain Python value so a config round-trips through ``dataclasses.asdict`` and an
``ml_collections.ConfigDict`` (``configs/base.py`` does exactly that); ``ModelConfig.from_dict``
rebuilds it and rejects unknown keys. Invalid values raise a one-line ``ValueError`` at construction,
before any parameter is created or anything is compiled.
"""

import dataclasses
from typing import Any, Mapping, Optional

import jax

DTYPES = ("float32", "bfloat16")

# Rematerialization policies by name (``jax.checkpoint_policies``); "none" disables remat and "full"
# saves nothing (recomputes the whole layer in the backward pass).
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
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
      None means ``num_heads`` (multi-head attention). Must divide ``num_heads``.
    head_dim: width of each head; None means ``d_model // num_heads`` (then ``num_heads`` must divide
      ``d_model``). Resolved to an int at construction. Must be even (rotary embeddings rotate pairs).
    max_seq_len: the longest sequence the model accepts (inputs and generation buffers).
    tie_embeddings: use the input embedding matrix as the output projection (Press & Wolf 2017).
    rope_theta: base of the rotary position embedding frequencies (Su et al. 2021, arXiv:2104.09864).
    param_dtype: storage dtype of the parameters.
    compute_dtype: dtype of activations and matmul inputs; norms, softmax and logits stay float32.
    remat: rematerialization policy of each block, a key of ``REMAT_POLICIES``.
    scan_layers: run the blocks with ``jax.lax.scan`` (compile time independent of depth) instead of an
      unrolled Python loop. The parameter layout (stacked over a ``layers`` axis) is the same either way.
    init_std: standard deviation of the normal initializer of every matrix; the two projections that
      write into the residual stream are further scaled by 1/sqrt(2·num_layers) (GPT-2, Radford et al.
      2019).
  """

  vocab_size: int
  num_layers: int
  d_model: int
  num_heads: int
  mlp_dim: int
  num_kv_heads: Optional[int] = None
  head_dim: Optional[int] = None
  max_seq_len: int = 2048
  tie_embeddings: bool = False
  rope_theta: float = 10000.0
  param_dtype: str = "float32"
  compute_dtype: str = "float32"
  remat: str = "none"
  scan_layers: bool = True
  init_std: float = 0.02

  def __post_init__(self):
    for name in ("vocab_size", "num_layers", "d_model", "num_heads", "mlp_dim", "max_seq_len"):
      _check_positive_int(name, getattr(self, name))
    if self.num_kv_heads is None:
      object.__setattr__(self, "num_kv_heads", self.num_heads)
    _check_positive_int("num_kv_heads", self.num_kv_heads)
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"ModelConfig.num_kv_heads={self.num_kv_heads} does not divide num_heads={self.num_heads}; "
                       "use a divisor of num_heads.")
    if self.head_dim is None:
      if self.d_model % self.num_heads:
        raise ValueError(f"ModelConfig.num_heads={self.num_heads} does not divide d_model={self.d_model}; "
                         "change one of them or set head_dim explicitly.")
      object.__setattr__(self, "head_dim", self.d_model // self.num_heads)
    _check_positive_int("head_dim", self.head_dim)
    if self.head_dim % 2:
      raise ValueError(f"ModelConfig.head_dim={self.head_dim} must be even (rotary embeddings rotate pairs).")
    _check_bool("tie_embeddings", self.tie_embeddings)
    _check_bool("scan_layers", self.scan_layers)
    _check_positive_number("rope_theta", self.rope_theta)
    _check_positive_number("init_std", self.init_std)
    _check_choice("param_dtype", self.param_dtype, DTYPES)
    _check_choice("compute_dtype", self.compute_dtype, DTYPES)
    _check_choice("remat", self.remat, REMAT_POLICIES)

  @classmethod
  def from_dict(cls, values: Mapping[str, Any]) -> "ModelConfig":
    """Builds a config from a mapping (e.g. ``config.model.to_dict()``), rejecting unknown keys."""
    names = [field.name for field in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
      raise ValueError(f"unknown ModelConfig keys {unknown}; valid keys are {names}.")
    required = [field.name for field in dataclasses.fields(cls) if field.default is dataclasses.MISSING]
    missing = [name for name in required if name not in values]
    if missing:
      raise ValueError(f"ModelConfig is missing required keys {missing}.")
    return cls(**values)
