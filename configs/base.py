"""Shared defaults for every experiment config: the typed schema's defaults, as an ml_collections dict.

Every field, its meaning and its default live in one place, the schema's dataclasses
(``nexus/train/schema.py``: ``TrainConfig``, ``EvalConfig``, ``MeshConfig``, ``CheckpointConfig``,
``ExperimentConfig``; ``nexus.model.ModelConfig``; ``nexus.data.DataConfig``;
``nexus.optim.registry.OptimizerConfig``). Each ``configs/<name>.py`` calls ``base_config(preset)``
and adjusts fields; command-line overrides use ml_collections syntax, for any field of any section:
``--config.opt.inner_learning_rate=0.02 --config.train.steps=500
--config.eval.geometry_method=map``.
"""

import ml_collections


def base_config(model_preset: str) -> ml_collections.ConfigDict:
  """A complete config for the model preset ``model_preset`` with the built-in corpus."""
  # Imported here so that merely listing configs does not load JAX.
  from nexus.model import presets  # pylint: disable=g-import-not-at-top
  from nexus.train import schema  # pylint: disable=g-import-not-at-top

  experiment = schema.ExperimentConfig(model=presets.PRESETS[model_preset], name=model_preset)
  return schema.to_config_dict(experiment)


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
