"""SentencePiece end to end: train a small vocabulary on the built-in corpus, pre-tokenize with it,
stream batches, evaluate, and take two Nexus training steps on a streamed batch (public APIs)."""

import os
import tempfile

from absl.testing import absltest
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import nexus
from nexus import data as data_lib
from nexus import model as model_lib
from tests.data import fixtures

VOCAB_SIZE = 400


@pytest.mark.slow
class SentencePieceEndToEndTest(absltest.TestCase):
  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.tmp = tempfile.mkdtemp(dir=fixtures.scratch_dir())
    config = fixtures.small_config()
    cls.texts = {
      name: fixtures.corpus_texts(config, name, "train") for name in data_lib.BUILTIN_SOURCES
    }
    training_texts = [
      text for name in data_lib.train_source_names(config) for text in cls.texts[name]
    ]
    cls.model = data_lib.train_sentencepiece(
      training_texts, os.path.join(cls.tmp, "sp"), vocab_size=VOCAB_SIZE
    )
    cls.config = fixtures.small_config(tokenizer=cls.model)
    cls.tokenizer = data_lib.make_tokenizer(cls.model)

  def test_stream_reads_the_pre_tokenized_corpus(self):
    self.assertEqual(self.tokenizer.vocab_size, VOCAB_SIZE)
    self.assertRegex(data_lib.tokenizer_id(self.model), r"^sp-[0-9a-f]{12}$")
    data_lib.prepare_data(self.config)
    stores = os.listdir(
      os.path.join(self.config.corpus_dir, "tokens", data_lib.tokenizer_id(self.model))
    )
    self.assertLen(stores, 3 * len(data_lib.BUILTIN_SOURCES))  # every split of every source
    stream = data_lib.make_train_stream(
      self.config,
      num_inner_steps=2,
      global_batch_size=3,
      seq_len=64,
      seed=0,
      process_index=0,
      process_count=1,
    )
    names = data_lib.train_source_names(self.config)
    for batch in (next(stream) for _ in range(3)):
      self.assertEqual(batch["tokens"].shape, (2, 3, 65))
      self.assertTrue(np.all((batch["tokens"] > 0) & (batch["tokens"] < VOCAB_SIZE)))
      for row, source in zip(batch["tokens"].reshape(-1, 65), batch["source_ids"].ravel()):
        corpus = "".join(self.texts[names[source]])
        pieces = np.split(
          row, np.flatnonzero(row <= data_lib.EOS_ID)
        )  # documents (and their ends) of the row
        for piece in pieces:
          text = self.tokenizer.decode(piece)
          self.assertIn(text, corpus)

  def test_test_split_batches(self):
    batches = data_lib.make_eval_batches(
      self.config, sources=["math_composite"], batch_size=2, seq_len=32, num_batches=1, split="test"
    )
    row = batches["math_composite"][0]["tokens"][0]
    self.assertTrue(np.all(row < VOCAB_SIZE))
    self.assertIn(
      "Question:",
      self.tokenizer.decode(row) + self.tokenizer.decode(batches["math_composite"][0]["tokens"][1]),
    )

  def test_two_training_steps(self):
    """Nexus over the stream's K micro-batches, on a one-layer model with the SentencePiece vocabulary."""
    model = model_lib.Transformer(
      model_lib.ModelConfig(
        vocab_size=VOCAB_SIZE, num_layers=1, d_model=32, num_heads=2, mlp_dim=64, max_seq_len=32
      ),
      rngs=nnx.Rngs(0),
    )
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    loss = lambda params, tokens: model_lib.mean_token_loss(
      nnx.merge(graphdef, params, rest), tokens
    )
    tx = nexus.nexus(optax.adamw(1e-2), 0.05, num_inner_steps=2)

    @jax.jit
    def step(params, state, tokens):
      grad_fn = lambda p, i: jax.grad(loss)(p, tokens[i])
      updates, state = tx.update(params, state, params, grad_fn=grad_fn)
      return optax.apply_updates(params, updates), state, loss(params, tokens[0])

    stream = data_lib.make_train_stream(
      self.config,
      num_inner_steps=2,
      global_batch_size=4,
      seq_len=32,
      seed=0,
      process_index=0,
      process_count=1,
    )
    tokens = jnp.asarray(next(stream)["tokens"])
    state = tx.init(params)
    losses = []
    for _ in range(3):
      params, state, value = step(params, state, tokens)
      losses.append(float(value))
    self.assertTrue(np.all(np.isfinite(losses)))
    self.assertLess(losses[-1], losses[0])  # two steps on this batch lower its loss


if __name__ == "__main__":
  absltest.main()
