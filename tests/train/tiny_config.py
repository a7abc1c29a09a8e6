"""The integration tests' config: configs/tiny.py shrunk by ``harness.TINY_OVERRIDES``, set in Python.

A config file rather than ``--config.<field>=`` flags because ml_collections cannot override a field
whose default is None (e.g. ``model.head_dim``) from the command line.
"""

from configs import tiny
from tests.train import harness


def get_config():
  config = tiny.get_config()
  for dotted, value in harness.TINY_OVERRIDES.items():
    section, field = dotted.split(".")
    config[section][field] = value
  return config
