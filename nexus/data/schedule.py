"""Which source feeds each row of each micro-batch of an outer step: a pure function of (seed, step).

Being stateless in the step makes the choice identical on every process (each then reads only its
own rows) and makes resuming from a checkpoint a matter of restoring the step counter.
"""

import numpy as np

_PURE_STREAM = 0x5052  # independent random streams per purpose
_CYCLE_STREAM = 0x5252
_MIXTURE_STREAM = 0x4D58


def micro_batch_sources(
  mode: str,
  *,
  seed: int,
  step: int,
  num_inner_steps: int,
  global_batch_size: int,
  probabilities: np.ndarray,
) -> np.ndarray:
  """The int32 ``[K, B]`` source index of every row of outer step ``step`` (0-based).

  Args:
    mode: ``pure_uniform`` (i.i.d. uniform source per micro-batch, as in the paper), ``pure_weighted``
      (i.i.d. by ``probabilities``), ``round_robin`` (each source once per cycle of S micro-batches, in
      a fresh random order each cycle; cycles run across outer steps), or ``mixture`` (every row i.i.d.
      by ``probabilities``).
    seed: the stream seed.
    step: the outer step.
    num_inner_steps: K.
    global_batch_size: B, rows of a micro-batch over all processes.
    probabilities: normalised weights of the S sources.
  """
  k, b, num_sources = num_inner_steps, global_batch_size, len(probabilities)
  if mode == "mixture":
    rng = np.random.default_rng([seed, _MIXTURE_STREAM, step])
    return rng.choice(num_sources, size=(k, b), p=probabilities).astype(np.int32)
  if mode == "pure_uniform":
    per_micro_batch = np.random.default_rng([seed, _PURE_STREAM, step]).integers(
      num_sources, size=k
    )
  elif mode == "pure_weighted":
    per_micro_batch = np.random.default_rng([seed, _PURE_STREAM, step]).choice(
      num_sources, size=k, p=probabilities
    )
  elif mode == "round_robin":
    micro_batches = step * k + np.arange(k)
    cycles, positions = np.divmod(micro_batches, num_sources)
    per_micro_batch = np.asarray(
      [
        np.random.default_rng([seed, _CYCLE_STREAM, cycle]).permutation(num_sources)[position]
        for cycle, position in zip(cycles, positions)
      ]
    )
  else:
    raise ValueError(f"unknown mode {mode!r}.")
  return np.repeat(per_micro_batch.astype(np.int32)[:, None], b, axis=1)
