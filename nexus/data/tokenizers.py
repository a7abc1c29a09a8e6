"""Tokenizers: byte-level by default (nothing to download), SentencePiece optionally.

Every tokenizer reserves id 0 for padding (masked out of every loss) and wraps each document as
``[BOS] tokens [EOS]`` when it is packed into training sequences. ``encode``/``decode`` round-trip
any string exactly for the byte tokenizer, and for SentencePiece models trained by
``train_sentencepiece`` (identity normalisation, byte fallback, no dummy prefix).

SentencePiece is an optional dependency: it is imported only when a model path is used.
"""

from collections.abc import Iterable
from collections.abc import Sequence
import hashlib
import os
from typing import Protocol

import numpy as np

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
NUM_SPECIAL_IDS = 3
BYTE_TOKENIZER = "byte"


class Tokenizer(Protocol):
  """What the data pipeline and evaluation need from a tokenizer."""

  vocab_size: int
  pad_id: int
  bos_id: int
  eos_id: int

  def encode(self, text: str) -> list[int]: ...

  def decode(self, ids: Sequence[int]) -> str: ...

  def encode_document(self, text: str | bytes) -> np.ndarray: ...


class ByteTokenizer:
  """UTF-8 bytes shifted past the special ids: pad 0, bos 1, eos 2, byte b -> b + 3 (vocab 259)."""

  vocab_size = 256 + NUM_SPECIAL_IDS
  pad_id = PAD_ID
  bos_id = BOS_ID
  eos_id = EOS_ID

  def encode(self, text: str) -> list[int]:
    """The ids of ``text``'s UTF-8 bytes, without BOS/EOS."""
    return self._byte_ids(text.encode("utf-8")).tolist()

  def decode(self, ids: Sequence[int]) -> str:
    """The text of ``ids``; special ids are dropped and invalid UTF-8 (from sampling) is replaced."""
    array = np.asarray(ids, dtype=np.int64)
    array = array[(array >= NUM_SPECIAL_IDS) & (array < self.vocab_size)]
    return (array - NUM_SPECIAL_IDS).astype(np.uint8).tobytes().decode("utf-8", errors="replace")

  def encode_document(self, text: str | bytes) -> np.ndarray:
    """``[BOS] bytes [EOS]`` as int32 (accepts the raw bytes a TFDS text feature returns)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    ids = np.empty(len(data) + 2, dtype=np.int32)
    ids[0], ids[-1] = BOS_ID, EOS_ID
    ids[1:-1] = self._byte_ids(data)
    return ids

  @staticmethod
  def _byte_ids(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).astype(np.int32) + NUM_SPECIAL_IDS


def _import_sentencepiece():
  try:
    import sentencepiece  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ValueError(
      "the SentencePiece tokenizer needs the optional package sentencepiece: pip install sentencepiece "
      "(or use config.data.tokenizer='byte')."
    ) from None
  return sentencepiece


class SentencePieceTokenizer:
  """A SentencePiece model file; its ids are shifted by one unless the model already pads with 0.

  Round trips are exact for models trained by ``train_sentencepiece``; other models may normalise
  text (e.g. NFKC, whitespace), which is then not undone by ``decode``.
  """

  def __init__(self, model_path: str):
    sentencepiece = _import_sentencepiece()
    self._processor = sentencepiece.SentencePieceProcessor(model_file=model_path)
    self._shift = 0 if self._processor.pad_id() == PAD_ID else 1
    self.vocab_size = self._processor.get_piece_size() + self._shift
    self.pad_id = PAD_ID
    if self._processor.bos_id() < 0 or self._processor.eos_id() < 0:
      raise ValueError(
        f"SentencePiece model {model_path!r} has no BOS/EOS pieces; retrain it with bos_id/eos_id set."
      )
    self.bos_id = self._processor.bos_id() + self._shift
    self.eos_id = self._processor.eos_id() + self._shift

  def encode(self, text: str) -> list[int]:
    return [i + self._shift for i in self._processor.encode(text)]

  def decode(self, ids: Sequence[int]) -> str:
    special = {self.pad_id, self.bos_id, self.eos_id}
    return self._processor.decode([int(i) - self._shift for i in ids if int(i) not in special])

  def encode_document(self, text: str | bytes) -> np.ndarray:
    if isinstance(text, bytes):
      text = text.decode("utf-8")
    return np.asarray([self.bos_id, *self.encode(text), self.eos_id], dtype=np.int32)


def check_tokenizer_spec(spec: str) -> None:
  """Raises a one-line ValueError unless ``spec`` is 'byte' or a readable SentencePiece model file."""
  if spec == BYTE_TOKENIZER:
    return
  if not isinstance(spec, str) or not os.path.isfile(os.path.expanduser(spec)):
    raise ValueError(
      f"config.data.tokenizer={spec!r} is neither 'byte' nor an existing SentencePiece .model file."
    )
  _import_sentencepiece()


def tokenizer_id(spec: str) -> str:
  """A short name of the tokenizer ``spec`` for cache keys: 'byte', or 'sp-' and a hash of the model file.

  The hash is of the file's bytes, so a retrained model at the same path gets new caches.
  """
  check_tokenizer_spec(spec)
  if spec == BYTE_TOKENIZER:
    return BYTE_TOKENIZER
  with open(os.path.expanduser(spec), "rb") as f:
    return "sp-" + hashlib.sha256(f.read()).hexdigest()[:12]


def make_tokenizer(spec: str) -> Tokenizer:
  """``'byte'`` -> ``ByteTokenizer``; a path -> ``SentencePieceTokenizer`` of that model file."""
  check_tokenizer_spec(spec)
  if spec == BYTE_TOKENIZER:
    return ByteTokenizer()
  return SentencePieceTokenizer(os.path.expanduser(spec))


def train_sentencepiece(
  texts: Iterable[str], model_prefix: str, *, vocab_size: int, model_type: str = "bpe"
) -> str:
  """Trains a SentencePiece model on ``texts`` with exact round trips; returns the .model path.

  Ids follow the project convention (pad 0, bos 1, eos 2, unk 3); byte fallback makes every string
  encodable, and identity normalisation without a dummy prefix makes ``decode(encode(s)) == s``.
  """
  if model_type not in ("bpe", "unigram"):
    raise ValueError(f"model_type={model_type!r} is not 'bpe' or 'unigram'.")
  sentencepiece = _import_sentencepiece()
  with open(
    os.devnull, "w", encoding="utf-8"
  ) as quiet:  # the trainer logs hundreds of lines otherwise
    sentencepiece.SentencePieceTrainer.train(
      logstream=quiet,
      sentence_iterator=iter(texts),
      model_prefix=model_prefix,
      vocab_size=vocab_size,
      model_type=model_type,
      pad_id=PAD_ID,
      bos_id=BOS_ID,
      eos_id=EOS_ID,
      unk_id=NUM_SPECIAL_IDS,
      byte_fallback=True,
      normalization_rule_name="identity",
      add_dummy_prefix=False,
      remove_extra_whitespaces=False,
      split_digits=True,
      allow_whitespace_only_pieces=True,
      max_sentence_length=1 << 16,
      num_threads=os.cpu_count() or 1,
    )
  return model_prefix + ".model"
