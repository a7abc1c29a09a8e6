"""A local TFDS dataset standing in for a user's ArrayRecord dataset (e.g. C4): no network.

``toy_letters/<letter>`` has ``train`` and ``validation`` splits whose documents are runs of one
letter, so a test can tell from any packed row which source it came from;
``toy_letters/no_validation`` lacks a validation split (TFDS refuses to write empty splits: tests
select ``train[:0]`` for those).
"""

import functools

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

LETTERS = ("a", "b", "c")


class ToyLetters(tfds.core.GeneratorBasedBuilder):
  """Documents of 3, 6, ..., 3 * num_documents copies of one letter (TFDS shuffles them on write)."""

  VERSION = tfds.core.Version("1.0.0")
  BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=name) for name in (*LETTERS, "no_validation")]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:  # see nexus.data.tfds_corpus.NexusCorpus.code_path
    return epath.Path(__file__)

  def _info(self):
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {"text": tfds.features.Text(), "length": tfds.features.Scalar(np.int32)}
      ),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    name = self.builder_config.name
    letter = name if name in LETTERS else "z"
    generators = {"train": self._generate_examples(letter, 40)}
    if name != "no_validation":
      generators["validation"] = self._generate_examples(letter, 10)
    return generators

  def _generate_examples(self, letter, num_documents):
    for n in range(1, num_documents + 1):
      yield n, {"text": letter * (3 * n), "length": 3 * n}


@functools.cache
def prepare(data_dir: str) -> str:
  """Prepares every config of ``toy_letters`` in ``data_dir`` (once per process); returns it."""
  for config in ToyLetters.BUILDER_CONFIGS:
    ToyLetters(
      config=config.name, data_dir=data_dir, file_format="array_record"
    ).download_and_prepare(download_dir=f"{data_dir}/downloads")
  return data_dir
