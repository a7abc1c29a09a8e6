"""Greedy generation: the key/value cache path equals full recomputation, padding is harmless, EOS stops."""

import numpy as np
import pytest

from nexus.model import generate
from nexus.model import pad_prompts
from tests.model.fixtures import small_model

# A random model with large weights, so that its greedy choices depend sharply on the context.
PROMPTS = [[1, 5, 7, 9, 11, 3], [1, 3], [4, 4, 4, 8]]
NEW = 10


@pytest.fixture(scope="module")
def model():
  return small_model(init_std=0.5)


def test_cache_and_recompute_give_identical_tokens(model):
  prompts = pad_prompts(PROMPTS)
  cached = generate(model, prompts, max_new_tokens=NEW)
  recomputed = generate(model, prompts, max_new_tokens=NEW, use_cache=False)
  assert cached.shape == (3, NEW) and cached.dtype == np.int32
  np.testing.assert_array_equal(cached, recomputed)
  assert (np.asarray(cached) != 0).all()  # padding is never generated
  assert len({tuple(row) for row in np.asarray(cached)}) == 3  # the rows really differ


def test_padding_does_not_change_a_prompts_continuation(model):
  batch = np.asarray(generate(model, pad_prompts(PROMPTS), max_new_tokens=NEW))
  for row, prompt in enumerate(PROMPTS):
    alone = generate(model, np.asarray([prompt]), max_new_tokens=NEW)
    np.testing.assert_array_equal(batch[row], alone[0])


@pytest.mark.parametrize("use_cache", [True, False])
def test_eos_ends_a_row_with_padding(model, use_cache):
  prompts = pad_prompts(PROMPTS)
  free = np.asarray(generate(model, prompts, max_new_tokens=NEW))
  eos = int(free[0, 3])
  stopped = np.asarray(
    generate(model, prompts, max_new_tokens=NEW, eos_id=eos, use_cache=use_cache)
  )
  for row in range(len(PROMPTS)):
    hits = np.flatnonzero(free[row] == eos)
    end = hits[0] + 1 if hits.size else NEW
    np.testing.assert_array_equal(stopped[row, :end], free[row, :end])
    assert (stopped[row, end:] == 0).all()


@pytest.mark.parametrize(
  "prompts, max_new_tokens, message",
  [
    (np.array([[0, 1, 2]]), 4, "at least one token at column 0"),
    (np.array([[1, 0, 2]]), 4, "right-padded"),
    (np.array([1, 2]), 4, "integer array"),
    (np.array([[1, 2]]), 0, "positive integer"),
    (np.array([[1, 2]]), 47, "exceeds the model's max_seq_len=48"),
  ],
)
def test_bad_arguments_raise(model, prompts, max_new_tokens, message):
  with pytest.raises(ValueError, match=message):
    generate(model, prompts, max_new_tokens=max_new_tokens)


def test_pad_prompts_right_pads():
  np.testing.assert_array_equal(pad_prompts([[5, 6], [7]]), [[5, 6], [7, 0]])
  with pytest.raises(ValueError, match="no empty prompt"):
    pad_prompts([[5], []])
