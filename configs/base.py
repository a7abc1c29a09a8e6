"""Shared defaults for every experiment config (ml_collections).

Each ``configs/<name>.py`` calls ``base_config(preset)`` and adjusts sizes. Command-line overrides
use ml_collections syntax: ``--config.opt.inner_learning_rate=0.02 --config.train.steps=500``.
"""

import dataclasses

import ml_collections


def optimizer_config() -> ml_collections.ConfigDict:
  """The optimizer section: method name and hyperparameters (see nexus.optim.registry)."""
  return ml_collections.ConfigDict(
    {
      # adamw | nexus | nexus_first_order | nexus_unnormalized | lookahead | snoo | sam | pcgrad |
      # nexus_muon | order_free
      "name": "nexus",
      "learning_rate": 1e-3,
      "schedule": "cosine",  # cosine | wsd | constant
      "warmup_steps": 20,
      "final_lr_fraction": 0.1,
      "decay_fraction": 0.2,  # wsd only
      "b1": 0.9,
      "b2": 0.95,
      "eps": 1e-10,
      "weight_decay": 0.2,
      "clip_norm": 1.0,
      # Nexus and two-loop relatives.
      "inner_learning_rate": 0.01,  # γ (γ_peak when tied)
      "gamma_schedule": "tied",  # tied (γ_t = γ·η_t/η_peak) | constant
      "normalize": "global",  # global | leaf | none
      "pseudo_gradient_scale": "raw",  # raw | inverse_gamma
      # Relatives (see nexus/optim/registry.py for who reads what).
      "slow_step_size": 0.5,  # lookahead's α
      "outer_learning_rate": 0.7,  # snoo's Nesterov SGD
      "outer_momentum": 0.9,  # snoo
      "rho": 0.05,  # sam
      "projection_order": "random",  # pcgrad: random | fixed
      "order": 2,  # order_free: 2 keeps the γ² term, 1 drops it
      "per_source_method": "vmap",  # order_free: vmap | map
    }
  )


def model_config(preset) -> ml_collections.ConfigDict:
  """The model section: a preset's fields; the unset optional ones (None) are int placeholders.

  A placeholder keeps a derived value derived (``head_dim``, ``num_kv_heads``: overriding ``d_model``
  or ``num_heads`` re-derives them) while ``--config.model.head_dim=64`` still parses as an int.
  """
  return ml_collections.ConfigDict(
    {
      name: ml_collections.config_dict.placeholder(int) if value is None else value
      for name, value in dataclasses.asdict(preset).items()
    }
  )


def base_config(model_preset: str) -> ml_collections.ConfigDict:
  """A complete config for the model preset ``model_preset`` with the built-in corpus."""
  # Imported here so that merely listing configs does not load JAX.
  from nexus import data as data_lib  # pylint: disable=g-import-not-at-top
  from nexus.model import presets  # pylint: disable=g-import-not-at-top

  config = ml_collections.ConfigDict()
  config.name = model_preset
  config.seed = 0
  config.model = model_config(presets.PRESETS[model_preset])
  config.data = data_lib.default_data_config()
  config.opt = optimizer_config()
  config.train = ml_collections.ConfigDict(
    {
      "steps": 200,
      "num_inner_steps": 4,  # K micro-batches per outer step (AdamW accumulates the same K)
      "global_batch_size": 8,  # rows per micro-batch, across all processes
      "seq_len": 128,
      "log_every": 10,
      "nonfinite": "skip",  # skip | stop
      "max_skipped_fraction": 0.1,  # more skipped steps than this share (or all) fail the run (exit code 3)
    }
  )
  config.eval = ml_collections.ConfigDict(
    {
      "every": 50,
      "batch_size": 16,
      "num_batches": 4,
    }
  )
  config.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "tensor": 1})
  config.checkpoint = ml_collections.ConfigDict({"every": 50, "keep": 3, "async_save": True})
  return config


def paper_scale_config(model_preset: str) -> ml_collections.ConfigDict:
  """A config for one of the paper's scales (130m ... 3b): GPU or TPU-pod training lengths and sizes.

  Set the mesh (e.g. --config.mesh.fsdp=-1 --config.mesh.data=1) and the data sources (TFDS datasets
  prepared in ArrayRecord format) for a real run.
  """
  config = base_config(model_preset)
  config.train.steps = 20000
  config.train.global_batch_size = 128
  config.train.seq_len = 2048
  config.opt.warmup_steps = 1000
  config.eval.every = 1000
  config.checkpoint.every = 1000
  return config
