"""The 3b config: the paper's scale range, with a realistic LLaMA-style shape.

Meant for GPUs or TPU pods; set the mesh (e.g. --config.mesh.fsdp=-1 --config.mesh.data=1) and the
data sources (TFDS datasets prepared in ArrayRecord format) for a real run.
"""

from configs import base


def get_config():
  config = base.base_config("3b")
  config.train.steps = 20000
  config.train.global_batch_size = 128
  config.train.seq_len = 2048
  config.opt.warmup_steps = 1000
  config.eval.every = 1000
  config.checkpoint.every = 1000
  return config
