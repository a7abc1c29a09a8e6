"""Periodic evaluation during training: per-source and OOD validation loss, and gradient geometry.

Uses the model-agnostic measurements of ``nexus.measure`` on fixed validation batches of every
training and held-out source (``nexus.data.make_eval_batches``), so every optimizer is measured
identically.
"""

import jax
import numpy as np

from nexus import data as data_lib
from nexus import measure as eval_lib

PAD_ID = data_lib.PAD_ID


def _num_target_tokens(batch):
  return (batch["tokens"][:, 1:] != PAD_ID).sum(-1)


class Evaluator:
  """Measures ``params`` on fixed batches of a split (built once per split, placed replicated).

  The measurements are compiled once and shared by every split, so evaluating the validation and the
  test split of one checkpoint compiles each measurement once.
  """

  def __init__(self, config, run, train_sources: list[str]):
    self.train_sources = list(train_sources)
    self.held_out = list(data_lib.held_out_source_names(config.data))
    self._config, self._run = config, run
    self._batches: dict[str, dict] = {}
    self._per_source_loss = eval_lib.make_per_source_loss(
      lambda params, batch: run.row_loss(params, batch["tokens"]), num_tokens_fn=_num_target_tokens
    )
    self._geometry = None
    if len(self.train_sources) > 1:
      self._geometry = eval_lib.make_gradient_geometry(
        lambda params, batch: run.microbatch_loss(params, batch["tokens"]),
        method=config.eval.geometry_method,
      )

  def source_batches(self, names: list[str], split: str = "validation") -> dict:
    """The placed batches of the named sources in ``split``, ``{name: [batch, ...]}``."""
    if split not in self._batches:
      config = self._config
      host_batches = data_lib.make_eval_batches(
        config.data,
        sources=self.train_sources + self.held_out,
        batch_size=config.eval.batch_size,
        seq_len=config.train.seq_len,
        num_batches=config.eval.num_batches,
        split=split,
      )
      self._batches[split] = {
        name: [{"tokens": self._run.replicated(np.asarray(b["tokens"]))} for b in batches]
        for name, batches in host_batches.items()
      }
    return {name: self._batches[split][name] for name in names}

  def evaluate(self, params, split: str = "validation") -> dict:
    batches = self.source_batches(self.train_sources + self.held_out, split)
    metrics = self._per_source_loss(params, batches, held_out_sources=self.held_out)
    if self._geometry is not None:
      metrics.update(self._geometry(params, self.source_batches(self.train_sources, split)))
    return jax.device_get(metrics)
