"""The experiment schema: every field settable from the command line, one validation pass."""

import dataclasses
import os

from absl import flags
from absl.testing import absltest
from ml_collections import config_flags

from configs import base
from nexus.train import schema

TINY = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "tiny.py")

# A valid value different from the tiny config's for every field whose generic rule (flip a bool,
# add one to an int, halve a float, set an optional int) would make an invalid config.
NON_DEFAULT = {
  "name": "renamed",
  "model.num_layers": 2,  # scan_unroll must divide it
  "model.head_dim": 16,
  "model.num_kv_heads": 2,
  "model.num_heads": 8,
  "model.vocab_size": 300,
  "model.param_dtype": "bfloat16",
  "model.compute_dtype": "bfloat16",
  "model.remat": "full",
  "model.attention": "xla",
  "data.corpus_dir": "/tmp/nexus-schema-test-corpus",
  "data.sources": ("code", "prose"),
  "data.held_out": ("docstrings",),
  "data.mode": "pure_weighted",
  "data.weights": (1.0, 3.0),
  "data.tokenizer": "byte",  # the only tokenizer that needs no file; set to itself
  "data.prefetch": "thread",
  "opt.name": "lookahead",
  "opt.schedule": "wsd",
  "opt.decay_start": 150,
  "opt.gamma_schedule": "constant",
  "opt.normalize": "leaf",
  "opt.pseudo_gradient_scale": "inverse_gamma",
  "opt.projection_order": "fixed",
  "opt.order": 1,
  "opt.per_source_method": "map",
  "opt.b1": 0.8,
  "opt.b2": 0.9,
  "opt.outer_momentum": 0.8,
  "train.nonfinite": "stop",
  "train.seq_len": 64,
  "train.init_from": "/tmp/some-stable-run",
  "train.init_step": 100,
  "eval.geometry_method": "map",
  "mesh.data": 1,
  "mesh.fsdp": -1,
}


def leaf_fields(config) -> dict:
  """``{"section.field": value}`` of every field of a ConfigDict built from the schema."""
  leaves = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      leaves.update({f"{key}.{name}": field for name, field in value.items()})
    else:
      leaves[key] = value
  return leaves


def other_value(dotted: str, value):
  if dotted in NON_DEFAULT:
    return NON_DEFAULT[dotted]
  if isinstance(value, bool):
    return not value
  if isinstance(value, int):
    return value + 1
  if isinstance(value, float):
    return value / 2
  if value is None:
    return 7
  raise AssertionError(f"give {dotted} (default {value!r}) a value in NON_DEFAULT")


def flag_text(value) -> str:
  if isinstance(value, tuple):
    return "(" + ",".join(repr(v) for v in value) + ",)"
  return str(value)


def parse(*overrides: str):
  """The tiny config after ``--config.<field>=<value>`` overrides, as launch/train.py parses them."""
  argv = ["train", f"--config={TINY}", *overrides]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=flag_values, sys_argv=argv)
  flag_values(argv)
  return flag_values.config


class EveryFieldTest(absltest.TestCase):
  def test_every_field_is_set_from_the_command_line(self):
    defaults = leaf_fields(base.base_config("tiny"))
    wanted = {dotted: other_value(dotted, value) for dotted, value in defaults.items()}
    overrides = [f"--config.{dotted}={flag_text(value)}" for dotted, value in wanted.items()]
    experiment = schema.to_dict(schema.from_config_dict(parse(*overrides)))
    for dotted, value in wanted.items():
      section, _, field = dotted.rpartition(".")
      got = experiment[section][field] if section else experiment[field]
      want = list(value) if isinstance(value, tuple) else value
      self.assertEqual(got, want, dotted)

  def test_the_schema_and_the_command_line_have_the_same_fields(self):
    from_schema = {
      f"{name}.{field.name}"
      for name, section in schema.SECTIONS.items()
      for field in dataclasses.fields(section)
    }
    from_schema |= {
      field.name
      for field in dataclasses.fields(schema.ExperimentConfig)
      if field.name not in schema.SECTIONS
    }
    self.assertEqual(set(leaf_fields(base.base_config("tiny"))), from_schema)


class OneLineErrorsTest(absltest.TestCase):
  def check(self, message: str, *overrides: str):
    with self.assertRaisesRegex(ValueError, message) as caught:
      schema.from_config_dict(parse(*overrides))
    self.assertNotIn("\n", str(caught.exception))

  def test_each_section_names_the_field(self):
    self.check(r"config.train.steps=0 must be a positive integer", "--config.train.steps=0")
    self.check(r"config.eval.every=-1 must be a non-negative", "--config.eval.every=-1")
    self.check(r"config.checkpoint.keep=0", "--config.checkpoint.keep=0")
    self.check(r"config.mesh.tensor=0", "--config.mesh.tensor=0")
    self.check(r"config.data.mode='x' is not one of", "--config.data.mode=x")
    self.check(r"opt.b2 must be in \[0.0, 1.0\), got 1.5", "--config.opt.b2=1.5")
    self.check(r"ModelConfig.num_layers=0", "--config.model.num_layers=0")

  def test_sections_are_checked_against_each_other(self):
    self.check(
      r"config.train.seq_len=512 exceeds config.model.max_seq_len=256", "--config.train.seq_len=512"
    )
    self.check(
      r"config.model.vocab_size=100 is smaller than the tokenizer's 259",
      "--config.model.vocab_size=100",
    )
    self.check(
      r"opt.warmup_steps=500 must be in \[0, train.steps=200\)", "--config.opt.warmup_steps=500"
    )
    self.check(r"init_from and config.train.init_step go together", "--config.train.init_step=5")

  def test_unknown_fields_are_named(self):
    config = base.base_config("tiny")
    with config.unlocked():
      config.opt.momentum = 0.9
    with self.assertRaisesRegex(ValueError, r"unknown fields \['momentum'\] in config.opt"):
      schema.from_config_dict(config)

  def test_devices_and_processes(self):
    experiment = schema.from_config_dict(base.base_config("tiny"))
    with self.assertRaisesRegex(ValueError, "not divisible by the data x fsdp mesh size 3"):
      schema.check_against_devices(experiment, batch_shards=3, process_count=1)
    with self.assertRaisesRegex(ValueError, "not divisible by the 3 processes"):
      schema.check_against_devices(experiment, batch_shards=1, process_count=3)


if __name__ == "__main__":
  absltest.main()
