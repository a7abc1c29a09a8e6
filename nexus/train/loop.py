"""The training loop: data stream → jitted step → metrics, evaluation and checkpoints.

Design points (after nanodo and MaxText):
- no device synchronisation in the loop: step t's metrics are fetched after step t+1 is dispatched;
- the whole state (model, optimizer incl. Nexus's outer copy, step, skipped-step count) is checkpointed
  with orbax together with the data iterator state and the config, and a run resumes from the latest
  good checkpoint automatically, continuing exactly (same batches, same numbers);
- SIGTERM (preemption) saves a checkpoint and exits cleanly.
"""

import os
import signal
import time

from absl import logging
import jax
import numpy as np

from nexus import data as data_lib
from nexus.train import checkpoint as checkpoint_lib
from nexus.train import config_checks
from nexus.train import evaluation
from nexus.train import metrics as metrics_lib
from nexus.train import optimizer as optimizer_lib
from nexus.train import schedules
from nexus.train import setup as setup_lib
from nexus.train import step as step_lib
from nexus.train.mesh import make_mesh


class NonFiniteError(RuntimeError):
  """Raised (with nonfinite='stop') when a step produced a non-finite loss or update."""


class _PreemptionFlag:
  """Turns SIGTERM into a flag the loop checks between steps."""

  def __init__(self):
    self.raised = False
    self._previous = None

  def __enter__(self):
    self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.raised = True

  def __exit__(self, *exc):
    signal.signal(signal.SIGTERM, self._previous)


def _host_metrics(metrics: dict, source_ids: np.ndarray, source_names: list[str]) -> dict:
  """Fetches one step's metrics and adds per-source train losses of source-pure micro-batches."""
  values = jax.device_get(metrics)
  out = {key: value for key, value in values.items() if key != "microbatch_losses"}
  losses = np.asarray(values["microbatch_losses"])
  per_source: dict[str, list[float]] = {}
  for k, row_sources in enumerate(source_ids):
    if np.all(row_sources == row_sources[0]):
      per_source.setdefault(source_names[int(row_sources[0])], []).append(float(losses[k]))
  for name, values_k in per_source.items():
    out[f"train/loss/{name}"] = float(np.mean(values_k))
  out["train/loss"] = float(out.pop("loss"))
  return out


def train(config, workdir: str) -> dict:
  """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint); returns a summary dict."""
  config_checks.check_workdir(workdir)
  mesh = make_mesh(config.mesh)
  batch_shards = mesh.shape["data"] * mesh.shape["fsdp"]
  config_checks.check_train_config(
      config, num_devices=mesh.size, process_count=jax.process_count(), batch_shards=batch_shards
  )
  train_cfg = config.train
  num_steps, k = train_cfg.steps, train_cfg.num_inner_steps
  data_lib.validate_data_config(
      config.data, num_inner_steps=k, global_batch_size=train_cfg.global_batch_size,
      seq_len=train_cfg.seq_len, max_seq_len=config.model.max_seq_len, process_count=jax.process_count(),
  )
  tokenizer_vocab = data_lib.make_tokenizer(config.data.tokenizer).vocab_size
  if config.model.vocab_size < tokenizer_vocab:
    raise ValueError(
        f"config.model.vocab_size={config.model.vocab_size} is smaller than the tokenizer's {tokenizer_vocab} ids; "
        f"set --config.model.vocab_size={tokenizer_vocab} or larger."
    )
  source_names = list(data_lib.train_source_names(config.data))
  schedule = schedules.learning_rate_schedule(config.opt, num_steps)
  tx, convention = optimizer_lib.build_optimizer(config.opt, schedule, k, seed=config.seed)
  run = setup_lib.setup_run(config, tx, mesh)

  stream = data_lib.make_train_stream(
      config.data, num_inner_steps=k, global_batch_size=train_cfg.global_batch_size,
      seq_len=train_cfg.seq_len, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
  )
  checkpointer = checkpoint_lib.Checkpointer(
      os.path.join(workdir, "checkpoints"), keep=config.checkpoint.keep, async_save=config.checkpoint.async_save
  )
  restored = checkpointer.restore_latest(run.abstract_state)
  if restored is None:
    state = run.init_state()
    start_step = 0
  else:
    start_step, state, metadata = restored
    stream.set_state(metadata["data"])
    logging.info("Resumed from step %d in %s", start_step, workdir)
  metrics_lib.truncate_metrics(workdir, start_step)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
      f.write(config.to_json_best_effort(indent=2))

  train_step = jax.jit(
      step_lib.make_train_step(run.microbatch_loss, tx, convention),
      in_shardings=(run.state_shardings, run.batch_sharding),
      out_shardings=(run.state_shardings, None),
      donate_argnums=0,
  )
  evaluator = evaluation.Evaluator(config, run, source_names) if config.eval.every else None
  writer = metrics_lib.MetricWriter(workdir)
  tokens_per_step = k * train_cfg.global_batch_size * train_cfg.seq_len
  progress = metrics_lib.Progress(num_steps, tokens_per_step, start_step)
  last_metrics: dict = {}
  pending = None

  def flush(pending_step):
    nonlocal last_metrics
    step_number, metrics, source_ids = pending_step
    values = _host_metrics(metrics, source_ids, source_names)
    if not values.pop("finite") and train_cfg.nonfinite == "stop":
      raise NonFiniteError(
          f"non-finite loss or update at step {step_number}; the state was kept at step {step_number - 1}. "
          "Lower the learning rate or set config.train.nonfinite='skip'."
      )
    values["tokens"] = step_number * tokens_per_step
    values["learning_rate"] = float(schedule(step_number - 1))
    last_metrics = {**last_metrics, **values}
    if step_number % train_cfg.log_every == 0 or step_number == num_steps:
      writer.write(step_number, values)
      progress.update(step_number, values["train/loss"])

  def save(step_number, force=False):
    checkpointer.save(step_number, state, {"data": stream.get_state(), "config": config.to_dict()}, force=force)

  preempted = False
  with _PreemptionFlag() as preemption:
    for step_number in range(start_step + 1, num_steps + 1):
      batch = next(stream)
      state, metrics = train_step(state, run.global_batch(batch))
      if pending is not None:
        flush(pending)
      pending = (step_number, metrics, batch["source_ids"])
      if evaluator is not None and (step_number % config.eval.every == 0 or step_number == num_steps):
        flush(pending)
        pending = None
        eval_start = time.perf_counter()
        eval_metrics = evaluator.evaluate(state.params)
        progress.exclude(time.perf_counter() - eval_start)
        writer.write(step_number, eval_metrics)
        last_metrics.update(eval_metrics)
      if step_number % config.checkpoint.every == 0 or step_number == num_steps:
        save(step_number)
      if preemption.raised:
        logging.warning("SIGTERM received: saving a checkpoint at step %d and exiting.", step_number)
        save(step_number, force=True)
        preempted = True
        break
    if pending is not None:
      flush(pending)
  checkpointer.wait()
  checkpointer.close()
  writer.close()
  return {
      "workdir": os.path.abspath(workdir),
      "checkpoints": os.path.abspath(os.path.join(workdir, "checkpoints")),
      "metrics": os.path.abspath(writer.path),
      "step": int(jax.device_get(state.step)),
      "preempted": preempted,
      "tokens_per_second": progress.tokens_per_second,
      "metrics_last": last_metrics,
  }
