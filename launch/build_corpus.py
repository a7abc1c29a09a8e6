r"""Builds (or finds cached) the built-in multi-source corpus and prints its size per source.

  python -m launch.build_corpus [--corpus_dir=~/.cache/nexus/corpus] [--bytes_per_source=2000000] [--seed=0]
  python -m launch.build_corpus --sentencepiece_vocab_size=4096   # also train a SentencePiece model

Nothing is downloaded: the sources come from this Python installation and from generators. Training
uses the same cache automatically (``config.data.corpus_dir``), so running this first is optional. The
SentencePiece model (needs ``pip install sentencepiece``) is trained on the training splits of the
training sources; use it with ``--config.data.tokenizer=<printed path>``.
"""

import os

from absl import app
from absl import flags
import tensorflow_datasets as tfds

from nexus import data as data_lib

_DEFAULTS = data_lib.default_data_config()
_CORPUS_DIR = flags.DEFINE_string("corpus_dir", _DEFAULTS.corpus_dir, "Parent directory of the corpus cache.")
_BYTES = flags.DEFINE_integer("bytes_per_source", _DEFAULTS.corpus_bytes_per_source,
                              "UTF-8 bytes per source over both splits (the size knob).")
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of the generated sources.")
_SP_VOCAB = flags.DEFINE_integer("sentencepiece_vocab_size", 0, "If > 0, also train a SentencePiece model.")
_SP_TYPE = flags.DEFINE_enum("sentencepiece_model_type", "bpe", ["bpe", "unigram"], "SentencePiece model type.")


def _training_texts(path: str):
  for name in data_lib.BUILTIN_SOURCES:
    if not data_lib.BUILTIN_SOURCES[name].held_out:
      source = tfds.data_source(f"nexus_corpus/{name}", split="train", data_dir=path, download=False)
      for i in range(len(source)):
        yield source[i]["text"].decode("utf-8")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  tfds.disable_progress_bar()
  try:
    summary = data_lib.build_corpus(_CORPUS_DIR.value, bytes_per_source=_BYTES.value, seed=_SEED.value)
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None
  print(data_lib.format_summary(summary))
  print("reused the cached corpus" if summary["cached"] else f"built in {summary['build_seconds']:.1f}s")
  if _SP_VOCAB.value > 0:
    prefix = os.path.join(summary["path"], f"sentencepiece_{_SP_TYPE.value}_{_SP_VOCAB.value}")
    try:
      model = data_lib.train_sentencepiece(_training_texts(summary["path"]), prefix, vocab_size=_SP_VOCAB.value,
                                           model_type=_SP_TYPE.value)
    except ValueError as error:
      raise SystemExit(f"error: {error}") from None
    print(f"SentencePiece model: {model}  (use --config.data.tokenizer={model})")


if __name__ == "__main__":
  app.run(main)
