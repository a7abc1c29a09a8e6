"""Deterministic train/validation/test assignment and seed derivation by hashing (no state, no RNG).

A document's split is a function of its key alone (a file path, a topic name, a problem's prompt):
``sha256("split:" + key) mod 100`` below ``VALIDATION_PERCENT`` is validation, the next
``TEST_PERCENT`` buckets are test, the rest is train. The three splits can therefore never share a
key, whatever the seed, size or order of generation. Validation (selection, early decisions,
training-time evaluation) keeps the buckets it had before the test split existed; test (reported
numbers) took its buckets from train.
"""

import hashlib

TRAIN = "train"
VALIDATION = "validation"
TEST = "test"
SPLITS = (TRAIN, VALIDATION, TEST)
EVAL_SPLITS = (VALIDATION, TEST)
VALIDATION_PERCENT = 10
TEST_PERCENT = 10


def _digest(text: str) -> int:
  return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def split_of(key: str) -> str:
  """The split of the document identified by ``key`` (about 80% train, 10% validation, 10% test)."""
  bucket = _digest("split:" + key) % 100
  if bucket < VALIDATION_PERCENT:
    return VALIDATION
  if bucket < VALIDATION_PERCENT + TEST_PERCENT:
    return TEST
  return TRAIN


def hash_order(key: str) -> int:
  """A sort key that orders documents pseudo-randomly but reproducibly."""
  return _digest("order:" + key)


def derive_seed(*parts) -> int:
  """A 32-bit seed from any parts (e.g. the run seed and a source name), stable across runs."""
  return _digest("seed:" + "/".join(str(p) for p in parts)) % (2**32)
