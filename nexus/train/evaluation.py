"""Periodic evaluation during training: per-source and OOD validation loss, and gradient geometry.

Uses the model-agnostic measurements of ``nexus.measure`` on fixed validation batches of every training
and held-out source (``nexus.data.make_eval_batches``), so every optimizer is measured identically.
"""

import jax
import numpy as np

from nexus import data as data_lib
from nexus import measure as eval_lib

PAD_ID = data_lib.PAD_ID


def _num_target_tokens(batch):
  return (batch["tokens"][:, 1:] != PAD_ID).sum(-1)


class Evaluator:
  """Measures ``params`` on the run's validation (or ``split``) batches (built once, placed replicated)."""

  def __init__(self, config, run, train_sources: list[str], split: str = "validation"):
    self.train_sources = list(train_sources)
    self.held_out = list(data_lib.held_out_source_names(config.data))
    host_batches = data_lib.make_eval_batches(
      config.data,
      sources=self.train_sources + self.held_out,
      batch_size=config.eval.batch_size,
      seq_len=config.train.seq_len,
      num_batches=config.eval.num_batches,
      split=split,
    )
    self._batches = {
      name: [{"tokens": run.replicated(np.asarray(b["tokens"]))} for b in source_batches]
      for name, source_batches in host_batches.items()
    }
    self._per_source_loss = eval_lib.make_per_source_loss(
      lambda params, batch: run.row_loss(params, batch["tokens"]), num_tokens_fn=_num_target_tokens
    )
    self._geometry = None
    if len(self.train_sources) > 1:
      self._geometry = eval_lib.make_gradient_geometry(
        lambda params, batch: run.microbatch_loss(params, batch["tokens"]),
        method=config.eval.geometry_method,
      )

  def source_batches(self, names: list[str]) -> dict:
    """The placed validation batches of the named sources, ``{name: [batch, ...]}``."""
    return {name: self._batches[name] for name in names}

  def evaluate(self, params) -> dict:
    metrics = self._per_source_loss(params, self._batches, held_out_sources=self.held_out)
    if self._geometry is not None:
      metrics.update(self._geometry(params, self.source_batches(self.train_sources)))
    return jax.device_get(metrics)
