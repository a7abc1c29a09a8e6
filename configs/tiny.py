"""The tiny config: a real multi-source training run that finishes in minutes on a 2-core CPU."""

from configs import base


def get_config():
  return base.base_config("tiny")
