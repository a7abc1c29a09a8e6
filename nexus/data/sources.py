"""Source entries of a data config resolved to TFDS datasets, checked, and opened for random access.

A config entry is either a built-in source name (``"code"``) or a TFDS spec dict::

    {"name": "c4/en:3.1.0", "split": "train", "eval_split": "validation", "test_split": None,
     "feature": "text", "data_dir": "/data/tfds", "weight": 2.0, "label": "c4"}

Only ``name`` is required. ``eval_split`` is what training-time evaluation reads; ``test_split``
(for reported numbers) is optional for TFDS sources, since many datasets publish no test split.
Built-in sources are the configs of the ``nexus_corpus`` TFDS builder in the corpus cache, so every
source is read the same way: ``tfds.data_source`` on ArrayRecord files, without TensorFlow and
without any download (``download=False``).
"""

import dataclasses
from typing import Any

import tensorflow_datasets as tfds

from nexus.data import builtin_sources
from nexus.data import splits
from nexus.data import tfds_corpus

TFDS_SPEC_DEFAULTS = {
  "split": splits.TRAIN,
  "eval_split": splits.VALIDATION,
  "test_split": None,
  "feature": "text",
  "data_dir": None,
  "weight": None,
  "label": None,
}


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """One resolved source: its label (used in logs and ``source_ids`` order) and where it lives."""

  label: str
  tfds_name: str
  data_dir: str | None
  train_split: str
  eval_split: str
  test_split: str | None  # None: the source has no test split
  feature: str
  weight: float | None  # an explicit per-source weight, None when not given
  builtin: bool


def _default_label(tfds_name: str) -> str:
  """``c4/en:3.1.0`` -> ``c4_en``: the dataset and config without version, usable as a metric key."""
  return tfds_name.split(":")[0].replace("/", "_")


def resolve_source(entry: Any, *, corpus_data_dir: str, field: str) -> SourceSpec:
  """Resolves one config entry of ``config.data.<field>``; a one-line ValueError if malformed."""
  if hasattr(entry, "to_dict"):  # a ConfigDict spec
    entry = entry.to_dict()
  if isinstance(entry, str):
    if entry not in builtin_sources.BUILTIN_SOURCES:
      raise ValueError(
        f"unknown source {entry!r} in config.data.{field}; built-in sources are "
        f"{sorted(builtin_sources.BUILTIN_SOURCES)}, or give a TFDS spec dict like {{'name': 'c4/en:3.1.0'}}."
      )
    return SourceSpec(
      label=entry,
      tfds_name=f"{tfds_corpus.BUILDER_NAME}/{entry}",
      data_dir=corpus_data_dir,
      train_split=splits.TRAIN,
      eval_split=splits.VALIDATION,
      test_split=splits.TEST,
      feature=tfds_corpus.TEXT_FEATURE,
      weight=None,
      builtin=True,
    )
  if not isinstance(entry, dict):
    raise ValueError(
      f"config.data.{field} entry {entry!r} is neither a built-in source name nor a TFDS spec dict."
    )
  unknown = sorted(set(entry) - set(TFDS_SPEC_DEFAULTS) - {"name"})
  if unknown:
    raise ValueError(
      f"TFDS spec {entry!r} in config.data.{field} has unknown keys {unknown}; "
      f"allowed: {['name', *TFDS_SPEC_DEFAULTS]}."
    )
  if not isinstance(entry.get("name"), str) or not entry["name"]:
    raise ValueError(
      f"TFDS spec {entry!r} in config.data.{field} needs a 'name', e.g. 'c4/en:3.1.0'."
    )
  spec = {**TFDS_SPEC_DEFAULTS, **entry}
  weight = spec["weight"]
  if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))):
    raise ValueError(
      f"TFDS spec {entry!r} in config.data.{field} has a non-numeric weight {weight!r}."
    )
  return SourceSpec(
    label=spec["label"] or _default_label(spec["name"]),
    tfds_name=spec["name"],
    data_dir=spec["data_dir"],
    train_split=spec["split"],
    eval_split=spec["eval_split"],
    test_split=spec["test_split"],
    feature=spec["feature"],
    weight=None if weight is None else float(weight),
    builtin=False,
  )


def _one_line(error: Exception) -> str:
  return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def check_tfds_source(spec: SourceSpec) -> None:
  """Checks a user TFDS source from its metadata: prepared, ArrayRecord, splits, feature, not empty."""
  where = f"data_dir {spec.data_dir!r}" if spec.data_dir else "the default TFDS data_dir"
  try:
    builder = tfds.builder(spec.tfds_name, data_dir=spec.data_dir)
  except (tfds.core.registered.DatasetNotFoundError, ValueError, FileNotFoundError) as error:
    raise ValueError(
      f"TFDS dataset {spec.tfds_name!r} (source {spec.label!r}) is not found in {where} ({_one_line(error)}); "
      "fix the name or data_dir, or prepare it with `tfds build --file_format=array_record`."
    ) from None
  if not builder.is_prepared():
    raise ValueError(
      f"TFDS dataset {spec.tfds_name!r} (source {spec.label!r}) is not prepared in {where}; "
      "prepare it with `tfds build --file_format=array_record` (nothing is downloaded at run time)."
    )
  info = builder.info
  if info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise ValueError(
      f"TFDS dataset {spec.tfds_name!r} (source {spec.label!r}) is stored as {info.file_format.value}, "
      "not array_record; re-prepare it with `tfds build --file_format=array_record`."
    )
  for role, split in (
    ("split", spec.train_split),
    ("eval_split", spec.eval_split),
    ("test_split", spec.test_split),
  ):
    if split is None:
      continue
    try:
      num_examples = info.splits[split].num_examples
    except (KeyError, ValueError):
      raise ValueError(
        f"TFDS dataset {spec.tfds_name!r} (source {spec.label!r}) has no split {split!r} "
        f"(its {role}); available splits: {sorted(info.splits)}."
      ) from None
    if num_examples == 0:
      raise ValueError(
        f"source {spec.label!r}: split {split!r} of TFDS dataset {spec.tfds_name!r} is empty."
      )
  if spec.feature not in info.features:
    raise ValueError(
      f"TFDS dataset {spec.tfds_name!r} (source {spec.label!r}) has no feature {spec.feature!r}; "
      f"available features: {sorted(info.features)}."
    )


def split_name(spec: SourceSpec, split: str) -> str:
  """The split of ``spec`` that plays the role ``split`` ('train', 'validation' or 'test')."""
  if split not in splits.SPLITS:
    raise ValueError(f"split={split!r} is not one of {splits.SPLITS}.")
  name = {
    splits.TRAIN: spec.train_split,
    splits.VALIDATION: spec.eval_split,
    splits.TEST: spec.test_split,
  }[split]
  if name is None:
    raise ValueError(
      f"source {spec.label!r} has no test split; give its TFDS spec a 'test_split' "
      "(e.g. 'validation[50%:]' with 'eval_split': 'validation[:50%]')."
    )
  return name


def open_split(spec: SourceSpec, split: str):
  """A random-access data source (``len`` and ``[i]`` -> example dict) of one split of ``spec``."""
  data_source = tfds.data_source(
    spec.tfds_name, split=split, data_dir=spec.data_dir, download=False
  )
  if len(data_source) == 0:
    raise ValueError(f"source {spec.label!r}: split {split!r} of {spec.tfds_name!r} is empty.")
  return data_source
