r"""Builds (or finds cached) the built-in corpus, pre-tokenizes it, and prints its size per source.

  python -m launch.build_corpus [--corpus_dir=~/.cache/nexus/corpus] [--bytes_per_source=2000000] [--seed=0]
  python -m launch.build_corpus --tokenizer=/path/to/model.model    # pre-tokenize with SentencePiece
  python -m launch.build_corpus --sentencepiece_vocab_size=4096     # train a SentencePiece model, use it
  python -m launch.build_corpus --rebuild                           # delete a damaged cache, build again

Nothing is downloaded: the sources come from this Python installation and from generators. Training
uses the same caches automatically (``config.data.corpus_dir``) and builds what is missing on first
use, so running this first is optional. The SentencePiece model (needs ``pip install
sentencepiece``) is trained on the training splits of the training sources; use it with
``--config.data.tokenizer=<printed path>``. ``--rebuild`` deletes this corpus and every token cache
of ``--corpus_dir`` first.
"""

import dataclasses
import os
import shutil

from absl import app
from absl import flags
from absl import logging
import tensorflow_datasets as tfds

from nexus import data as data_lib
from nexus.data import corpus
from nexus.data import pretokenize

_DEFAULTS = data_lib.DataConfig()
_CORPUS_DIR = flags.DEFINE_string(
  "corpus_dir", _DEFAULTS.corpus_dir, "Parent directory of the corpus cache."
)
_BYTES = flags.DEFINE_integer(
  "bytes_per_source",
  _DEFAULTS.corpus_bytes_per_source,
  "UTF-8 bytes per source over the three splits (the size knob).",
)
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Seed of the generated sources.")
_TOKENIZER = flags.DEFINE_string(
  "tokenizer", _DEFAULTS.tokenizer, "'byte' or a SentencePiece .model path."
)
_REBUILD = flags.DEFINE_bool(
  "rebuild", False, "Delete the corpus and the token caches first (a damaged cache)."
)
_SP_VOCAB = flags.DEFINE_integer(
  "sentencepiece_vocab_size", 0, "If > 0, train a SentencePiece model and pre-tokenize with it."
)
_SP_TYPE = flags.DEFINE_enum(
  "sentencepiece_model_type", "bpe", ["bpe", "unigram"], "SentencePiece model type."
)


def _training_texts(path: str):
  for name in data_lib.BUILTIN_SOURCES:
    if not data_lib.BUILTIN_SOURCES[name].held_out:
      source = tfds.data_source(
        f"nexus_corpus/{name}", split="train", data_dir=path, download=False
      )
      for i in range(len(source)):
        yield source[i]["text"].decode("utf-8")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not flags.FLAGS[
    "verbosity"
  ].present:  # TFDS logs INFO lines per dataset; one line per source instead
    logging.set_verbosity(logging.WARNING)
  try:
    config = data_lib.DataConfig(
      corpus_dir=_CORPUS_DIR.value,
      corpus_bytes_per_source=_BYTES.value,
      seed=_SEED.value,
      tokenizer=_TOKENIZER.value,
    )
    if _REBUILD.value:
      for path in (
        corpus.corpus_path(
          config.corpus_dir, bytes_per_source=config.corpus_bytes_per_source, seed=config.seed
        ),
        pretokenize.tokens_root(config.corpus_dir),
      ):
        shutil.rmtree(path, ignore_errors=True)
    summary = data_lib.build_corpus(
      config.corpus_dir, bytes_per_source=config.corpus_bytes_per_source, seed=config.seed
    )
    print(data_lib.format_summary(summary))
    print(
      "reused the cached corpus"
      if summary["cached"]
      else f"built in {summary['build_seconds']:.1f}s"
    )
    if _SP_VOCAB.value > 0:
      prefix = os.path.join(summary["path"], f"sentencepiece_{_SP_TYPE.value}_{_SP_VOCAB.value}")
      tokenizer = data_lib.train_sentencepiece(
        _training_texts(summary["path"]),
        prefix,
        vocab_size=_SP_VOCAB.value,
        model_type=_SP_TYPE.value,
      )
      config = dataclasses.replace(config, tokenizer=tokenizer)
      print(
        f"SentencePiece model: {config.tokenizer}  (use --config.data.tokenizer={config.tokenizer})"
      )
    data_lib.prepare_data(config)
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None
  print(
    f"token caches ({data_lib.tokenizer_id(config.tokenizer)}) in {pretokenize.tokens_root(config.corpus_dir)}"
  )


if __name__ == "__main__":
  app.run(main)
