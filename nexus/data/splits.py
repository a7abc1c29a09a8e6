"""Deterministic train/validation assignment and seed derivation by hashing (no state, no RNG).

A document's split is a function of its key alone (a file path, a topic name, a problem's prompt),
so the two splits can never share a key, whatever the seed, size or order of generation.
"""

import hashlib

TRAIN = "train"
VALIDATION = "validation"
SPLITS = (TRAIN, VALIDATION)
VALIDATION_PERCENT = 10


def _digest(text: str) -> int:
  return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def split_of(key: str) -> str:
  """The split of the document identified by ``key`` (about VALIDATION_PERCENT% go to validation)."""
  return VALIDATION if _digest("split:" + key) % 100 < VALIDATION_PERCENT else TRAIN


def hash_order(key: str) -> int:
  """A sort key that orders documents pseudo-randomly but reproducibly."""
  return _digest("order:" + key)


def derive_seed(*parts) -> int:
  """A 32-bit seed from any parts (e.g. the run seed and a source name), stable across runs."""
  return _digest("seed:" + "/".join(str(p) for p in parts)) % (2**32)
