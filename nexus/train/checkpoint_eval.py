"""The paper's measurements on a run's latest checkpoint (Chen et al. 2026, arXiv:2604.09258).

At the checkpoint θ of ``<workdir>``: per-source and OOD validation loss, gradient geometry across the
training sources, closeness of per-source minima (fine-tune a copy on each source alone with the same
small budget for every run), and downstream exact-match accuracy of greedy generation on the generated
math families (training families and held-out compositions). The result is appended to the run's
``metrics.jsonl`` at the checkpoint's step, where ``launch.compare`` reads it.
"""

import json
import os

import ml_collections
import numpy as np
import optax

from nexus import data as data_lib
from nexus import eval as eval_lib
from nexus import model as model_lib
from nexus.train import checkpoint as checkpoint_lib
from nexus.train import evaluation
from nexus.train import metrics as metrics_lib
from nexus.train import optimizer as optimizer_lib
from nexus.train import schedules
from nexus.train import setup as setup_lib
from nexus.train.mesh import make_mesh


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in ``<workdir>/config.json``."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"{path} does not exist; pass the --workdir of a run made by launch.train.")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


def _generate_fn(run, params, tokenizer, max_seq_len: int, max_new_tokens: int):
  """Greedy continuations (text) of prompts, with the model's KV-cache generation."""

  def generate(prompts: list[str]) -> list[str]:
    encoded = [[data_lib.BOS_ID] + tokenizer.encode(prompt) for prompt in prompts]
    new_tokens = min(max_new_tokens, max_seq_len - max(len(e) for e in encoded))
    if new_tokens < 1:
      raise ValueError(f"prompts of {max(len(e) for e in encoded)} tokens leave no room in max_seq_len={max_seq_len}.")
    out = model_lib.generate(run.model(params), model_lib.pad_prompts(encoded), max_new_tokens=new_tokens,
                             eos_id=data_lib.EOS_ID)
    texts = []
    for row in np.asarray(out):
      row = [int(t) for t in row]
      if data_lib.EOS_ID in row:
        row = row[:row.index(data_lib.EOS_ID)]
      texts.append(tokenizer.decode(row))
    return texts

  return generate


def evaluate_checkpoint(workdir: str, *, closeness_steps: int = 20, closeness_learning_rate: float = 1e-3,
                        downstream_problems: int = 32, max_new_tokens: int = 96, write: bool = True) -> dict:
  """Measures the latest checkpoint of ``workdir``; returns (and by default logs) the metrics."""
  config = load_run_config(workdir)
  mesh = make_mesh(config.mesh)
  schedule = schedules.learning_rate_schedule(config.opt, config.train.steps)
  tx = optimizer_lib.build_optimizer(config.opt, schedule, config.train.num_inner_steps, seed=config.seed)
  run = setup_lib.setup_run(config, tx, mesh)
  checkpointer = checkpoint_lib.Checkpointer(os.path.join(workdir, "checkpoints"), keep=config.checkpoint.keep)
  restored = checkpointer.restore_latest(run.abstract_state)
  checkpointer.close()
  if restored is None:
    raise ValueError(f"no checkpoint in {workdir}/checkpoints; train the run first.")
  step, state, _ = restored
  params = state.params
  train_sources = list(data_lib.train_source_names(config.data))
  evaluator = evaluation.Evaluator(config, run, train_sources)
  metrics = dict(evaluator.evaluate(params))

  closeness = eval_lib.make_closeness(
      lambda p, batch: run.microbatch_loss(p, batch["tokens"]), optax.adam(closeness_learning_rate),
      num_steps=closeness_steps,
  )
  metrics.update(closeness(params, evaluator.source_batches(train_sources)))

  tokenizer = data_lib.make_tokenizer(config.data.tokenizer)
  tasks = [eval_lib.math_task(family, num=downstream_problems, seed=0)
           for family in data_lib.TRAIN_MATH_FAMILIES + data_lib.HELD_OUT_MATH_FAMILIES]
  generate = _generate_fn(run, params, tokenizer, config.model.max_seq_len, max_new_tokens)
  metrics.update(eval_lib.evaluate_tasks(generate, tasks, batch_size=downstream_problems))
  held_out = [metrics[f"downstream/{f}/accuracy"] for f in data_lib.HELD_OUT_MATH_FAMILIES]
  metrics["downstream/held_out_mean/accuracy"] = float(np.mean(held_out))
  if write:
    writer = metrics_lib.MetricWriter(workdir, tensorboard=False)
    writer.write(step, metrics)
    writer.close()
  return {"step": step, **metrics}
