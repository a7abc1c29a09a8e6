"""The built-in corpus as a tensorflow-datasets builder writing ArrayRecord files.

One builder config per built-in source (``nexus_corpus/code``, ``nexus_corpus/prose``, ...), each
with ``train``, ``validation`` and ``test`` splits of ``{"text": Text}`` examples. Prepared datasets
are read with ``tfds.data_source`` (random access, no TensorFlow), exactly like any user dataset
prepared with ``tfds build --file_format=array_record``. Nothing is downloaded: documents come from
``nexus.data.builtin_sources``.
"""

from etils import epath
import tensorflow_datasets as tfds

from nexus.data import builtin_sources
from nexus.data import splits

BUILDER_NAME = "nexus_corpus"
TEXT_FEATURE = "text"
DEFAULT_BYTES_PER_SOURCE = 2_000_000


class NexusCorpus(tfds.core.GeneratorBasedBuilder):
  """Nexus's built-in multi-source corpus (one config per source)."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
    "1.0.0": "Four training and two held-out sources built from the Python installation.",
    "1.1.0": "A test split (10% of the keys, taken from train) next to train and validation.",
  }
  BUILDER_CONFIGS = [
    tfds.core.BuilderConfig(name=source.name, description=source.description)
    for source in builtin_sources.BUILTIN_SOURCES.values()
  ]

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """This file. TFDS 4.9.10 would otherwise need the undeclared package importlib_resources for any
    builder defined inside a package (tensorflow/datasets#11212)."""
    return epath.Path(__file__)

  def __init__(self, *, bytes_per_source: int = DEFAULT_BYTES_PER_SOURCE, seed: int = 0, **kwargs):
    """``bytes_per_source`` and ``seed`` matter only when preparing; keep one data_dir per pair."""
    self._bytes_per_source = bytes_per_source
    self._seed = seed
    super().__init__(**kwargs)

  def _log_download_bytes(self) -> None:
    """Silent: ``nexus.data.corpus`` prints one progress line per source instead of TFDS's banners."""

  def _log_download_done(self) -> None:
    """Silent, like ``_log_download_bytes``."""

  def _info(self) -> tfds.core.DatasetInfo:
    source = builtin_sources.BUILTIN_SOURCES[self.builder_config.name]
    return tfds.core.DatasetInfo(
      builder=self,
      description=source.description,
      features=tfds.features.FeaturesDict({TEXT_FEATURE: tfds.features.Text()}),
      license=source.licence,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    documents = builtin_sources.select_documents(
      self.builder_config.name, bytes_per_source=self._bytes_per_source, seed=self._seed
    )
    return {split: self._generate_examples(documents[split]) for split in splits.SPLITS}

  def _generate_examples(self, texts):
    for index, text in enumerate(texts):
      yield index, {TEXT_FEATURE: text}
