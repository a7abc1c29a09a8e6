"""The training loop: data stream → jitted step → metrics, evaluation and checkpoints.

Design points (after nanodo and MaxText):
- every config error is raised before any work starts: no workdir is created, no corpus is built;
- one writer per workdir (``workdir_lock``), one config per run (``run_history``: a resumed run with
  a changed config is refused unless the change is allowed, and then recorded in ``history.jsonl``);
- no device synchronisation in the loop: step t's metrics are fetched after step t+1 is dispatched,
  except before a checkpoint save, when the step's record is made durable first (crash-consistent
  ``metrics.jsonl``, see ``nexus.train.metrics``);
- the whole state (model, optimizer incl. Nexus's outer copy, step, skipped-step count) is
  checkpointed with orbax together with the data iterator state and the config, and a run resumes
  from the latest good checkpoint automatically, continuing exactly (same batches, same numbers);
- Ctrl-C stops between two steps (``KeyboardInterrupt``; the last saved checkpoint stays the resume
  point); SIGTERM (preemption) saves a checkpoint and stops; with several processes, they first
  agree on the step to stop at (``multihost_utils.reached_preemption_sync_point``), so every process
  saves the same step and none waits in a collective for a peer that has left the loop;
- the summary's ``status`` tells the truth: ``finished``, ``preempted``, or ``skipped`` when more
  than ``train.max_skipped_fraction`` of the steps (or every step) were skipped as non-finite.
"""

import json
import os
import signal
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from nexus import data as data_lib
from nexus.optim import registry
from nexus.optim import schedules as optim_schedules
from nexus.train import checkpoint as checkpoint_lib
from nexus.train import evaluation
from nexus.train import metrics as metrics_lib
from nexus.train import run_history
from nexus.train import run_logging
from nexus.train import schema
from nexus.train import setup as setup_lib
from nexus.train import step as step_lib
from nexus.train import workdir_lock
from nexus.train.mesh import make_mesh

FINISHED, PREEMPTED, SKIPPED = "finished", "preempted", "skipped"


class NonFiniteError(RuntimeError):
  """Raised (with nonfinite='stop') when a step produced a non-finite loss or update."""


class _Preemption:
  """Whether to stop for a preemption notice (SIGTERM), agreed by every process at the same step.

  One process: a SIGTERM handler sets a flag the loop checks between steps. Several processes: JAX's
  preemption service (started by ``jax.distributed.initialize``) catches SIGTERM on any process and
  ``reached_preemption_sync_point(step)`` becomes true on all of them at the same step; a Python
  handler would replace the service's, so none is installed.
  """

  def __init__(self):
    self._raised = False
    self._previous = None
    self._agreed = jax.process_count() > 1

  def __enter__(self):
    if self._agreed:
      try:
        multihost_utils.reached_preemption_sync_point(0)
      except RuntimeError as error:
        raise ValueError(f"multi-process runs need JAX's preemption service ({error}).") from None
    else:
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self._raised = True

  def reached(self, step: int) -> bool:
    """True when the run should save ``step`` and stop. Call it at every step, on every process."""
    if self._agreed:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._raised

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


class _Interrupt:
  """Ctrl-C (SIGINT) stops the run between two steps: the handler only records it, and ``check``
  raises ``KeyboardInterrupt`` in the loop. Python's default would raise it wherever the main thread
  is, possibly inside library code that swallows it (once in the test suite a run had not stopped
  300 s after Ctrl-C); a second Ctrl-C raises at once, for a run stuck inside a step."""

  def __init__(self):
    self._requested = False
    self._previous = None

  def __enter__(self):
    self._previous = signal.signal(signal.SIGINT, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    if self._requested:
      raise KeyboardInterrupt
    self._requested = True

  def check(self) -> None:
    if self._requested:
      raise KeyboardInterrupt

  def __exit__(self, *exc):
    signal.signal(signal.SIGINT, self._previous)


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


def train(config, workdir: str, *, allow_config_change: bool = False) -> dict:
  """Trains ``config`` in ``workdir`` (resuming from its latest checkpoint); returns a summary dict.

  Args:
    config: the experiment: a ConfigDict from ``configs/`` (checked and typed by
      ``nexus.train.schema.from_config_dict``) or an ``ExperimentConfig``.
    workdir: the run's directory (created if needed): checkpoints, metrics, logs, history.
    allow_config_change: resume even if the config differs from the checkpoint's (recorded in the
      run's history); otherwise such a resume raises ``run_history.ConfigChangedError``.

  Returns:
    The summary: ``status`` (``finished``, ``preempted`` or ``skipped``), ``step``, ``skipped_steps``,
    throughput, paths, and the last metrics.

  Raises:
    ValueError: a bad config (before any work starts), or a checkpoint that cannot be resumed.
    workdir_lock.WorkdirLockedError: another trainer holds ``workdir``.
    checkpoint_lib.CheckpointWriteError: a checkpoint could not be written (e.g. a full disk).
    NonFiniteError: a non-finite step with ``train.nonfinite='stop'``.
  """
  if not workdir:
    raise ValueError("--workdir is required: pass a directory for checkpoints and logs.")
  if not isinstance(config, schema.ExperimentConfig):
    config = schema.from_config_dict(config)  # every field and section checked, in one pass
  mesh = make_mesh(config.mesh)
  schema.check_against_devices(
    config,
    batch_shards=mesh.shape["data"] * mesh.shape["fsdp"],
    process_count=jax.process_count(),
  )
  steps = config.train.steps
  tx = registry.build(
    config.opt, num_inner_steps=config.train.num_inner_steps, total_steps=steps, seed=config.seed
  )
  schedule = optim_schedules.learning_rate_schedule(config.opt, steps)
  if config.train.init_from is not None:
    _check_branch(config)
  workdir_lock.check_workdir(workdir)
  with workdir_lock.WorkdirLock(workdir), run_logging.log_to_file(workdir):
    return _train(config, workdir, mesh, tx, schedule, allow_config_change)


# What a cooldown branch may change from the run it starts from: its length and the schedule's tail.
BRANCH_MAY_CHANGE = (
  "name",
  "train.steps",
  "train.init_from",
  "train.init_step",
  "train.log_every",
  "opt.schedule",
  "opt.decay_start",
  "opt.decay_fraction",
  "opt.final_lr_fraction",
)


def _check_branch(config: schema.ExperimentConfig) -> None:
  """A cooldown branch starts from a saved step of a run with the same model, data and optimizer.

  Raises a one-line ValueError before any work when ``train.init_from`` has no checkpoint at
  ``train.init_step``, or its config differs in anything but ``BRANCH_MAY_CHANGE`` and the
  evaluation/checkpoint sections (the restored state and data position would not mean the same).
  """
  source, step = config.train.init_from, config.train.init_step
  assert source is not None  # the caller branches only when init_from is set
  saved = checkpoint_lib.saved_steps(source)
  if step not in saved:
    raise ValueError(
      f"config.train.init_step={step} is not a saved step of {source} (saved: {saved}); "
      "pick one of them."
    )
  branch_source = checkpoint_lib.Checkpointer(
    os.path.join(source, checkpoint_lib.SUBDIRECTORY), async_save=False
  )
  try:
    latest = branch_source.latest_config()
  finally:
    branch_source.close()
  if latest is None:
    raise ValueError(f"{source} has no readable config; branch from a run made by launch.train.")
  differences = [
    name
    for name, _, _ in run_history.config_changes(latest[1], schema.to_dict(config))
    if name not in BRANCH_MAY_CHANGE and not name.startswith(("eval.", "checkpoint."))
  ]
  if differences:
    raise ValueError(
      f"config.train.init_from={source} was trained with other {differences}; a cooldown branch "
      f"may change only {list(BRANCH_MAY_CHANGE[1:])} and the eval/checkpoint sections."
    )


def _train(config, workdir, mesh, tx, schedule, allow_config_change) -> dict:
  """``train`` once the config is checked and the workdir is locked: opens and always closes the sinks."""
  checkpointer = checkpoint_lib.Checkpointer(
    os.path.join(workdir, checkpoint_lib.SUBDIRECTORY),
    keep=config.checkpoint.keep,
    async_save=config.checkpoint.async_save,
  )
  try:
    latest = checkpointer.latest_config()
    changes = (
      []
      if latest is None
      else run_history.check_resume(
        workdir,
        step=latest[0],
        saved=latest[1],
        current=schema.to_dict(config),
        allow_change=allow_config_change,
      )
    )
    summary = _run_steps(config, workdir, mesh, tx, schedule, checkpointer, changes)
    checkpointer.wait()
  except BaseException:
    try:
      checkpointer.close()
    except Exception as error:  # pylint: disable=broad-except  # the first failure is the one to report
      logging.info("Closing the checkpointer after a failure also failed: %s", error)
    raise
  checkpointer.close()
  run_history.record(
    workdir,
    "stop",
    step=summary["step"],
    status=summary["status"],
    skipped_steps=summary["skipped_steps"],
  )
  return summary


def _run_steps(config, workdir, mesh, tx, schedule, checkpointer, config_changes) -> dict:
  """Restores or initializes the state and runs the steps; returns the summary."""
  train_cfg = config.train
  num_steps, k = train_cfg.steps, train_cfg.num_inner_steps
  run = setup_lib.setup_run(config, tx, mesh)
  source_names = list(data_lib.train_source_names(config.data))
  stream = data_lib.make_train_stream(
    config.data,
    num_inner_steps=k,
    global_batch_size=train_cfg.global_batch_size,
    seq_len=train_cfg.seq_len,
    seed=config.seed,
    process_index=jax.process_index(),
    process_count=jax.process_count(),
  )
  restored = checkpointer.restore_latest(run.abstract_state, stream)
  if restored is None and train_cfg.init_from is not None:
    branch_source = checkpoint_lib.Checkpointer(
      os.path.join(train_cfg.init_from, checkpoint_lib.SUBDIRECTORY), async_save=False
    )
    try:
      restored = branch_source.restore_latest(run.abstract_state, stream, step=train_cfg.init_step)
    finally:
      branch_source.close()
    logging.info("Branched from step %d of %s", train_cfg.init_step, train_cfg.init_from)
  if restored is None:
    state = run.init_state()
    start_step = 0
  else:
    start_step, state = restored  # the stream is set to the restored step's position
    logging.info("Resumed from step %d in %s", start_step, workdir)
  run_history.record_changes(workdir, start_step, config_changes)
  run_history.record(workdir, "resume" if start_step else "start", step=start_step)
  metrics_lib.truncate_metrics(workdir, start_step)
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
      json.dump(schema.to_dict(config), f, indent=2)

  # Traced under the run's mesh, the model's activation constraints (``sharding.constrain``) apply.
  with metrics_lib.MetricWriter(workdir) as writer, jax.set_mesh(mesh):
    train_step = jax.jit(
      step_lib.make_train_step(run.microbatch_loss, tx),
      in_shardings=(run.state_shardings, run.batch_sharding),
      out_shardings=(run.state_shardings, None),
      donate_argnums=0,
    )
    evaluator = evaluation.Evaluator(config, run, source_names) if config.eval.every else None
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
      writer.sync()  # the step's records are durable before its checkpoint can commit
      checkpointer.save(
        step_number,
        state,
        data_iterator=stream,
        config=schema.to_dict(config),
        force=force,
      )

    status = FINISHED
    with _Preemption() as preemption, _Interrupt() as interrupt:
      for step_number in range(start_step + 1, num_steps + 1):
        interrupt.check()
        batch = next(stream)
        state, metrics = train_step(state, run.global_batch(batch))
        if pending is not None:
          flush(pending)
        pending = (step_number, metrics, batch["source_ids"])
        evaluate = evaluator is not None and (
          step_number % config.eval.every == 0 or step_number == num_steps
        )
        preempted = preemption.reached(step_number)
        periodic = step_number % config.checkpoint.every == 0 or step_number == num_steps
        if evaluate or periodic or preempted:
          flush(pending)
          pending = None
        if evaluator is not None and evaluate:
          eval_start = time.perf_counter()
          eval_metrics = evaluator.evaluate(state.params)
          progress.exclude(time.perf_counter() - eval_start)
          writer.write(step_number, eval_metrics)
          last_metrics.update(eval_metrics)
        if periodic or preempted:
          save(step_number, force=preempted)
        if preempted:
          logging.warning(
            "Preempted (SIGTERM): saved a checkpoint at step %d and stopped.", step_number
          )
          status = PREEMPTED
          break
      if pending is not None:
        flush(pending)
    step = int(jax.device_get(state.step))
    skipped = int(jax.device_get(state.skipped_steps))
    if status == FINISHED and _too_many_skipped(skipped, step, train_cfg.max_skipped_fraction):
      status = SKIPPED
    return {
      "status": status,
      "workdir": os.path.abspath(workdir),
      "checkpoints": os.path.abspath(os.path.join(workdir, checkpoint_lib.SUBDIRECTORY)),
      "metrics": os.path.abspath(writer.path),
      "log": os.path.abspath(os.path.join(workdir, "train.log")),
      "step": step,
      "skipped_steps": skipped,
      "max_skipped_fraction": float(train_cfg.max_skipped_fraction),
      "preempted": status == PREEMPTED,
      "tokens_per_second": progress.tokens_per_second,
      "metrics_last": last_metrics,
    }


def _too_many_skipped(skipped: int, steps: int, max_fraction: float) -> bool:
  """Every step, or more than ``max_fraction`` of them, were skipped as non-finite."""
  return steps > 0 and (skipped == steps or skipped > max_fraction * steps)
