"""The model layer (JAX + Flax NNX only): a LLaMA-style decoder-only transformer, its loss, logical-axis
sharding rules, shape presets and greedy generation with a key/value cache.

    from nexus import model as model_lib
    config = model_lib.get_preset("tiny")
    model = model_lib.Transformer(config, rngs=nnx.Rngs(0))
    logits = model(tokens)                          # float32[B, L, V]
    losses = model_lib.per_row_loss(model, batch)   # float32[B] for tokens int32[B, L+1]
"""

from nexus.model import flops, sharding
from nexus.model.config import ATTENTION_IMPLEMENTATIONS, REMAT_POLICIES, ModelConfig
from nexus.model.flops import device_peak_flops, model_flops_per_token
from nexus.model.generate import generate, pad_prompts
from nexus.model.loss import PAD_ID, chunked_next_token_loss, mean_token_loss, next_token_loss, per_row_loss
from nexus.model.presets import PRESETS, count_params, get_preset
from nexus.model.transformer import KVCache, Transformer
