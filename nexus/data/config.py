"""The ``data`` section of an experiment config: defaults, source names, weights and validation.

Every problem a config can have is reported by ``validate_data_config`` as a one-line ValueError
that names the field and the fix, before any corpus, model or compile work starts.
"""

import dataclasses
import math
import os

import numpy as np

from nexus import config_fields
from nexus.data import builtin_sources
from nexus.data import corpus
from nexus.data import sources as sources_lib
from nexus.data import tokenizers

# pure_uniform: one source per micro-batch, drawn i.i.d. uniformly (the paper); pure_weighted: drawn
# by weights; round_robin: each source once per cycle, in a fresh random order every cycle;
# mixture: every row drawn by weights (per-row source ids).
SAMPLING_MODES = ("pure_uniform", "pure_weighted", "round_robin", "mixture")
WEIGHTED_MODES = ("pure_weighted", "mixture")
PREFETCH_MODES = ("none", "thread", "process")


def default_corpus_dir() -> str:
  """``$NEXUS_CACHE_DIR/corpus``, by default ``~/.cache/nexus/corpus``."""
  cache = os.environ.get("NEXUS_CACHE_DIR") or os.path.join("~", ".cache", "nexus")
  return os.path.join(os.path.expanduser(cache), "corpus")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """The ``data`` section of an experiment: the sources, how micro-batches draw them, the tokenizer.

  Built (or overridden field by field from the command line) and checked before any corpus work:
  every bad value raises a one-line ValueError naming ``config.data.<field>`` and the fix.

  Attributes:
    corpus_dir: where the built-in corpus is generated (``$NEXUS_CACHE_DIR/corpus``, by default
      ``~/.cache/nexus/corpus``).
    corpus_bytes_per_source: the size knob of the built-in corpus (all splits together).
    sources: training sources, built-in names (``nexus.data.BUILTIN_SOURCES``) or TFDS spec dicts
      ``{"name", "split", "eval_split", "feature", "data_dir", "weight", "label"}``.
    held_out: sources evaluated but never trained on (out-of-distribution), same forms.
    mode: ``pure_uniform`` (one source per micro-batch, drawn uniformly: the paper),
      ``pure_weighted`` (drawn by weights), ``round_robin`` (each source once per cycle, fresh order
      every cycle) or ``mixture`` (every row drawn by weights, per-row source ids).
    weights: one sampling weight per training source (weighted modes only), or None.
    tokenizer: ``"byte"`` or the path of a SentencePiece ``.model``.
    seed: seed of the generated corpus (the stream's shuffling uses the run's seed).
    prefetch: ``none``, ``thread`` or ``process`` (one background worker process).
    prefetch_buffer_size: batches the prefetcher keeps ready.
  """

  corpus_dir: str = dataclasses.field(default_factory=default_corpus_dir)
  corpus_bytes_per_source: int = 2_000_000
  sources: tuple = builtin_sources.TRAIN_SOURCE_NAMES
  held_out: tuple = builtin_sources.HELD_OUT_SOURCE_NAMES
  mode: str = "pure_uniform"
  weights: tuple | None = None
  tokenizer: str = tokenizers.BYTE_TOKENIZER
  seed: int = 0
  prefetch: str = "none"
  prefetch_buffer_size: int = 2

  def __post_init__(self):
    for name in ("sources", "held_out", "weights"):  # the command line may give lists
      value = getattr(self, name)
      if isinstance(value, list):
        object.__setattr__(self, name, tuple(value))
    check_data_fields(self)


def corpus_data_dir(data_cfg) -> str:
  return corpus.corpus_path(
    data_cfg.corpus_dir, bytes_per_source=data_cfg.corpus_bytes_per_source, seed=data_cfg.seed
  )


def _as_list(value, field: str) -> list:
  if isinstance(value, str) or not isinstance(value, (list, tuple)):
    raise ValueError(
      f"config.data.{field}={value!r} must be a list or tuple of source names or TFDS spec dicts."
    )
  return list(value)


def train_specs(data_cfg) -> list[sources_lib.SourceSpec]:
  data_dir = corpus_data_dir(data_cfg)
  return [
    sources_lib.resolve_source(e, corpus_data_dir=data_dir, field="sources")
    for e in _as_list(data_cfg.sources, "sources")
  ]


def held_out_specs(data_cfg) -> list[sources_lib.SourceSpec]:
  data_dir = corpus_data_dir(data_cfg)
  return [
    sources_lib.resolve_source(e, corpus_data_dir=data_dir, field="held_out")
    for e in _as_list(data_cfg.held_out, "held_out")
  ]


def train_source_names(data_cfg) -> list[str]:
  """Training source labels in order; ``source_ids`` index into this list."""
  return [spec.label for spec in train_specs(data_cfg)]


def held_out_source_names(data_cfg) -> list[str]:
  """Held-out (out-of-distribution) source labels, evaluated but never trained on."""
  return [spec.label for spec in held_out_specs(data_cfg)]


def all_source_names(data_cfg) -> list[str]:
  """Training then held-out labels; evaluation ``source_ids`` index into this list."""
  return train_source_names(data_cfg) + held_out_source_names(data_cfg)


def source_probabilities(data_cfg) -> np.ndarray:
  """Normalised sampling weights of the training sources (uniform where none are given)."""
  specs = train_specs(data_cfg)
  if data_cfg.weights is not None:
    weights = [float(w) for w in data_cfg.weights]
  else:
    weights = [1.0 if spec.weight is None else spec.weight for spec in specs]
  array = np.asarray(weights, dtype=np.float64)
  return array / array.sum()


def _check_weights(data_cfg, specs: list[sources_lib.SourceSpec]) -> None:
  explicit = data_cfg.weights is not None or any(spec.weight is not None for spec in specs)
  if data_cfg.mode not in WEIGHTED_MODES:
    if explicit:
      raise ValueError(
        f"source weights are set but config.data.mode={data_cfg.mode!r} ignores them; "
        f"use one of {WEIGHTED_MODES} or remove the weights."
      )
    return
  if data_cfg.weights is not None:
    if any(spec.weight is not None for spec in specs):
      raise ValueError(
        "weights are given both in config.data.weights and in TFDS specs; keep only one of them."
      )
    if len(data_cfg.weights) != len(specs):
      raise ValueError(
        f"config.data.weights has {len(data_cfg.weights)} entries for {len(specs)} sources; "
        "give one weight per source."
      )
    weights = list(data_cfg.weights)
  else:
    weights = [1.0 if spec.weight is None else spec.weight for spec in specs]
  for weight in weights:
    if (
      isinstance(weight, bool)
      or not isinstance(weight, (int, float))
      or not math.isfinite(weight)
      or weight < 0
    ):
      raise ValueError(
        f"source weight {weight!r} is not a finite non-negative number; fix config.data.weights."
      )
  if sum(weights) <= 0:
    raise ValueError("source weights sum to zero; give at least one source a positive weight.")


def check_data_fields(data_cfg) -> None:
  """Checks every field of the ``data`` section on its own; raises a one-line ValueError naming the fix."""
  config_fields.choice("config.data.mode", data_cfg.mode, SAMPLING_MODES)
  config_fields.choice("config.data.prefetch", data_cfg.prefetch, PREFETCH_MODES)
  config_fields.positive_int("config.data.prefetch_buffer_size", data_cfg.prefetch_buffer_size)
  config_fields.non_negative_int("config.data.seed", data_cfg.seed)
  if (
    not isinstance(data_cfg.corpus_bytes_per_source, int)
    or data_cfg.corpus_bytes_per_source < builtin_sources.MIN_BYTES_PER_SOURCE
  ):
    raise ValueError(
      f"config.data.corpus_bytes_per_source={data_cfg.corpus_bytes_per_source!r} must be an integer "
      f">= {builtin_sources.MIN_BYTES_PER_SOURCE}."
    )
  tokenizers.check_tokenizer_spec(data_cfg.tokenizer)
  train, held_out = train_specs(data_cfg), held_out_specs(data_cfg)
  if not train:
    raise ValueError("config.data.sources is empty; name at least one training source.")
  labels = [spec.label for spec in train + held_out]
  duplicates = sorted({label for label in labels if labels.count(label) > 1})
  if duplicates:
    raise ValueError(
      f"source labels {duplicates} appear more than once in config.data.sources/held_out; "
      "remove the duplicate or give TFDS specs distinct 'label's."
    )
  _check_weights(data_cfg, train)
  for spec in train + held_out:
    if not spec.builtin:
      sources_lib.check_tfds_source(spec)


def validate_data_config(
  data_cfg,
  *,
  num_inner_steps: int,
  global_batch_size: int,
  seq_len: int,
  max_seq_len: int | None,
  process_count: int,
) -> None:
  """Checks ``data_cfg`` (a ``DataConfig``, or any object with its fields) against the run's shapes.

  Args:
    data_cfg: the ``config.data`` section.
    num_inner_steps: K, micro-batches per outer step.
    global_batch_size: rows per micro-batch over all processes.
    seq_len: L, tokens the model sees per row (rows hold L+1 tokens).
    max_seq_len: the longest sequence the model supports (None: not checked).
    process_count: JAX processes that each read their shard of every micro-batch.
  """
  config_fields.positive_int("num_inner_steps", num_inner_steps)
  config_fields.positive_int("global_batch_size", global_batch_size)
  config_fields.positive_int("seq_len", seq_len)
  config_fields.positive_int("process_count", process_count)
  if global_batch_size % process_count:
    raise ValueError(
      f"global_batch_size={global_batch_size} does not divide across {process_count} processes; "
      f"use a multiple of {process_count}."
    )
  if max_seq_len is not None and seq_len > max_seq_len:
    raise ValueError(
      f"seq_len={seq_len} is larger than the model supports (max_seq_len={max_seq_len}); "
      "shorten seq_len or enlarge the model's max_seq_len."
    )
  if not isinstance(data_cfg, DataConfig):  # a DataConfig was checked when it was built
    check_data_fields(data_cfg)
