"""Downstream metrics with signal at small scale: answer likelihood and token accuracy under teacher forcing.

Exact match of greedily generated answers is all-or-nothing: a small model that gets most of a
worked solution right still scores 0, so optimizers that differ in how well they predict solutions
look equal. Teacher forcing scores the reference continuation itself, token by token, given
everything before it:

- ``completion_nll``: the mean negative log-likelihood per token (nats) of the reference completion
  (worked solution and answer line) given the prompt, averaged over problems;
- ``completion_token_accuracy``: the fraction of the completion's tokens that are the model's argmax
  given the true prefix (what greedy decoding would emit at that position), averaged over problems;
- ``answer_nll``: −log p(final answer | prompt, reference solution), summed over the answer's tokens
  and averaged over problems; ``answer_token_accuracy`` the same token accuracy on the answer's
  tokens; ``answer_token_chance`` is that accuracy's chance level (``answer_token_chance``): what a
  model that knows the family's answers but not the question scores.

No generation: the prompt, the completion without the answer, and the answer are encoded separately
(the generation boundary is the prompt's end, as in ``launch.evaluate``'s greedy decoding) and
concatenated after a BOS token; problems are padded into fixed ``[chunk_size, L]`` arrays, so one
jitted forward pass per chunk scores every token, compiled once per call. A problem longer than the
context ``max_len`` (pass the length the model was trained on: positions beyond it were never
trained) keeps its last ``max_len`` + 1 tokens, the window that ends at the answer, as a
sliding-window evaluation does: its first prompt tokens are dropped and, if the completion itself is
longer than the window, only the completion's tokens inside it are scored.
``downstream/<task>/truncated`` is the fraction of such problems. Reference: GSM8k-style answer
scoring in Chen et al. (2026), arXiv:2604.09258; teacher-forced likelihood as a smoother proxy for
accuracy (Schaeffer et al., *Are Emergent Abilities of Large Language Models a Mirage?*, NeurIPS
2023).
"""

import collections
from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nexus.data import word_problems

LogitsFn = Callable[[Any, jax.Array], jax.Array]
Encode = Callable[[str], list[int]]
METRICS = (
  "completion_nll",
  "completion_token_accuracy",
  "answer_nll",
  "answer_token_accuracy",
  "truncated",
)


@dataclasses.dataclass(frozen=True)
class ForcedTask:
  """Problems scored by teacher forcing: each completion continues its prompt and ends with its answer."""

  name: str
  prompts: tuple[str, ...]
  completions: tuple[str, ...]
  answers: tuple[str, ...]

  def __post_init__(self):
    for field in ("prompts", "completions", "answers"):
      object.__setattr__(self, field, tuple(getattr(self, field)))
    if not self.name or "/" in self.name:
      raise ValueError(
        f"task name {self.name!r} must be non-empty without '/' (it is a metric-name part)."
      )
    if not self.prompts or not len(self.prompts) == len(self.completions) == len(self.answers):
      raise ValueError(
        f"task {self.name!r} needs as many completions ({len(self.completions)}) and answers "
        f"({len(self.answers)}) as prompts ({len(self.prompts)}), at least one."
      )
    for completion, answer in zip(self.completions, self.answers):
      if not answer or not completion.endswith(answer):
        raise ValueError(
          f"task {self.name!r}: completion {completion[-40:]!r} does not end with its non-empty "
          f"answer {answer!r}; the answer must be the completion's last characters."
        )


def math_forced_task(family: str, *, num: int, seed: int, split: str) -> ForcedTask:
  """``num`` problems of a generated math family (``nexus.data.word_problems.math_examples``) from ``split``."""
  examples = word_problems.math_examples(family, split, num, seed)
  return ForcedTask(
    name=family,
    prompts=tuple(e.prompt for e in examples),
    completions=tuple(e.completion for e in examples),
    answers=tuple(e.answer for e in examples),
  )


def answer_token_chance(answers: Sequence[Sequence[int]]) -> float:
  """The answer-token accuracy, under teacher forcing, of the best predictor blind to the question.

  Given the answer's true prefix, it predicts the token that most often follows that prefix among
  ``answers`` (the family's answers, as token ids): the chance level of ``answer_token_accuracy``
  (averaged over problems the same way). E.g. answers 12, 13, 25 in bytes score 2/3: "1" first
  (2 of 3), then "2" after "1" (1 of 2) and "5" after "2".
  """
  following: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
  for ids in answers:
    for j, token in enumerate(ids):
      following[tuple(ids[:j])][token] += 1
  guess = {prefix: counts.most_common(1)[0][0] for prefix, counts in following.items()}
  return float(
    np.mean([np.mean([guess[tuple(ids[:j])] == t for j, t in enumerate(ids)]) for ids in answers])
  )


def _encode(
  encode: Encode, bos_id: int, max_len: int, prompt: str, completion: str, answer: str
) -> tuple[list[int], int, int, bool]:
  """Token ids ``[BOS] prompt body answer`` (their last ``max_len + 1``), where completion and answer start in
  them, and whether the front was cut."""
  prefix = [bos_id] + list(encode(prompt))
  body = list(encode(completion[: len(completion) - len(answer)]))
  final = list(encode(answer))
  ids, completion_start, answer_start = prefix + body + final, len(prefix), len(prefix) + len(body)
  cut = max(0, len(ids) - (max_len + 1))
  if answer_start - cut < 1:
    raise ValueError(
      f"answer {answer!r} is {len(final)} tokens, more than max_len={max_len} can score; use a longer "
      "context."
    )
  return ids[cut:], max(completion_start - cut, 1), answer_start - cut, cut > 0


def _chunk_scores(logits_fn: LogitsFn):
  """Per-row sums over a chunk ``tokens [C, L+1]``: NLL and argmax hits on two target masks ``[C, L]``."""

  def scores(params, tokens, completion_mask, answer_mask):
    logits = logits_fn(params, tokens[:, :-1]).astype(jnp.float32)
    targets = tokens[:, 1:]
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    hit = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
    return tuple(
      jnp.sum(value * mask, axis=-1)
      for mask in (completion_mask, answer_mask)
      for value in (nll, hit)
    )

  return jax.jit(scores)


def make_teacher_forced(
  logits_fn: LogitsFn, encode: Encode, *, bos_id: int, max_len: int, chunk_size: int = 64
) -> Callable[[Any, Sequence[ForcedTask]], dict[str, float]]:
  """Builds ``score(params, tasks) -> {"downstream/<task>/<metric>": float}`` (metrics in ``METRICS``,
  and ``answer_token_chance``).

  Args:
    logits_fn: ``logits_fn(params, tokens int32[B, L]) -> float[B, L, V]``, next-token scores.
    encode: text -> token ids, without BOS/EOS (the tokenizer the model was trained with).
    bos_id: the id that starts every training document.
    max_len: the context the model is scored with (its training ``seq_len``): longer problems keep their
      last ``max_len + 1`` tokens.
    chunk_size: problems per forward pass (the last chunk is padded with empty rows).
  """
  if not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"chunk_size={chunk_size!r} must be a positive integer.")
  scores_fn = _chunk_scores(logits_fn)

  def score(params: Any, tasks: Sequence[ForcedTask]) -> dict[str, float]:
    names = [task.name for task in tasks]
    if not tasks or len(set(names)) != len(names):
      raise ValueError(f"task names {names} must be at least one and distinct.")
    encoded = {
      task.name: [
        _encode(encode, bos_id, max_len, *example)
        for example in zip(task.prompts, task.completions, task.answers)
      ]
      for task in tasks
    }
    longest = max(len(row[0]) for rows in encoded.values() for row in rows)
    length = min(
      max_len, -(-(longest - 1) // 32) * 32
    )  # one shape for every chunk: one compilation
    metrics = {}
    for name, rows in encoded.items():
      sums = np.zeros((len(rows), 4))
      for start in range(0, len(rows), chunk_size):
        chunk = rows[start : start + chunk_size]
        tokens = np.zeros((chunk_size, length + 1), np.int32)
        masks = np.zeros((2, chunk_size, length), np.float32)
        for row, (ids, completion_start, answer_start, _) in enumerate(chunk):
          tokens[row, : len(ids)] = ids
          masks[0, row, completion_start - 1 : len(ids) - 1] = 1.0  # target j is token j + 1
          masks[1, row, answer_start - 1 : len(ids) - 1] = 1.0
        values = jax.device_get(
          scores_fn(params, jnp.asarray(tokens), jnp.asarray(masks[0]), jnp.asarray(masks[1]))
        )
        sums[start : start + len(chunk)] = np.stack(values, axis=-1)[: len(chunk)]
      completion_tokens = np.asarray([len(ids) - start for ids, start, _, _ in rows], np.float64)
      answer_tokens = np.asarray([len(ids) - start for ids, _, start, _ in rows], np.float64)
      per_problem = {
        "completion_nll": sums[:, 0] / completion_tokens,
        "completion_token_accuracy": sums[:, 1] / completion_tokens,
        "answer_nll": sums[:, 2],
        "answer_token_accuracy": sums[:, 3] / answer_tokens,
        "truncated": np.asarray([row[3] for row in rows], np.float64),
      }
      metrics.update(
        {f"downstream/{name}/{key}": float(np.mean(per_problem[key])) for key in METRICS}
      )
      task = next(task for task in tasks if task.name == name)
      metrics[f"downstream/{name}/answer_token_chance"] = answer_token_chance(
        [list(encode(answer)) for answer in task.answers]
      )
    return metrics

  return score
