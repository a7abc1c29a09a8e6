"""Pre-tokenized token stores: exact reads across chunk boundaries, both id widths, and damaged caches."""

import glob
import os
import pickle
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from nexus import data as data_lib
from nexus.data import token_store
from tests.data import fixtures


def write_documents(path, documents, vocab_size):
  return token_store.write_store(path, documents, vocab_size=vocab_size, description={"test": True})


def truncate(path):
  with open(path, "r+b") as f:
    f.truncate(1000)


class TokenStoreTest(parameterized.TestCase):
  @parameterized.parameters((300, np.uint16), (70_000, np.int32))
  def test_reads_equal_slices_of_the_stream(self, vocab_size, dtype):
    rng = np.random.default_rng(0)
    documents = [rng.integers(0, vocab_size, size=n) for n in rng.integers(1, 40, size=50)]
    stream = np.concatenate(documents)
    path = os.path.join(self.enterContext(tempfile.TemporaryDirectory()), "store")
    with mock.patch.object(token_store, "CHUNK_TOKENS", 7):  # many chunks: windows straddle several
      meta = write_documents(path, iter(documents), vocab_size)
    self.assertEqual(np.dtype(meta["dtype"]), np.dtype(dtype).newbyteorder("<"))
    self.assertEqual(
      (meta["num_tokens"], meta["num_documents"], meta["num_chunks"]),
      (len(stream), 50, -(-len(stream) // 7)),
    )
    store = token_store.TokenStore(path)
    for length in (1, 5, 7, 8, 23):
      starts = rng.integers(0, len(stream) - length + 1, size=30)
      got = store.read(starts, length)
      self.assertEqual(got.dtype, np.int32)
      np.testing.assert_array_equal(got, np.stack([stream[s : s + length] for s in starts]))
    np.testing.assert_array_equal(
      store.read([len(stream) - 3], 3)[0], stream[-3:]
    )  # the padded last chunk
    with self.assertRaisesRegex(ValueError, "leave the"):
      store.read([len(stream) - 2], 3)
    reopened = pickle.loads(pickle.dumps(store))  # e.g. into a prefetch worker process
    np.testing.assert_array_equal(reopened.read([5], 9), store.read([5], 9))

  def test_out_of_vocabulary_ids_are_rejected(self):
    path = os.path.join(self.enterContext(tempfile.TemporaryDirectory()), "store")
    with self.assertRaisesRegex(ValueError, r"outside \[0, 10\)"):
      write_documents(path, [np.asarray([1, 10])], vocab_size=10)
    self.assertFalse(token_store.is_complete(path))

  def test_truncated_store_is_damaged(self):
    path = os.path.join(self.enterContext(tempfile.TemporaryDirectory()), "store")
    write_documents(path, [np.arange(50_000) % 300], vocab_size=300)
    truncate(os.path.join(path, token_store.RECORDS_FILE))
    with self.assertRaises(token_store.DamagedStoreError):
      token_store.TokenStore(path)


class DamagedCacheTest(absltest.TestCase):
  """A damaged cache is one line naming it and the fix, not an ArrayRecord or JSON traceback."""

  def setUp(self):
    super().setUp()
    self.config = fixtures.small_config(
      corpus_dir=self.enterContext(tempfile.TemporaryDirectory()), held_out=()
    )
    self.corpus = data_lib.build_corpus(
      self.config.corpus_dir, bytes_per_source=self.config.corpus_bytes_per_source, seed=0
    )["path"]
    self.rebuild = (
      f"python -m launch.build_corpus --corpus_dir={self.config.corpus_dir} "
      f"--bytes_per_source={self.config.corpus_bytes_per_source} --seed=0 --rebuild"
    )

  def stream(self):
    return data_lib.make_train_stream(
      self.config,
      num_inner_steps=2,
      global_batch_size=2,
      seq_len=16,
      seed=0,
      process_index=0,
      process_count=1,
    )

  def test_damaged_corpus_files(self):
    truncate(
      glob.glob(os.path.join(self.corpus, "nexus_corpus", "code", "*", "*train.array_record*"))[0]
    )
    with self.assertRaises(ValueError) as raised:
      self.stream()
    message = str(raised.exception)
    self.assertRegex(message, f"^the corpus cache {self.corpus} is damaged")
    self.assertIn(self.rebuild, message)
    self.assertNotIn("\n", message)

  def test_damaged_corpus_summary(self):
    with open(os.path.join(self.corpus, "summary.json"), "w") as f:
      f.write('{"torn')
    with self.assertRaisesRegex(
      ValueError, f"^the corpus cache {self.corpus} is damaged .*{self.rebuild}"
    ):
      self.stream()

  def test_damaged_token_store(self):
    next(self.stream())
    store = glob.glob(os.path.join(self.config.corpus_dir, "tokens", "byte", "prose-train-*"))[0]
    truncate(os.path.join(store, token_store.RECORDS_FILE))
    with self.assertRaisesRegex(
      ValueError, f"^the token cache {store} is damaged .*rm -r {store}.*{self.rebuild}"
    ):
      self.stream()


if __name__ == "__main__":
  absltest.main()
