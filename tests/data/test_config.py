"""The data config: defaults, source names, and a one-line error for every kind of bad input."""

import os
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import ml_collections

from nexus import data as data_lib
from tests.data import fixtures

SHAPES = dict(num_inner_steps=4, global_batch_size=8, seq_len=64, max_seq_len=128, process_count=2)


def validate(config, **shapes):
  data_lib.validate_data_config(config, **{**SHAPES, **shapes})


class DefaultsTest(absltest.TestCase):
  def test_default_config_is_valid(self):
    config = data_lib.DataConfig()
    validate(config)  # checks names and shapes only: the corpus is built on first use
    self.assertEqual(config.mode, "pure_uniform")
    self.assertEqual(
      data_lib.train_source_names(config), ["code", "prose", "arithmetic", "algebra"]
    )
    self.assertEqual(data_lib.held_out_source_names(config), ["docstrings", "math_composite"])
    self.assertEqual(data_lib.all_source_names(config)[-2:], ["docstrings", "math_composite"])

  def test_cache_dir_follows_the_environment(self):
    with mock.patch.dict(os.environ, {"NEXUS_CACHE_DIR": "/scratch/nexus"}):
      self.assertEqual(data_lib.DataConfig().corpus_dir, "/scratch/nexus/corpus")
    with mock.patch.dict(os.environ, {"NEXUS_CACHE_DIR": ""}):
      self.assertEqual(
        data_lib.DataConfig().corpus_dir,
        os.path.expanduser(os.path.join("~", ".cache", "nexus", "corpus")),
      )

  def test_tfds_sources_are_named_by_label(self):
    config = fixtures.small_config(
      sources=("code", fixtures.toy_spec("a"), fixtures.toy_spec("b", label="bee")),
      held_out=(fixtures.toy_spec("c"),),
    )
    validate(config)
    self.assertEqual(data_lib.train_source_names(config), ["code", "toy_letters_a", "bee"])
    self.assertEqual(data_lib.held_out_source_names(config), ["toy_letters_c"])

  def test_weights(self):
    validate(fixtures.small_config(mode="mixture", weights=(1.0, 0.0, 2, 1)))
    validate(
      fixtures.small_config(
        mode="pure_weighted", sources=("code", fixtures.toy_spec("a", weight=3.0))
      )
    )


class BadInputTest(parameterized.TestCase):
  """Every error names the problem in one line, before any work starts."""

  def assert_one_line_error(self, message, config, **shapes):
    with self.assertRaisesRegex(ValueError, message) as context:
      validate(config, **shapes)
    self.assertNotIn("\n", str(context.exception))

  @parameterized.named_parameters(
    ("unknown_source", dict(sources=("code", "wikipedia")), "unknown source 'wikipedia'"),
    (
      "unknown_held_out",
      dict(held_out=("nope",)),
      r"unknown source 'nope' in config.data.held_out",
    ),
    ("bad_entry", dict(sources=("code", 3)), "neither a built-in source name nor a TFDS spec"),
    ("no_sources", dict(sources=()), "is empty"),
    ("duplicate", dict(sources=("code", "code")), r"\['code'\] appear more than once"),
    ("train_and_held_out", dict(held_out=("code",)), r"\['code'\] appear more than once"),
    ("mode", dict(mode="shuffle"), "config.data.mode='shuffle' is not one of"),
    ("prefetch", dict(prefetch="gpu"), "config.data.prefetch='gpu'"),
    (
      "negative_weight",
      dict(mode="mixture", weights=(1.0, -1.0, 1.0, 1.0)),
      "not a finite non-negative",
    ),
    (
      "nan_weight",
      dict(mode="mixture", weights=(1.0, float("nan"), 1.0, 1.0)),
      "not a finite non-negative",
    ),
    ("zero_weights", dict(mode="pure_weighted", weights=(0, 0, 0, 0)), "sum to zero"),
    ("weights_length", dict(mode="mixture", weights=(1.0, 2.0)), "2 entries for 4 sources"),
    ("ignored_weights", dict(weights=(1.0, 2.0, 1.0, 1.0)), "'pure_uniform' ignores them"),
    (
      "tokenizer",
      dict(tokenizer="/missing/sp.model"),
      "neither 'byte' nor an existing SentencePiece",
    ),
    (
      "corpus_size",
      dict(corpus_bytes_per_source=5),
      "corpus_bytes_per_source=5 must be an integer >=",
    ),
  )
  def test_config_errors(self, overrides, message):
    self.assert_one_line_error(message, fixtures.small_config(**overrides))

  @parameterized.named_parameters(
    (
      "batch_vs_processes",
      dict(global_batch_size=6, process_count=4),
      "does not divide across 4 processes",
    ),
    (
      "seq_len",
      dict(seq_len=256),
      r"seq_len=256 is larger than the model supports \(max_seq_len=128\)",
    ),
    ("num_inner_steps", dict(num_inner_steps=0), "num_inner_steps=0 must be a positive integer"),
    ("batch_size", dict(global_batch_size=0), "global_batch_size=0 must be a positive integer"),
  )
  def test_shape_errors(self, shapes, message):
    self.assert_one_line_error(message, fixtures.small_config(), **shapes)

  @parameterized.named_parameters(
    ("unknown_dataset", dict(name="no_such_dataset/x"), "'no_such_dataset/x' .* is not found"),
    ("unknown_config", dict(name="toy_letters/zzz"), "'toy_letters/zzz' .* is not found"),
    ("missing_split", dict(split="test"), "has no split 'test' \\(its split\\)"),
    (
      "missing_eval_split",
      dict(name="toy_letters/no_validation"),
      "has no split 'validation' \\(its eval_split\\)",
    ),
    (
      "missing_feature",
      dict(feature="body"),
      r"has no feature 'body'; available features: \['length', 'text'\]",
    ),
    (
      "empty_split",
      dict(split="train[:0]"),
      r"split 'train\[:0\]' of TFDS dataset 'toy_letters/a' is empty",
    ),
    ("unknown_key", dict(splits="train"), r"unknown keys \['splits'\]"),
    ("bad_weight", dict(weight="heavy"), "non-numeric weight"),
  )
  def test_tfds_errors(self, fields, message):
    spec = fixtures.toy_spec("a")
    spec.update(fields)
    self.assert_one_line_error(message, fixtures.small_config(sources=("code", spec)))

  def test_sources_must_be_a_sequence(self):
    config = ml_collections.ConfigDict({**fixtures.small_config().to_dict(), "sources": "code"})
    self.assert_one_line_error("must be a list or tuple", config)

  def test_spec_without_name(self):
    self.assert_one_line_error(
      "needs a 'name'", fixtures.small_config(sources=({"split": "train"},))
    )

  def test_weights_given_twice(self):
    config = fixtures.small_config(
      mode="mixture", sources=("code", fixtures.toy_spec("a", weight=1.0)), weights=(1.0, 1.0)
    )
    self.assert_one_line_error("both in config.data.weights and in TFDS specs", config)


if __name__ == "__main__":
  absltest.main()
