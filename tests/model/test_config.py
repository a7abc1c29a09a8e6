"""ModelConfig: defaults resolved at construction, one-line errors for bad values, dict round trip."""

import dataclasses

import pytest

from nexus.model import ModelConfig
from tests.model.fixtures import SMALL
from tests.model.fixtures import small_config


def test_derived_values_are_read_not_stored():
  config = ModelConfig(vocab_size=10, num_layers=1, d_model=64, num_heads=4, mlp_dim=8)
  assert (config.head_size, config.kv_heads) == (16, 4)
  assert config.head_dim is None and config.num_kv_heads is None  # a dict of it keeps them derived
  assert config.param_dtype == "float32" and config.scan_layers


def test_overriding_heads_or_width_rederives_head_size():
  """The trap of stored derived values: a preset's dict overridden in one field must stay consistent."""
  values = dataclasses.asdict(
    ModelConfig(vocab_size=10, num_layers=1, d_model=64, num_heads=4, mlp_dim=8)
  )
  assert ModelConfig.from_dict({**values, "num_heads": 8}).head_size == 8
  assert ModelConfig.from_dict({**values, "num_heads": 8}).kv_heads == 8
  assert ModelConfig.from_dict({**values, "d_model": 128}).head_size == 32


def test_explicit_head_dim_need_not_divide_d_model():
  assert small_config(d_model=30, num_heads=4, head_dim=8).head_dim == 8


@pytest.mark.parametrize(
  "overrides, message",
  [
    ({"num_heads": 3, "num_kv_heads": 3}, "does not divide d_model"),
    ({"num_kv_heads": 3}, "does not divide num_heads"),
    ({"head_dim": 7}, "must be even"),
    ({"vocab_size": 0}, "vocab_size=0 must be a positive integer"),
    ({"num_layers": True}, "num_layers=True must be a positive integer"),
    ({"compute_dtype": "float16"}, "compute_dtype='float16' is not one of"),
    ({"param_dtype": "int8"}, "param_dtype='int8' is not one of"),
    ({"remat": "sometimes"}, "remat='sometimes' is not one of"),
    ({"scan_layers": 1}, "scan_layers=1 must be True or False"),
    ({"scan_unroll": 3}, "scan_unroll=3 does not divide num_layers=2"),
    ({"attention": "flash"}, "attention='flash' is not one of"),
    ({"attention": "cudnn"}, "attention='cudnn' needs compute_dtype='bfloat16'"),
    ({"loss_chunk_size": 0}, "loss_chunk_size=0 must be a positive integer"),
    ({"rope_theta": 0.0}, "rope_theta=0.0 must be a positive number"),
    ({"init_std": -1.0}, "init_std=-1.0 must be a positive number"),
  ],
)
def test_bad_values_raise_one_line_errors(overrides, message):
  with pytest.raises(ValueError, match=message) as error:
    small_config(**overrides)
  assert "\n" not in str(error.value)


def test_from_dict_round_trips():
  assert ModelConfig.from_dict(dataclasses.asdict(SMALL)) == SMALL


def test_from_dict_rejects_unknown_keys():
  with pytest.raises(ValueError, match=r"unknown ModelConfig keys \['dropout'\]"):
    ModelConfig.from_dict({**dataclasses.asdict(SMALL), "dropout": 0.1})


def test_from_dict_names_missing_keys():
  values = dataclasses.asdict(SMALL)
  del values["mlp_dim"]
  with pytest.raises(ValueError, match=r"missing required keys \['mlp_dim'\]"):
    ModelConfig.from_dict(values)
