"""Downstream accuracy on tasks with exact answers: a task is prompts, references and a scorer.

The caller supplies ``generate_fn(prompts) -> continuations`` (for the trainer, the model's jitted
KV-cache greedy decoding); this module only batches prompts and scores. The default scorer is exact
match of the answer on the first ``Answer:`` line of the continuation
(``nexus.data.extract_answer``, the format of the generated math sources), matching how the paper
scores GSM8k-style problems by their final answer (Chen et al. 2026, arXiv:2604.09258). New tasks
need only a new ``Task``; a different answer format needs only a different scorer.

Exact match is printed beside its chance level (``downstream/<task>/accuracy_chance``): the accuracy
of a model that ignores the question and always gives the task's most common reference answer, i.e.
the largest share of one answer among the evaluated problems. It is computed per task on the very
problems evaluated, so it is what a question-blind greedy model (one fixed output) could score there
at best: a family whose answers are 2..25 with a few frequent values has a chance level of several
percent, not 0.
"""

import collections
from collections.abc import Callable
from collections.abc import Sequence
import dataclasses

from nexus import data as data_lib

GenerateFn = Callable[[list[str]], list[str]]
Scorer = Callable[[str, str], bool]


def exact_match_answer(continuation: str, reference: str) -> bool:
  """Whether the continuation's ``Answer:`` line states exactly the reference (whitespace-trimmed)."""
  return data_lib.extract_answer(continuation) == reference.strip()


@dataclasses.dataclass(frozen=True)
class Task:
  """A downstream task: each prompt's continuation is scored against its reference."""

  name: str
  prompts: tuple[str, ...]
  references: tuple[str, ...]
  scorer: Scorer = exact_match_answer

  def __post_init__(self):
    object.__setattr__(self, "prompts", tuple(self.prompts))
    object.__setattr__(self, "references", tuple(self.references))
    if not self.name or "/" in self.name:
      raise ValueError(
        f"task name {self.name!r} must be non-empty without '/' (it is a metric-name part)."
      )
    if not self.prompts or len(self.prompts) != len(self.references):
      raise ValueError(
        f"task {self.name!r} needs as many references ({len(self.references)}) as prompts "
        f"({len(self.prompts)}), at least one."
      )


def math_task(family: str, *, num: int, seed: int, split: str = "validation") -> Task:
  """A task of ``num`` held-out problems of a generated math family (``nexus.data.math_problems``)."""
  problems = data_lib.math_problems(family, split, num, seed)
  return Task(
    name=family, prompts=tuple(p for p, _ in problems), references=tuple(a for _, a in problems)
  )


def chance_level(task: Task) -> float:
  """The share of ``task``'s problems whose reference is the most common one (best constant answer)."""
  counts = collections.Counter(reference.strip() for reference in task.references)
  return max(counts.values()) / len(task.references)


def evaluate_task(generate_fn: GenerateFn, task: Task, *, batch_size: int | None = None) -> float:
  """The fraction of ``task``'s prompts whose continuation the scorer accepts.

  Args:
    generate_fn: maps a list of prompts to their continuations (the generated text after each prompt).
    task: the prompts, references and scorer.
    batch_size: prompts per ``generate_fn`` call (None: all at once); the last call may be shorter.
  """
  if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
    raise ValueError(f"batch_size={batch_size!r} must be a positive integer or None.")
  step = batch_size or len(task.prompts)
  correct = 0
  for start in range(0, len(task.prompts), step):
    prompts = list(task.prompts[start : start + step])
    continuations = list(generate_fn(prompts))
    if len(continuations) != len(prompts):
      raise ValueError(
        f"generate_fn returned {len(continuations)} continuations for {len(prompts)} prompts of "
        f"task {task.name!r}; it must return one per prompt."
      )
    correct += sum(
      bool(task.scorer(text, reference))
      for text, reference in zip(continuations, task.references[start : start + step])
    )
  return correct / len(task.prompts)


def evaluate_tasks(
  generate_fn: GenerateFn, tasks: Sequence[Task], *, batch_size: int | None = None
) -> dict[str, float]:
  """``{"downstream/<task>/accuracy": accuracy, "downstream/<task>/accuracy_chance": chance}`` for every task."""
  names = [task.name for task in tasks]
  if len(set(names)) != len(names):
    raise ValueError(f"task names {names} repeat; give every task a distinct name.")
  metrics = {}
  for task in tasks:
    metrics[f"downstream/{task.name}/accuracy"] = evaluate_task(
      generate_fn, task, batch_size=batch_size
    )
    metrics[f"downstream/{task.name}/accuracy_chance"] = chance_level(task)
  return metrics
