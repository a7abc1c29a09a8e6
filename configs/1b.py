"""The 1b config: the paper's scale range with a realistic LLaMA-style shape (GPUs, TPU pods)."""

from configs import base


def get_config():
  return base.paper_scale_config("1b")
