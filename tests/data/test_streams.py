"""The training stream and the evaluation batches: shapes, contents, determinism, resumption,
multi-process sharding and prefetching."""

import json
import tempfile
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import grain
import numpy as np
import orbax.checkpoint as ocp
import tensorflow_datasets as tfds

from nexus import data as data_lib
from tests.data import fixtures

MODES = data_lib.SAMPLING_MODES
SHAPES = dict(num_inner_steps=3, global_batch_size=4, seq_len=24)
LETTER_IDS = {letter: ord(letter) + 3 for letter in "abc"}


def stream(config, seed=0, process_index=0, process_count=1, **shapes):
  return data_lib.make_train_stream(
    config,
    **{**SHAPES, **shapes},
    seed=seed,
    process_index=process_index,
    process_count=process_count,
  )


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def assert_batches_equal(first, second):
  for a, b in zip(first, second, strict=True):
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    np.testing.assert_array_equal(a["source_ids"], b["source_ids"])


def letters_config(mode="mixture", **overrides):
  """Three toy TFDS sources whose documents are runs of 'a', 'b' or 'c'."""
  fields = dict(
    sources=tuple(fixtures.toy_spec(letter) for letter in "abc"),
    held_out=(),
    mode=mode,
    weights=(0.5, 0.3, 0.2) if mode in ("pure_weighted", "mixture") else None,
  )
  return fixtures.small_config(**{**fields, **overrides})


def decoded_pieces(row):
  """The text of a byte-tokenized row, cut at document boundaries (BOS/EOS)."""
  return (
    data_lib.ByteTokenizer()
    .decode(np.where(row <= data_lib.EOS_ID, 3 + ord("\n"), row))
    .split("\n")
  )


class TrainStreamTest(parameterized.TestCase):
  def test_shapes_dtypes_and_no_padding(self):
    batch = next(stream(fixtures.small_config()))
    self.assertEqual(batch["tokens"].shape, (3, 4, 25))
    self.assertEqual(batch["source_ids"].shape, (3, 4))
    self.assertEqual((batch["tokens"].dtype, batch["source_ids"].dtype), (np.int32, np.int32))
    self.assertTrue(np.all(batch["tokens"] > 0))  # packed rows are full: no pad id
    self.assertTrue(np.all(batch["tokens"] < data_lib.ByteTokenizer.vocab_size))

  @parameterized.parameters(*MODES)
  def test_rows_come_from_their_source(self, mode):
    config = letters_config(mode)
    self.assertEqual(
      data_lib.train_source_names(config), ["toy_letters_a", "toy_letters_b", "toy_letters_c"]
    )
    for batch in take(stream(config, num_inner_steps=4, global_batch_size=6), 8):
      for k in range(4):
        if mode != "mixture":
          self.assertLen(set(batch["source_ids"][k]), 1)
        for row, source in zip(batch["tokens"][k], batch["source_ids"][k]):
          letter = "abc"[source]
          content = row[row > data_lib.EOS_ID]
          self.assertTrue(np.all(content == LETTER_IDS[letter]), msg=(mode, letter, row))

  def test_documents_are_packed_with_bos_and_eos(self):
    batch = next(stream(letters_config("pure_uniform"), seq_len=200))
    row = batch["tokens"][0, 0]
    bos, eos = np.flatnonzero(row == data_lib.BOS_ID), np.flatnonzero(row == data_lib.EOS_ID)
    self.assertGreater(len(bos), 1)
    # Documents are back to back: every EOS is followed by a BOS, every BOS follows an EOS (row
    # edges aside).
    np.testing.assert_array_equal(bos[bos > 0] - 1, eos[eos < len(row) - 1])

  def test_an_epoch_reads_every_window_once(self):
    spec = fixtures.toy_spec("a")
    source = tfds.data_source(
      "toy_letters/a", split="train", data_dir=spec["data_dir"], download=False
    )
    tokenizer = data_lib.ByteTokenizer()
    stored = np.concatenate(
      [tokenizer.encode_document(source[i]["text"]) for i in range(len(source))]
    )
    # 40 documents of 3, 6, ..., 120 letters: 2460 letters + 80 BOS/EOS = 101 windows of L+1 = 25
    # tokens.
    windows = [w.tobytes() for w in stored[:2525].reshape(101, 25)]
    config = letters_config("pure_uniform", sources=(spec,))
    rows = np.concatenate(
      [b["tokens"][:, 0] for b in take(stream(config, global_batch_size=1), 68)]
    )
    first, second = [[row.tobytes() for row in rows[start : start + 101]] for start in (0, 101)]
    self.assertCountEqual(first, windows)
    self.assertCountEqual(second, windows)
    self.assertNotEqual(first, second)  # each epoch in its own order

  def test_training_does_no_tokenization(self):
    config = fixtures.small_config()
    expected = take(stream(config), 2)  # builds the token stores
    with mock.patch.object(
      data_lib.ByteTokenizer, "encode_document", side_effect=AssertionError("tokenized")
    ):
      assert_batches_equal(expected, take(stream(config), 2))

  @parameterized.parameters(*MODES)
  def test_deterministic_and_seeded(self, mode):
    config = letters_config(mode)
    first = take(stream(config, seed=3), 4)
    assert_batches_equal(first, take(stream(config, seed=3), 4))
    other = take(stream(config, seed=4), 4)
    self.assertFalse(all(np.array_equal(a["tokens"], b["tokens"]) for a, b in zip(first, other)))

  @parameterized.parameters(*MODES)
  def test_resumes_on_the_exact_next_batch(self, mode):
    config = fixtures.small_config(
      mode=mode, weights=(1.0, 2.0, 3.0, 4.0) if "weight" in mode or mode == "mixture" else None
    )
    original = stream(config)
    take(original, 3)
    state = json.loads(json.dumps(original.get_state()))
    expected = take(original, 3)
    resumed = stream(config)
    resumed.set_state(state)
    assert_batches_equal(expected, take(resumed, 3))

  def test_resumes_through_orbax(self):
    config = fixtures.small_config()
    original = stream(config)
    take(original, 2)
    with tempfile.TemporaryDirectory() as directory:
      with ocp.CheckpointManager(directory) as manager:
        manager.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(original)))
        manager.wait_until_finished()
        expected = take(original, 2)
        resumed = stream(config)
        manager.restore(
          2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(resumed))
        )
    assert_batches_equal(expected, take(resumed, 2))

  def test_state_of_another_configuration_is_rejected(self):
    state = stream(fixtures.small_config()).get_state()
    with self.assertRaisesRegex(ValueError, r"different \['seq_len', 'windows'\]"):
      stream(fixtures.small_config(), seq_len=32).set_state(state)

  @parameterized.parameters(*MODES)
  def test_process_shards_concatenate_to_the_single_process_batch(self, mode):
    config = letters_config(mode)
    shapes = dict(num_inner_steps=4, global_batch_size=8)
    single = take(stream(config, **shapes), 5)
    for process_count in (2, 4):
      shards = [
        stream(config, process_index=p, process_count=process_count, **shapes)
        for p in range(process_count)
      ]
      per_process = [take(shard, 5) for shard in shards]
      for step, want in enumerate(single):
        for key in ("tokens", "source_ids"):
          got = np.concatenate([batches[step][key] for batches in per_process], axis=1)
          np.testing.assert_array_equal(got, want[key])
      for p, shard in enumerate(shards):  # each process only read lanes (rows) of its own shard
        rows = set(np.flatnonzero(np.sum(shard.get_state()["rows_read"], axis=0)).tolist())
        local = 8 // process_count
        self.assertTrue(rows <= set(range(p * local, (p + 1) * local)), msg=rows)

  @parameterized.parameters("thread", "process")
  def test_prefetch_gives_the_same_stream(self, prefetch):
    config = fixtures.small_config()
    expected = take(stream(config), 4)
    prefetched = stream(fixtures.small_config(prefetch=prefetch))
    try:
      assert_batches_equal(expected[:2], take(prefetched, 2))
      state = prefetched.get_state()
      assert_batches_equal(expected[2:], take(prefetched, 2))
    finally:
      if hasattr(prefetched, "close"):
        prefetched.close()
    resumed = stream(fixtures.small_config(prefetch=prefetch))
    try:
      resumed.set_state(state)
      assert_batches_equal(expected[2:], take(resumed, 2))
    finally:
      if hasattr(resumed, "close"):
        resumed.close()

  def test_bad_process_index(self):
    with self.assertRaisesRegex(ValueError, "outside"):
      stream(fixtures.small_config(), process_index=2, process_count=2)


class EvalBatchesTest(absltest.TestCase):
  def test_fixed_repeatable_and_tagged(self):
    config = fixtures.small_config()
    names = ["code", "algebra", "docstrings", "math_composite"]
    batches = data_lib.make_eval_batches(
      config, sources=names, batch_size=3, seq_len=16, num_batches=2
    )
    self.assertEqual(list(batches), names)
    again = data_lib.make_eval_batches(
      config, sources=names, batch_size=3, seq_len=16, num_batches=2
    )
    all_names = data_lib.all_source_names(config)
    for name in names:
      self.assertLen(batches[name], 2)
      assert_batches_equal(batches[name], again[name])
      for batch in batches[name]:
        self.assertEqual(batch["tokens"].shape, (3, 17))
        self.assertEqual(batch["tokens"].dtype, np.int32)
        np.testing.assert_array_equal(
          batch["source_ids"], np.full(3, all_names.index(name), np.int32)
        )

  def test_rows_are_the_stored_documents_packed_in_order(self):
    config = fixtures.small_config()
    tokenizer = data_lib.ByteTokenizer()
    for split in ("validation", "test"):
      stored = np.concatenate(
        [tokenizer.encode_document(text) for text in fixtures.corpus_texts(config, "code", split)]
      )
      batches = data_lib.make_eval_batches(
        config, sources=["code"], batch_size=4, seq_len=31, num_batches=3, split=split
      )
      rows = np.concatenate([batch["tokens"] for batch in batches["code"]])
      np.testing.assert_array_equal(rows, stored[: 12 * 32].reshape(12, 32))

  def test_rows_come_from_the_validation_split(self):
    config = fixtures.small_config()
    validation = "".join(fixtures.corpus_texts(config, "prose", "validation"))
    batches = data_lib.make_eval_batches(
      config, sources=["prose"], batch_size=2, seq_len=64, num_batches=3
    )
    for batch in batches["prose"]:
      for row in batch["tokens"]:
        for piece in decoded_pieces(row):
          self.assertIn(piece, validation)

  def test_test_split_is_separate_and_optional(self):
    config = fixtures.small_config()
    kwargs = dict(sources=["prose", "docstrings"], batch_size=2, seq_len=64, num_batches=2)
    validation = data_lib.make_eval_batches(config, **kwargs)
    test = data_lib.make_eval_batches(config, split="test", **kwargs)
    for name in kwargs["sources"]:
      test_text = "".join(fixtures.corpus_texts(config, name, "test"))
      self.assertFalse(np.array_equal(validation[name][0]["tokens"], test[name][0]["tokens"]))
      for piece in decoded_pieces(test[name][0]["tokens"][0]):
        self.assertIn(piece, test_text)
    letters = letters_config(
      "pure_uniform",
      sources=(fixtures.toy_spec("a"),),
      held_out=(fixtures.toy_spec("c", test_split="validation"),),
    )
    batches = data_lib.make_eval_batches(
      letters, sources=["toy_letters_c"], batch_size=1, seq_len=8, num_batches=1, split="test"
    )
    self.assertTrue(np.all(batches["toy_letters_c"][0]["tokens"][0, 1:4] == LETTER_IDS["c"]))
    with self.assertRaisesRegex(
      ValueError, "'toy_letters_a' has no test split; give its TFDS spec a 'test_split'"
    ):
      data_lib.make_eval_batches(
        letters, sources=["toy_letters_a"], batch_size=1, seq_len=8, num_batches=1, split="test"
      )
    with self.assertRaisesRegex(ValueError, "split='train' is not one of"):
      data_lib.make_eval_batches(config, split="train", **kwargs)

  def test_small_splits_cycle(self):
    config = letters_config("pure_uniform", held_out=(fixtures.toy_spec("c"),))
    # 10 validation documents of 3..30 letters: 185 tokens, far fewer than 4 * 8 * 33 requested.
    batches = data_lib.make_eval_batches(
      config, sources=["toy_letters_c"], batch_size=8, seq_len=32, num_batches=4
    )
    tokens = np.stack([b["tokens"] for b in batches["toy_letters_c"]])
    self.assertTrue(np.all(tokens[tokens > data_lib.EOS_ID] == LETTER_IDS["c"]))

  def test_unknown_source(self):
    with self.assertRaisesRegex(ValueError, r"eval sources \['wikipedia'\] are not in"):
      data_lib.make_eval_batches(
        fixtures.small_config(), sources=["wikipedia"], batch_size=2, seq_len=8, num_batches=1
      )


if __name__ == "__main__":
  absltest.main()
