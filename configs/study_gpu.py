"""The study on one GPU (``launch/study_gpu.sh``): the tiny config's data and optimizers, a 27M model.

Same built-in corpus, source-pure micro-batches (K = 4) and optimizer settings as ``configs/tiny.py``;
the model is 8 blocks of width 512 (27.4M parameters with the byte vocabulary, 31x tiny's), computed
in bfloat16 on rows of 256 tokens, 8 rows per micro-batch (8,192 tokens per outer step, 4x tiny's).
Blocks are scanned: every sweep setting compiles its own training step (its learning rates are
constants of the program), and a scan keeps that compile time independent of depth. The gradient
geometry is computed one source at a time (``eval.geometry_method="map"``): an evaluation then holds
one source's activations, not four, which matters when several runs share the GPU's memory.
``train.steps``, ``eval.every`` and ``checkpoint.every`` come from ``launch/sweeps/study_gpu.json``.

``--config=configs/study_gpu.py:dry_run`` is the same config with tiny shapes (2 blocks of width 32,
16-token rows, a 20 kB-per-source corpus), for ``bash launch/study_gpu.sh --dry_run`` on a CPU
(``tests/report/test_study_gpu_dry_run.py``).
"""

from configs import tiny

VARIANTS = ("", "dry_run")


def get_config(variant: str = ""):
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r} of configs/study_gpu.py; use one of {VARIANTS}.")
  config = tiny.get_config()
  config.name = "study_gpu"
  config.model.update(
    num_layers=8,
    d_model=512,
    num_heads=8,
    mlp_dim=1536,
    max_seq_len=512,  # generation: prompts of up to 512 - 144 tokens
    compute_dtype="bfloat16",
    scan_layers=True,
  )
  config.train.update(seq_len=256, global_batch_size=8)
  config.eval.geometry_method = "map"
  if variant == "dry_run":
    config.model.update(num_layers=2, d_model=32, num_heads=2, mlp_dim=64)
    config.data.corpus_bytes_per_source = 20_000
    config.train.update(seq_len=16, global_batch_size=4, num_inner_steps=2, log_every=1)
    config.opt.warmup_steps = 1
    config.eval.update(batch_size=4, num_batches=1)
    config.checkpoint.async_save = False
  return config
