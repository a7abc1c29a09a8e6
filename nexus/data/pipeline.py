"""The stream of ``[K, B, L+1]`` outer-step batches, read from pre-tokenized token stores.

Each source's training split is one token stream (``nexus.data.token_store``) cut into *windows* of
exactly L+1 consecutive tokens: window w holds tokens ``[w(L+1), (w+1)(L+1))``, so documents are
packed ``[BOS] ids [EOS]`` back to back in stored order, a row may hold the end of one document and
the start of the next, and nothing is padded (the last ``T mod (L+1)`` tokens of a split are never
read). Every epoch visits the W windows of a source in a fresh random order (a permutation seeded by
the source's shuffle seed and the epoch).

Each training row position r (0 <= r < B, over all processes) of each source s is a *lane*: lane (s,
r) reads positions r, r+B, r+2B, ... of the source's endless window order, and a row of a
micro-batch drawn from source s at position r is the next row of lane (s, r). Because lanes are
global row positions and the source choice is a pure function of (seed, step)
(``nexus.data.schedule``), process p computes only its own rows ``[p·B/P, (p+1)·B/P)`` and the
processes' rows concatenated along B equal the single-process batch. A batch is assembled with one
vectorized read per source (no per-row Python loop). The iterator state is JSON: the step and the
number of rows each lane has read.
"""

from collections.abc import Sequence
from typing import Any

import grain
import numpy as np

from nexus.data import schedule
from nexus.data import token_store

STATE_FORMAT = "windows-v1"  # part of the state's signature: a state of another format is refused


def num_windows(store: token_store.TokenStore, length: int, label: str) -> int:
  """Windows of ``length`` tokens in ``store``; a one-line ValueError naming the fix if there are none."""
  windows = store.num_tokens // length
  if windows == 0:
    raise ValueError(
      f"source {label!r} has {store.num_tokens} tokens in {store.path}, fewer than one row of "
      f"seq_len+1={length}; shorten seq_len or use a larger source."
    )
  return windows


class MultiSourceBatches(grain.IterDataset):
  """Outer-step batches ``{"tokens": int32[K, B_local, L+1], "source_ids": int32[K, B_local]}``."""

  def __init__(
    self,
    stores: Sequence[token_store.TokenStore],
    *,
    source_names: Sequence[str],
    tokenizer: str,
    shuffle_seeds: Sequence[int],
    mode: str,
    probabilities: np.ndarray,
    num_inner_steps: int,
    global_batch_size: int,
    seq_len: int,
    seed: int,
    process_index: int,
    process_count: int,
  ):
    super().__init__()
    self.stores = list(stores)
    self.shuffle_seeds = list(shuffle_seeds)
    self.mode = mode
    self.probabilities = np.asarray(probabilities, dtype=np.float64)
    self.num_inner_steps = num_inner_steps
    self.global_batch_size = global_batch_size
    self.seq_len = seq_len
    self.seed = seed
    self.windows = [
      num_windows(store, seq_len + 1, name) for store, name in zip(self.stores, source_names)
    ]
    local = global_batch_size // process_count
    self.rows = np.arange(process_index * local, (process_index + 1) * local)
    # Restoring a state into a differently configured stream (or another corpus) would silently
    # change the data.
    self.signature = {
      "format": STATE_FORMAT,
      "sources": list(source_names),
      "tokenizer": tokenizer,
      "windows": self.windows,
      "mode": mode,
      "probabilities": [float(p) for p in self.probabilities],
      "num_inner_steps": num_inner_steps,
      "global_batch_size": global_batch_size,
      "seq_len": seq_len,
      "seed": seed,
      "process_index": process_index,
      "process_count": process_count,
    }

  def __iter__(self) -> grain.DatasetIterator:
    return _MultiSourceBatchIterator(self)


class _MultiSourceBatchIterator(grain.DatasetIterator):
  """Iterates ``MultiSourceBatches``; keeps the permutations of the epochs in use."""

  def __init__(self, dataset: MultiSourceBatches):
    super().__init__()
    self._dataset = dataset
    self._step = 0
    self._rows_read = np.zeros((len(dataset.stores), dataset.global_batch_size), dtype=np.int64)
    self._permutations: list[dict[int, np.ndarray]] = [{} for _ in dataset.stores]

  def _windows(self, source: int, positions: np.ndarray) -> np.ndarray:
    """The windows at ``positions`` of source ``source``'s endless, per-epoch shuffled window order."""
    num = self._dataset.windows[source]
    epochs, within = np.divmod(positions, num)
    cache = self._permutations[source]
    for epoch in set(cache) - set(np.unique(epochs).tolist()):
      del cache[
        epoch
      ]  # only the epochs of the current batch are kept (a permutation is recomputed if needed)
    windows = np.empty_like(positions)
    for epoch in np.unique(epochs).tolist():
      if epoch not in cache:
        permutation = np.random.default_rng(
          [self._dataset.shuffle_seeds[source], epoch]
        ).permutation(num)
        cache[epoch] = (
          permutation.astype(np.int32) if num < 2**31 else permutation
        )  # half the memory
      in_epoch = epochs == epoch
      windows[in_epoch] = cache[epoch][within[in_epoch]]
    return windows

  def __next__(self) -> dict[str, np.ndarray]:
    ds = self._dataset
    source_ids = schedule.micro_batch_sources(
      ds.mode,
      seed=ds.seed,
      step=self._step,
      num_inner_steps=ds.num_inner_steps,
      global_batch_size=ds.global_batch_size,
      probabilities=ds.probabilities,
    )[:, ds.rows]
    length = ds.seq_len + 1
    tokens = np.empty((ds.num_inner_steps, len(ds.rows), length), dtype=np.int32)
    for source in np.unique(source_ids).tolist():
      chosen = source_ids == source  # [K, B_local]
      lane_rows = (
        self._rows_read[source, ds.rows] + np.cumsum(chosen, axis=0) - 1
      )  # the lane's row number
      positions = ds.rows + lane_rows * ds.global_batch_size
      windows = self._windows(source, positions[chosen])
      tokens[chosen] = ds.stores[source].read(windows * length, length)
      self._rows_read[source, ds.rows] += chosen.sum(axis=0)
    self._step += 1
    return {"tokens": tokens, "source_ids": source_ids}

  def get_state(self) -> dict[str, Any]:
    return {
      "step": self._step,
      "signature": self._dataset.signature,
      "rows_read": self._rows_read.tolist(),
    }

  def set_state(self, state: dict[str, Any]) -> None:
    expected = self._dataset.signature
    changed = sorted(k for k in expected if state.get("signature", {}).get(k) != expected[k])
    if changed:
      raise ValueError(
        f"the data-stream state was saved with different {changed}; resume with the same data "
        "config, corpus, tokenizer, shapes, seed and process layout."
      )
    self._step = int(state["step"])
    self._rows_read = np.asarray(state["rows_read"], dtype=np.int64).reshape(self._rows_read.shape)
    self._permutations = [{} for _ in self._dataset.stores]
