"""Tokenizers: the byte tokenizer's id layout and exact round trips on every corpus source."""

import os
import sys
import tempfile
from unittest import mock

from absl.testing import absltest
import numpy as np

from nexus import data as data_lib
from nexus.data import splits
from nexus.data import tokenizers
from tests.data import fixtures

SAMPLES = ("", "hello", "naïve café — ∑ 漢字 🙂\n\ttabs", "\x00\x7f control bytes")


class ByteTokenizerTest(absltest.TestCase):
  def test_layout(self):
    tokenizer = data_lib.ByteTokenizer()
    self.assertEqual(tokenizer.vocab_size, 259)
    self.assertEqual((tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id), (0, 1, 2))
    self.assertEqual(tokenizer.encode("A\x00"), [ord("A") + 3, 3])
    ids = tokenizer.encode_document(bytes(range(256)))  # every byte value, raw
    self.assertEqual(ids[1:-1].tolist(), list(range(3, 259)))  # never a special id

  def test_round_trip_samples(self):
    tokenizer = data_lib.ByteTokenizer()
    for text in SAMPLES:
      self.assertEqual(tokenizer.decode(tokenizer.encode(text)), text)

  def test_document_is_wrapped_and_int32(self):
    tokenizer = data_lib.ByteTokenizer()
    for text in ("héllo", "héllo".encode()):
      ids = tokenizer.encode_document(text)
      self.assertEqual(ids.dtype, np.int32)
      self.assertEqual(ids.tolist(), [1, *tokenizer.encode("héllo"), 2])
      self.assertEqual(tokenizer.decode(ids), "héllo")  # special ids are dropped

  def test_decode_tolerates_generated_garbage(self):
    tokenizer = data_lib.ByteTokenizer()
    broken = [0xC3 + 3, 1, 0, 2]  # a truncated UTF-8 sequence and special ids
    self.assertEqual(tokenizer.decode(broken), "\ufffd")

  def test_round_trip_every_source(self):
    tokenizer = data_lib.ByteTokenizer()
    config = fixtures.small_config()
    for source in data_lib.BUILTIN_SOURCES:
      for split in splits.SPLITS:
        for text in fixtures.corpus_texts(config, source, split):
          self.assertEqual(tokenizer.decode(tokenizer.encode(text)), text, msg=source)


class MakeTokenizerTest(absltest.TestCase):
  def test_byte(self):
    self.assertIsInstance(data_lib.make_tokenizer("byte"), data_lib.ByteTokenizer)

  def test_missing_model_file(self):
    with self.assertRaisesRegex(ValueError, "neither 'byte' nor an existing SentencePiece"):
      data_lib.make_tokenizer("/no/such/tokenizer.model")

  def test_sentencepiece_missing_is_a_clear_error(self):
    model = os.path.join(self.enterContext(tempfile.TemporaryDirectory()), "tokenizer.model")
    with open(model, "w") as f:
      f.write("never parsed")
    with mock.patch.dict(sys.modules, {"sentencepiece": None}):  # as if it were not installed
      with self.assertRaisesRegex(ValueError, "pip install sentencepiece"):
        data_lib.make_tokenizer(model)

  def test_sentencepiece_trained_on_corpus_round_trips(self):
    config = fixtures.small_config()
    texts = {
      source: fixtures.corpus_texts(config, source, "train") for source in data_lib.BUILTIN_SOURCES
    }
    prefix = os.path.join(self.enterContext(tempfile.TemporaryDirectory()), "sp")
    model = tokenizers.train_sentencepiece(
      [t for ts in texts.values() for t in ts], prefix, vocab_size=400
    )
    tokenizer = data_lib.make_tokenizer(model)
    self.assertEqual((tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id), (0, 1, 2))
    for source, source_texts in texts.items():
      for text in source_texts[:20]:
        self.assertEqual(tokenizer.decode(tokenizer.encode(text)), text, msg=source)


if __name__ == "__main__":
  absltest.main()
