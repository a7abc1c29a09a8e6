"""The two entry points the trainer and the evaluator use: the training stream and fixed eval batches.

Both read pre-tokenized token stores (``nexus.data.pretokenize``), built on first use.
"""

from absl import flags
import grain
import numpy as np

from nexus.data import config as config_lib
from nexus.data import pipeline
from nexus.data import pretokenize
from nexus.data import splits
from nexus.data import tokenizers


def _process_layout(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top  (only to ask for the process layout)

    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(
      f"process_index={process_index} is outside [0, process_count={process_count})."
    )
  return process_index, process_count


def prepare_data(data_cfg) -> None:
  """Builds everything the config's sources read (the built-in corpus, the token stores of every split).

  Optional: the stream and the evaluation batches build what they need on first use. A no-op when cached.
  """
  pretokenize.token_stores(
    data_cfg, config_lib.train_specs(data_cfg) + config_lib.held_out_specs(data_cfg), splits.TRAIN
  )


def make_train_stream(
  data_cfg,
  *,
  num_inner_steps: int,
  global_batch_size: int,
  seq_len: int,
  seed: int,
  process_index: int | None = None,
  process_count: int | None = None,
) -> grain.DatasetIterator:
  """The endless stream of outer-step batches of this process.

  Each ``next`` gives ``{"tokens": int32[K, B_local, L+1], "source_ids": int32[K, B_local]}`` with
  ``B_local = global_batch_size / process_count``; ``source_ids`` index into ``train_source_names``. The
  AdamW baseline and Nexus consume exactly the same stream for the same arguments. ``get_state()`` is
  JSON (also checkpointable with ``grain.checkpoint.CheckpointSave`` in orbax) and ``set_state`` resumes
  on the exact next batch.

  Args:
    data_cfg: the ``config.data`` section.
    num_inner_steps: K.
    global_batch_size: B, rows per micro-batch over all processes.
    seq_len: L; rows hold L+1 tokens (inputs ``[..., :-1]``, targets ``[..., 1:]``).
    seed: the run seed: source shuffling and the per-step source choice.
    process_index: this process (default ``jax.process_index()``).
    process_count: all processes (default ``jax.process_count()``).
  """
  process_index, process_count = _process_layout(process_index, process_count)
  config_lib.validate_data_config(
    data_cfg,
    num_inner_steps=num_inner_steps,
    global_batch_size=global_batch_size,
    seq_len=seq_len,
    max_seq_len=None,
    process_count=process_count,
  )
  specs = config_lib.train_specs(data_cfg)
  dataset = pipeline.MultiSourceBatches(
    pretokenize.token_stores(data_cfg, specs, splits.TRAIN),
    source_names=[spec.label for spec in specs],
    tokenizer=tokenizers.tokenizer_id(data_cfg.tokenizer),
    shuffle_seeds=[splits.derive_seed(seed, spec.label) for spec in specs],
    mode=data_cfg.mode,
    probabilities=config_lib.source_probabilities(data_cfg),
    num_inner_steps=num_inner_steps,
    global_batch_size=global_batch_size,
    seq_len=seq_len,
    seed=seed,
    process_index=process_index,
    process_count=process_count,
  )
  if data_cfg.prefetch == "thread":
    dataset = grain.experimental.ThreadPrefetchIterDataset(
      dataset, prefetch_buffer_size=data_cfg.prefetch_buffer_size
    )
  elif data_cfg.prefetch == "process":
    if (
      not flags.FLAGS.is_parsed()
    ):  # grain's worker reads its absl flags; outside an absl app use defaults
      flags.FLAGS.mark_as_parsed()
    dataset = dataset.mp_prefetch(
      grain.MultiprocessingOptions(
        num_workers=1, per_worker_buffer_size=data_cfg.prefetch_buffer_size
      )
    )
  return iter(dataset)


def make_eval_batches(
  data_cfg,
  *,
  sources: list[str],
  batch_size: int,
  seq_len: int,
  num_batches: int,
  split: str = splits.VALIDATION,
) -> dict[str, list[dict[str, np.ndarray]]]:
  """Fixed, repeatable evaluation batches from the validation (or test) split of each named source.

  ``split="validation"`` (the default) is what training-time evaluation and any selection read;
  ``split="test"`` is for reported numbers. Rows are the split's first windows of L+1 tokens in stored
  order (documents packed as in training), cycling over its windows if the split has fewer than
  ``num_batches * batch_size``. ``source_ids`` index into ``all_source_names(data_cfg)`` (training
  sources first, then held-out ones).

  Returns:
    ``{name: [{"tokens": int32[B, L+1], "source_ids": int32[B]}] * num_batches}``.
  """
  for value, name in (
    (batch_size, "batch_size"),
    (seq_len, "seq_len"),
    (num_batches, "num_batches"),
  ):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"{name}={value!r} must be a positive integer.")
  if split not in splits.EVAL_SPLITS:
    raise ValueError(
      f"split={split!r} is not one of {splits.EVAL_SPLITS}; training batches come from make_train_stream."
    )
  specs = {
    spec.label: spec
    for spec in config_lib.train_specs(data_cfg) + config_lib.held_out_specs(data_cfg)
  }
  names = config_lib.all_source_names(data_cfg)
  unknown = [name for name in sources if name not in specs]
  if unknown:
    raise ValueError(
      f"eval sources {unknown} are not in config.data.sources or held_out; known: {names}."
    )
  stores = pretokenize.token_stores(data_cfg, [specs[name] for name in sources], split)
  length = seq_len + 1
  batches = {}
  for name, store in zip(sources, stores):
    windows = pipeline.num_windows(store, length, name)
    rows = store.read(np.arange(num_batches * batch_size) % windows * length, length)
    batches[name] = [
      {"tokens": tokens, "source_ids": np.full((batch_size,), names.index(name), np.int32)}
      for tokens in np.split(rows, num_batches)
    ]
  return batches
