"""grain pipelines: per-source packed sequences, and the stream of ``[K, B, L+1]`` outer-step batches.

Each training row position r (0 <= r < B, over all processes) of each source s is a *lane*: a grain
pipeline that reads documents r, r+B, r+2B, ... of the source's shuffled, endlessly repeated document
order (own shuffle seed per source, reshuffled every epoch), tokenizes them as ``[BOS] text [EOS]``
and packs them by concatenate-then-split into rows of exactly L+1 tokens (no padding). A row of a
micro-batch drawn from source s at position r is the next row of lane (s, r).

Because lanes are defined by global row positions and the source choice is a pure function of
(seed, step) (``nexus.data.schedule``), process p computes only its own rows
``[p·B/P, (p+1)·B/P)`` and reads only its own shard of each source; the processes' rows concatenated
along B equal the single-process batch. The iterator state (step counter + the state of every lane
used so far) is JSON, restorable with ``set_state`` and by grain's orbax handler, and resumes on the
exact next batch.
"""

from typing import Any, Sequence

import grain
import numpy as np

from nexus.data import schedule
from nexus.data import tokenizers

_READ_OPTIONS = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)  # many small lanes: no thread pools
TOKENS = "tokens"


class TokenizeText(grain.transforms.Map):
  """Example dict -> ``{"tokens": int32 [BOS] ids [EOS]}`` of its text feature."""

  def __init__(self, tokenizer: tokenizers.Tokenizer, feature: str):
    self._tokenizer = tokenizer
    self._feature = feature

  def map(self, element):
    return {TOKENS: self._tokenizer.encode_document(element[self._feature])}


def packed_sequences(data_source, *, tokenizer: tokenizers.Tokenizer, feature: str, length: int,
                     shuffle_seed: int | None, lane: int = 0, num_lanes: int = 1) -> grain.IterDataset:
  """Endless rows of ``length`` tokens from documents lane, lane+num_lanes, ... of ``data_source``.

  ``shuffle_seed=None`` keeps the stored document order (evaluation); otherwise every epoch is shuffled
  with its own permutation derived from the seed.
  """
  documents = grain.MapDataset.source(data_source)
  if shuffle_seed is not None:
    documents = documents.shuffle(seed=shuffle_seed)
  documents = documents.repeat()[lane::num_lanes].map(TokenizeText(tokenizer, feature))
  return grain.experimental.ConcatThenSplitIterDataset(
      documents.to_iter_dataset(_READ_OPTIONS), length_struct={TOKENS: length}
  )


class MultiSourceBatches(grain.IterDataset):
  """Outer-step batches ``{"tokens": int32[K, B_local, L+1], "source_ids": int32[K, B_local]}``."""

  def __init__(self, data_sources: Sequence[Any], *, source_names: Sequence[str], features: Sequence[str],
               shuffle_seeds: Sequence[int], tokenizer: tokenizers.Tokenizer, mode: str, probabilities: np.ndarray,
               num_inner_steps: int, global_batch_size: int, seq_len: int, seed: int, process_index: int,
               process_count: int):
    super().__init__()
    self.data_sources = list(data_sources)
    self.features = list(features)
    self.shuffle_seeds = list(shuffle_seeds)
    self.tokenizer = tokenizer
    self.mode = mode
    self.probabilities = np.asarray(probabilities, dtype=np.float64)
    self.num_inner_steps = num_inner_steps
    self.global_batch_size = global_batch_size
    self.seq_len = seq_len
    self.seed = seed
    local = global_batch_size // process_count
    self.rows = np.arange(process_index * local, (process_index + 1) * local)
    # Restoring a state into a differently configured stream would silently change the data.
    self.signature = {
        "sources": list(source_names), "mode": mode, "probabilities": [float(p) for p in self.probabilities],
        "num_inner_steps": num_inner_steps, "global_batch_size": global_batch_size, "seq_len": seq_len,
        "seed": seed, "process_index": process_index, "process_count": process_count,
    }

  def lane(self, source: int, row: int) -> grain.IterDataset:
    return packed_sequences(self.data_sources[source], tokenizer=self.tokenizer, feature=self.features[source],
                            length=self.seq_len + 1, shuffle_seed=self.shuffle_seeds[source], lane=row,
                            num_lanes=self.global_batch_size)

  def __iter__(self) -> grain.DatasetIterator:
    return _MultiSourceBatchIterator(self)


def _with_tuples(state):
  """A lane state read back from JSON, with its tuples restored.

  grain's concat-then-split packer marks "no remainder" with the tuple (-1, -1) and compares by
  equality, so after a JSON round trip (grain's own orbax handler included) the list [-1, -1] would
  make it re-read a document. Lane states hold no genuine lists, so every list becomes a tuple.
  """
  if isinstance(state, dict):
    return {key: _with_tuples(value) for key, value in state.items()}
  if isinstance(state, list):
    return tuple(_with_tuples(value) for value in state)
  return state


class _MultiSourceBatchIterator(grain.DatasetIterator):
  """Iterates ``MultiSourceBatches``; lanes are created on first use."""

  def __init__(self, dataset: MultiSourceBatches):
    super().__init__()
    self._dataset = dataset
    self._step = 0
    self._lanes: dict[tuple[int, int], grain.DatasetIterator] = {}

  def _lane(self, source: int, row: int) -> grain.DatasetIterator:
    key = (source, row)
    if key not in self._lanes:
      self._lanes[key] = iter(self._dataset.lane(source, row))
    return self._lanes[key]

  def __next__(self) -> dict[str, np.ndarray]:
    ds = self._dataset
    source_ids = schedule.micro_batch_sources(
        ds.mode, seed=ds.seed, step=self._step, num_inner_steps=ds.num_inner_steps,
        global_batch_size=ds.global_batch_size, probabilities=ds.probabilities,
    )[:, ds.rows]
    tokens = np.empty((ds.num_inner_steps, len(ds.rows), ds.seq_len + 1), dtype=np.int32)
    for k in range(ds.num_inner_steps):
      for i, row in enumerate(ds.rows):
        tokens[k, i] = next(self._lane(int(source_ids[k, i]), int(row)))[TOKENS]
    self._step += 1
    return {"tokens": tokens, "source_ids": source_ids}

  def get_state(self) -> dict[str, Any]:
    lanes = [[source, row, lane.get_state()] for (source, row), lane in sorted(self._lanes.items())]
    return {"step": self._step, "signature": self._dataset.signature, "lanes": lanes}

  def set_state(self, state: dict[str, Any]) -> None:
    expected = self._dataset.signature
    changed = sorted(k for k in expected if state.get("signature", {}).get(k) != expected[k])
    if changed:
      raise ValueError(f"the data-stream state was saved with different {changed}; resume with the same data "
                       "config, shapes, seed and process layout.")
    self._step = int(state["step"])
    self._lanes = {}
    for source, row, lane_state in state["lanes"]:
      self._lane(int(source), int(row)).set_state(_with_tuples(lane_state))
