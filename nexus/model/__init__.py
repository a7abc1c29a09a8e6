"""The model layer (JAX + Flax NNX only): a LLaMA-style decoder-only transformer, its loss, logical-axis
sharding rules, shape presets and greedy generation with a key/value cache.

    from nexus import model as model_lib
    config = model_lib.get_preset("tiny")
    model = model_lib.Transformer(config, rngs=nnx.Rngs(0))
    logits = model(tokens)                          # float32[B, L, V]
    losses = model_lib.per_row_loss(model, batch)   # float32[B] for tokens int32[B, L+1]
"""

from nexus.model import flops
from nexus.model import sharding
from nexus.model.config import ATTENTION_IMPLEMENTATIONS
from nexus.model.config import REMAT_POLICIES
from nexus.model.config import ModelConfig
from nexus.model.flops import device_peak_flops
from nexus.model.flops import model_flops_per_token
from nexus.model.generate import generate
from nexus.model.generate import pad_prompts
from nexus.model.loss import PAD_ID
from nexus.model.loss import chunked_next_token_loss
from nexus.model.loss import mean_token_loss
from nexus.model.loss import next_token_loss
from nexus.model.loss import per_row_loss
from nexus.model.presets import PRESETS
from nexus.model.presets import count_params
from nexus.model.presets import get_preset
from nexus.model.transformer import KVCache
from nexus.model.transformer import Transformer
