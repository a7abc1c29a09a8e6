"""The experiment config: one typed schema, one validation pass, ml_collections on the command line.

An experiment has seven sections, each a frozen dataclass that checks its own fields when built:

- ``model``: ``nexus.model.ModelConfig``; ``data``: ``nexus.data.DataConfig``;
  ``opt``: ``nexus.optim.registry.OptimizerConfig`` (the registry builds the optimizer from it);
- ``train``, ``eval``, ``mesh``, ``checkpoint``: defined here.

``configs/<name>.py`` files return ``to_config_dict(ExperimentConfig(...))``, so every field of
every section is settable from the command line (``--config.opt.learning_rate=3e-3``) and documented
in one place: the dataclasses' docstrings. ``from_config_dict`` turns the (overridden) ConfigDict
back into an ``ExperimentConfig``: unknown fields, bad values and inconsistent sections (batch vs
mesh, sequence length vs model, vocabulary vs tokenizer, schedule vs steps) each raise a one-line
ValueError naming ``config.<section>.<field>`` and the fix, before any data, model or compile work
starts.
"""

import dataclasses
import json
import types
import typing
from typing import Any

import ml_collections

from nexus import config_fields
from nexus.data import config as data_config
from nexus.data import tokenizers
from nexus.model import config as model_config
from nexus.optim import registry
from nexus.optim import schedules

NONFINITE_POLICIES = ("skip", "stop")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """The ``train`` section: the run's length and shapes.

  Attributes:
    steps: outer steps.
    num_inner_steps: K, micro-batches per outer step (AdamW accumulates the same K).
    global_batch_size: rows per micro-batch, across all processes.
    seq_len: tokens per row the model sees.
    log_every: steps between metric records (and progress lines).
    nonfinite: ``skip`` (keep the state, count the step) or ``stop`` (fail the run) on a non-finite
      loss or update.
    max_skipped_fraction: more skipped steps than this share (or all of them) fail the run (exit 3).
    init_from: a workdir whose checkpoint at ``init_step`` starts this run: params, optimizer state
      and data position, then this config's schedule (a cooldown branch). None: a fresh start.
    init_step: the step of ``init_from`` to start from (required with ``init_from``).
  """

  steps: int = 200
  num_inner_steps: int = 4
  global_batch_size: int = 8
  seq_len: int = 128
  log_every: int = 10
  nonfinite: str = "skip"
  max_skipped_fraction: float = 0.1
  init_from: str | None = None
  init_step: int | None = None

  def __post_init__(self):
    for name in ("steps", "num_inner_steps", "global_batch_size", "seq_len", "log_every"):
      config_fields.positive_int(f"config.train.{name}", getattr(self, name))
    config_fields.choice("config.train.nonfinite", self.nonfinite, NONFINITE_POLICIES)
    config_fields.fraction("config.train.max_skipped_fraction", self.max_skipped_fraction)
    if (self.init_from is None) != (self.init_step is None):
      raise ValueError(
        "config.train.init_from and config.train.init_step go together; set both (a workdir and "
        "the step of its checkpoint to start from) or neither."
      )
    if self.init_step is not None:
      config_fields.positive_int("config.train.init_step", self.init_step)
      if self.init_step >= self.steps:
        raise ValueError(
          f"config.train.init_step={self.init_step} must be below config.train.steps={self.steps}."
        )


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """The ``eval`` section: in-training evaluation on the validation split.

  Attributes:
    every: steps between evaluations (and at the last step); 0 disables evaluation.
    batch_size: rows per evaluation batch.
    num_batches: batches per source (the same fixed batches at every evaluation).
    geometry_method: ``vmap`` or ``map``: how per-source gradients are computed for the gradient
      geometry (``map`` holds one source's gradient at a time: less memory).
  """

  every: int = 50
  batch_size: int = 16
  num_batches: int = 4
  geometry_method: str = "vmap"

  def __post_init__(self):
    config_fields.non_negative_int("config.eval.every", self.every)
    config_fields.positive_int("config.eval.batch_size", self.batch_size)
    config_fields.positive_int("config.eval.num_batches", self.num_batches)
    config_fields.choice("config.eval.geometry_method", self.geometry_method, ("vmap", "map"))


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """The ``mesh`` section: device-mesh axis sizes; one axis may be -1 (all remaining devices).

  Attributes:
    data: data parallelism (the batch is split over it).
    fsdp: fully sharded data parallelism (batch and parameters split over it).
    tensor: tensor parallelism (heads and MLP width split over it).
  """

  data: int = -1
  fsdp: int = 1
  tensor: int = 1

  def __post_init__(self):
    sizes = dataclasses.asdict(self)
    for name, size in sizes.items():
      if not isinstance(size, int) or isinstance(size, bool) or (size < 1 and size != -1):
        raise ValueError(f"config.mesh.{name}={size!r} must be a positive integer or -1.")
    if list(sizes.values()).count(-1) > 1:
      raise ValueError("at most one config.mesh axis may be -1 (all remaining devices).")


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
  """The ``checkpoint`` section.

  Attributes:
    every: steps between checkpoints (and at the last step).
    keep: checkpoints kept (the oldest are deleted).
    async_save: write checkpoints in the background while training continues.
  """

  every: int = 50
  keep: int = 3
  async_save: bool = True

  def __post_init__(self):
    config_fields.positive_int("config.checkpoint.every", self.every)
    config_fields.positive_int("config.checkpoint.keep", self.keep)
    config_fields.boolean("config.checkpoint.async_save", self.async_save)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """A whole experiment. ``name`` labels it (usually the model preset); ``seed`` seeds the model's
  initialization, the data order and the optimizer's randomness."""

  model: model_config.ModelConfig
  name: str = "experiment"
  seed: int = 0
  data: data_config.DataConfig = dataclasses.field(default_factory=data_config.DataConfig)
  opt: registry.OptimizerConfig = dataclasses.field(default_factory=registry.OptimizerConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
  mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
  checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)

  def __post_init__(self):
    config_fields.non_negative_int("config.seed", self.seed)
    _check_across_sections(self)


SECTIONS: dict[str, Any] = {
  field.name: field.type
  for field in dataclasses.fields(ExperimentConfig)
  if dataclasses.is_dataclass(field.type)
}


def _check_across_sections(config: ExperimentConfig) -> None:
  """What no single section can check: shapes against the model, the tokenizer and the schedule."""
  train, model = config.train, config.model
  if train.seq_len > model.max_seq_len:
    raise ValueError(
      f"config.train.seq_len={train.seq_len} exceeds config.model.max_seq_len={model.max_seq_len}; "
      "shorten the sequences or enlarge the model's max_seq_len."
    )
  tokenizer_vocab = tokenizers.make_tokenizer(config.data.tokenizer).vocab_size
  if model.vocab_size < tokenizer_vocab:
    raise ValueError(
      f"config.model.vocab_size={model.vocab_size} is smaller than the tokenizer's "
      f"{tokenizer_vocab} ids; set --config.model.vocab_size={tokenizer_vocab} or larger."
    )
  schedules.learning_rate_schedule(config.opt, train.steps)  # raises if the schedule cannot fit


def check_against_devices(
  config: ExperimentConfig, *, batch_shards: int, process_count: int
) -> None:
  """The batch must split over the mesh's batch axes (data × fsdp) and over the processes."""
  size = config.train.global_batch_size
  if size % batch_shards:
    raise ValueError(
      f"config.train.global_batch_size={size} is not divisible by the data x fsdp mesh size "
      f"{batch_shards}; use a multiple of {batch_shards}."
    )
  if size % process_count:
    raise ValueError(
      f"config.train.global_batch_size={size} is not divisible by the {process_count} processes; "
      f"use a multiple of {process_count}."
    )


def from_config_dict(config: ml_collections.ConfigDict | dict) -> ExperimentConfig:
  """The typed experiment of a (command-line overridden) ConfigDict, every field checked."""
  values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  unknown = sorted(set(values) - {field.name for field in dataclasses.fields(ExperimentConfig)})
  if unknown:
    raise ValueError(f"unknown config sections or fields {unknown}; see nexus/train/schema.py.")
  sections = {}
  for name, section_type in SECTIONS.items():
    if name in values:
      sections[name] = _build_section(name, section_type, values.pop(name))
  if "model" not in sections:
    raise ValueError("the config has no model section; start from configs/base.py.")
  return ExperimentConfig(**values, **sections)


def _build_section(name: str, section_type: type, values: Any):
  if not isinstance(values, dict):
    raise ValueError(f"config.{name} must be a section of fields, got {values!r}.")
  names = [field.name for field in dataclasses.fields(section_type)]
  unknown = sorted(set(values) - set(names))
  if unknown:
    raise ValueError(
      f"unknown fields {unknown} in config.{name}; the fields are {names} "
      f"(documented in {section_type.__module__}.{section_type.__name__})."
    )
  return section_type(**values)


def to_dict(config: ExperimentConfig) -> dict:
  """The experiment as JSON-ready nested dicts (what checkpoints and ``config.json`` store)."""
  return json.loads(json.dumps(dataclasses.asdict(config)))


def to_config_dict(config: ExperimentConfig) -> ml_collections.ConfigDict:
  """The experiment as a ConfigDict for the command line: every field overridable with its type.

  A field whose value is None becomes a typed placeholder (``--config.train.init_step=500`` parses
  as an int), so optional fields are settable too.
  """
  root = ml_collections.ConfigDict()
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if dataclasses.is_dataclass(value):
      root[field.name] = _section_config_dict(value)
    else:
      root[field.name] = value
  return root


def _section_config_dict(section: Any) -> ml_collections.ConfigDict:
  hints = typing.get_type_hints(type(section))
  values = {}
  for field in dataclasses.fields(section):
    value = getattr(section, field.name)
    if value is None:
      value = ml_collections.config_dict.placeholder(_non_none_type(hints[field.name]))
    values[field.name] = value
  return ml_collections.ConfigDict(values)


def _non_none_type(hint: Any) -> type:
  """``int`` for ``int | None``; the annotation itself when it is a plain type."""
  if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
    (kind,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return typing.get_origin(kind) or kind
  return typing.get_origin(hint) or hint
