"""The paper's measurements on a run's latest checkpoint (Chen et al. 2026, arXiv:2604.09258).

At the checkpoint θ of ``<workdir>``:

- per-source and OOD loss and gradient geometry on the validation batches (``eval/...``, as during
  training) and on the batches of the reported split, by default test (``test/...``);
- closeness of per-source minima: full-batch SGD with a small learning rate on a fixed sample of
  each training source's *training* split (the same sample for every run: a fixed data seed) until
  that source's loss has dropped by a fixed fraction, or a step budget ends
  (``nexus.measure.make_sgd_closeness``);
- downstream on the generated math families (training families and held-out compositions), problems
  of the reported split: teacher-forced answer NLL and token accuracy, and exact match of greedy
  generation beside its chance level.

The result is appended to the run's ``metrics.jsonl`` at the checkpoint's step, where
``launch.compare`` reads it.
"""

import dataclasses
import json
import os

import jax
import ml_collections
import numpy as np
import optax

from nexus import data as data_lib
from nexus import measure as eval_lib
from nexus import model as model_lib
from nexus.train import checkpoint as checkpoint_lib
from nexus.train import evaluation
from nexus.train import metrics as metrics_lib
from nexus.train import schema
from nexus.train import setup as setup_lib
from nexus.train.mesh import make_mesh

# Seed of the training-split sample that closeness fine-tunes on: fixed, so every run (any seed, any
# optimizer) is measured on the same batches.
CLOSENESS_DATA_SEED = 0


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run saved in ``<workdir>/config.json``."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"{path} does not exist; pass the --workdir of a run made by launch.train.")
  with open(path, encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


def _generate_fn(run, params, tokenizer, max_seq_len: int, max_new_tokens: int, rows: int):
  """Greedy continuations (text) of prompts, with the model's KV-cache generation.

  Every call is padded to one shape, ``rows`` prompts of ``max_seq_len - max_new_tokens`` tokens (a
  one-token filler prompt fills missing rows, its output dropped), so generation compiles once for
  every task and batch instead of once per prompt width; longer prompts get fewer new tokens.
  """
  width = max_seq_len - max_new_tokens

  def generate(prompts: list[str]) -> list[str]:
    encoded = [[data_lib.BOS_ID] + tokenizer.encode(prompt) for prompt in prompts]
    longest = max(len(e) for e in encoded)
    new_tokens = min(max_new_tokens, max_seq_len - longest)
    if new_tokens < 1:
      raise ValueError(f"prompts of {longest} tokens leave no room in max_seq_len={max_seq_len}.")
    padded = np.zeros((max(rows, len(encoded)), max(width, longest)), np.int32)
    padded[:, 0] = data_lib.BOS_ID
    for row, prompt in enumerate(encoded):
      padded[row, : len(prompt)] = prompt
    out = model_lib.generate(
      run.model(params), padded, max_new_tokens=new_tokens, eos_id=data_lib.EOS_ID
    )
    texts = []
    for continuation in np.asarray(out)[: len(encoded)]:
      tokens = [int(t) for t in continuation]
      if data_lib.EOS_ID in tokens:
        tokens = tokens[: tokens.index(data_lib.EOS_ID)]
      texts.append(tokenizer.decode(tokens))
    return texts

  return generate


def training_sample(config, run, *, num_batches: int, batch_size: int) -> dict:
  """``{source: [{"tokens": [B, L+1]}] * num_batches}`` from each training source's *training* split.

  Each source is read alone through the training stream (``make_train_stream`` on a one-source copy of
  ``config.data``, shuffled with ``CLOSENESS_DATA_SEED``), so the sample is the one every run sees.
  """
  batches = {}
  for entry, name in zip(config.data.sources, data_lib.train_source_names(config.data)):
    data_cfg = dataclasses.replace(
      config.data, sources=(entry,), weights=None, mode="pure_uniform", prefetch="none"
    )
    stream = data_lib.make_train_stream(
      data_cfg,
      num_inner_steps=1,
      global_batch_size=batch_size,
      seq_len=config.train.seq_len,
      seed=CLOSENESS_DATA_SEED,
      process_index=0,
      process_count=1,
    )
    batches[name] = [
      {"tokens": run.replicated(np.asarray(next(stream)["tokens"][0]))} for _ in range(num_batches)
    ]
  return batches


def evaluate_checkpoint(
  workdir: str,
  *,
  split: str = "test",
  closeness_learning_rate: float = 0.1,
  closeness_relative_drop: float = 0.05,
  closeness_max_steps: int = 100,
  closeness_batches: int = 2,
  downstream_problems: int = 500,
  exact_match_problems: int = 100,
  max_new_tokens: int = 144,
  write: bool = True,
) -> dict:
  """Measures the latest checkpoint of ``workdir``; returns (and by default logs) the metrics.

  Args:
    workdir: a run directory made by ``launch.train``.
    split: the split of the reported numbers (``test``; ``validation`` for selection-time checks).
    closeness_learning_rate, closeness_relative_drop, closeness_max_steps: the SGD fine-tuning of
      closeness (``nexus.measure.make_sgd_closeness``); keep them equal across the runs compared. On the tiny
      config after 100 AdamW steps, lr 0.1 reached a 10% drop in 11–16 steps on the math sources but only
      1.4% (code) and 6% (prose) in 20 steps; lr 0.5 diverged. Check ``closeness/reached/*`` in a pilot.
    closeness_batches: batches of ``config.eval.batch_size`` rows per source in the training sample.
    downstream_problems: problems per math family scored by teacher forcing (one forward pass each).
    exact_match_problems: the first problems per family also solved by greedy generation (exact match;
      generation costs ``max_new_tokens`` forward passes per chunk).
    max_new_tokens: the longest generated continuation (the longest reference completion is ~135 bytes).
    write: append the metrics to ``<workdir>/metrics.jsonl``.
  """
  if split not in ("validation", "test"):
    raise ValueError(f"split={split!r} must be 'validation' or 'test' (the reported numbers).")
  config = schema.from_config_dict(load_run_config(workdir))
  # Evaluation needs the model and its shardings, not the optimizer: the identity stands in for it.
  mesh = make_mesh(config.mesh)
  run = setup_lib.setup_run(config, optax.identity(), mesh)
  step = checkpoint_lib.saved_steps(workdir)[-1]
  params = checkpoint_lib.load_params(workdir, step, shardings=run.state_shardings.params)
  train_sources = list(data_lib.train_source_names(config.data))
  # Traced under the run's mesh, the model's activation constraints apply, as in training.
  with jax.set_mesh(mesh):
    evaluator = evaluation.Evaluator(config, run, train_sources)
    metrics = dict(evaluator.evaluate(params))
    if split != "validation":
      reported = evaluator.evaluate(params, split=split)
      metrics.update({f"{split}/{key.split('/', 1)[1]}": value for key, value in reported.items()})

    closeness = eval_lib.make_sgd_closeness(
      lambda p, batch: run.microbatch_loss(p, batch["tokens"]),
      learning_rate=closeness_learning_rate,
      relative_drop=closeness_relative_drop,
      max_steps=closeness_max_steps,
    )
    sample = training_sample(
      config, run, num_batches=closeness_batches, batch_size=config.eval.batch_size
    )
    metrics.update(closeness(params, sample))

    tokenizer = data_lib.make_tokenizer(config.data.tokenizer)
    families = data_lib.TRAIN_MATH_FAMILIES + data_lib.HELD_OUT_MATH_FAMILIES
    data_seed = int(config.data.seed)
    teacher_forced = eval_lib.make_teacher_forced(
      lambda p, tokens: run.model(p)(tokens),
      tokenizer.encode,
      bos_id=data_lib.BOS_ID,
      max_len=min(config.train.seq_len, config.model.max_seq_len),
    )  # the context the model was trained on
    metrics.update(
      teacher_forced(
        params,
        [
          eval_lib.math_forced_task(f, num=downstream_problems, seed=data_seed, split=split)
          for f in families
        ],
      )
    )
    tasks = [
      eval_lib.math_task(f, num=exact_match_problems, seed=data_seed, split=split) for f in families
    ]
    batch_size = min(exact_match_problems, 128)
    generate = _generate_fn(
      run, params, tokenizer, config.model.max_seq_len, max_new_tokens, rows=batch_size
    )
    metrics.update(eval_lib.evaluate_tasks(generate, tasks, batch_size=batch_size))
    for metric in (
      "accuracy",
      "accuracy_chance",
      "answer_token_chance",
      *eval_lib.teacher_forced.METRICS,
    ):
      held_out = [metrics[f"downstream/{f}/{metric}"] for f in data_lib.HELD_OUT_MATH_FAMILIES]
      metrics[f"downstream/held_out_mean/{metric}"] = float(np.mean(held_out))
  if write:
    writer = metrics_lib.MetricWriter(workdir, tensorboard=False)
    writer.write(step, metrics)
    writer.close()
  return {"step": step, **metrics}
