"""Shared test data, built once per test process in a scratch directory: a small built-in corpus
(``SMALL_BYTES_PER_SOURCE`` per source instead of the default 2 MB) and the local toy TFDS dataset."""

import atexit
import dataclasses
import functools
import os
import shutil
import tempfile

import ml_collections
import tensorflow_datasets as tfds

from nexus import data as data_lib
from tests.data import toy_tfds

SMALL_BYTES_PER_SOURCE = 20_000


@functools.cache
def scratch_dir() -> str:
  path = tempfile.mkdtemp(prefix="nexus-data-tests-")
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  return path


def small_config(**overrides):
  """The default data section on the small corpus, with ``overrides`` applied (unchecked).

  A ConfigDict, as the command line gives it, so tests can build bad sections and see the checks of
  ``validate_data_config`` (a ``DataConfig`` refuses bad values when it is built).
  """
  defaults = data_lib.DataConfig(
    corpus_dir=os.path.join(scratch_dir(), "corpus"), corpus_bytes_per_source=SMALL_BYTES_PER_SOURCE
  )
  config = ml_collections.ConfigDict(dataclasses.asdict(defaults))
  for key, value in overrides.items():
    config[key] = value
  return config


def toy_spec(letter: str, **fields) -> dict:
  """A TFDS spec naming the local toy dataset ``toy_letters/<letter>`` (prepared on first use)."""
  data_dir = toy_tfds.prepare(os.path.join(scratch_dir(), "tfds"))
  return {"name": f"toy_letters/{letter}", "data_dir": data_dir, **fields}


def corpus_texts(config, source: str, split: str) -> list[str]:
  """Every document text of one split of a built-in source (building the small corpus if needed)."""
  summary = data_lib.build_corpus(
    config.corpus_dir, bytes_per_source=config.corpus_bytes_per_source, seed=config.seed
  )
  data_source = tfds.data_source(
    f"nexus_corpus/{source}", split=split, data_dir=summary["path"], download=False
  )
  return [data_source[i]["text"].decode("utf-8") for i in range(len(data_source))]
