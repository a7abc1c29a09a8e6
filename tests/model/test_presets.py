"""Presets: each large preset's parameter count rounds to its name; tiny fits the byte vocabulary."""

import pytest

from nexus.model import PRESETS
from nexus.model import ModelConfig
from nexus.model import count_params
from nexus.model import get_preset

NOMINAL = {"130m": 130e6, "350m": 350e6, "1b": 1e9, "3b": 3e9}


@pytest.mark.parametrize("name", sorted(NOMINAL))
def test_parameter_count_matches_the_name(name):
  count = count_params(PRESETS[name])  # shapes only: the 3B model is never allocated
  assert abs(count / NOMINAL[name] - 1) <= 0.10, f"{name}: {count:,} parameters"
  assert PRESETS[name].vocab_size == 32000


def test_tiny_preset_is_small_and_byte_level():
  tiny = get_preset("tiny")
  assert tiny.vocab_size == 259 and tiny.max_seq_len >= 128
  assert count_params(tiny) < 2e6


def test_count_params_counts_every_matrix():
  config = get_preset("tiny")
  d, f, v = config.d_model, config.mlp_dim, config.vocab_size
  per_layer = (
    4 * d * d + 3 * d * f + 2 * d
  )  # q, k, v, o (MHA, head_dim = d / heads), SwiGLU, 2 norms
  assert (
    count_params(config) == config.num_layers * per_layer + v * d + d
  )  # tied embedding, final norm


def test_unknown_preset_is_named():
  with pytest.raises(ValueError, match="unknown model preset 'huge'"):
    get_preset("huge")


def test_config_section_keeps_derived_values_derived():
  from configs import base  # pylint: disable=g-import-not-at-top

  section = base.base_config("130m").model
  section.num_heads = 16  # what --config.model.num_heads=16 does
  assert ModelConfig.from_dict(section.to_dict()).head_size == 48
  section.head_dim = 64  # an explicit override still parses as an int and wins
  assert ModelConfig.from_dict(section.to_dict()).head_size == 64
