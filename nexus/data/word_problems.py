"""Math word problems as corpus documents and as held-out (prompt, answer) pairs for evaluation.

A problem's text in the corpus is::

    Question: <question>
    Solution: <worked steps>
    Answer: <integer>

Its prompt is everything up to and including ``Solution:``; a model that continues the prompt
greedily is scored by ``extract_answer(continuation) == answer`` (exact match). A problem's split is
fixed by hashing its prompt (``nexus.data.splits``), so the evaluation problems that
``math_problems(..., split="validation")`` (or ``"test"``) returns never appear in the training
corpus of any seed.
"""

from collections.abc import Iterator
import random
from typing import NamedTuple

from nexus.data import math_families
from nexus.data import splits

ANSWER_PREFIX = "Answer:"

# Corpus source -> the problem families it mixes (round-robin).
MATH_SOURCES: dict[str, tuple[str, ...]] = {
  "arithmetic": ("add_sub", "mul_div"),
  "algebra": ("linear_equation", "evaluate_expression"),
  "math_composite": ("groups_then_change", "cost_equation", "solve_then_evaluate"),
}
TRAIN_MATH_FAMILIES = MATH_SOURCES["arithmetic"] + MATH_SOURCES["algebra"]
HELD_OUT_MATH_FAMILIES = MATH_SOURCES["math_composite"]
_MAX_DRAWS_PER_PROBLEM = 1000


def format_prompt(problem: math_families.Problem) -> str:
  return f"Question: {problem.question}\nSolution:"


def format_document(problem: math_families.Problem) -> str:
  """The corpus text: prompt, worked solution and the final answer line."""
  return f"{format_prompt(problem)} {problem.solution}\n{ANSWER_PREFIX} {problem.answer}"


def extract_answer(text: str) -> str | None:
  """The answer on the first ``Answer:`` line of a model's continuation, or None if there is none."""
  for line in text.splitlines():
    if line.startswith(ANSWER_PREFIX):
      return line[len(ANSWER_PREFIX) :].strip()
  return None


def _family_problems(family: str, seed: int) -> Iterator[math_families.Problem]:
  rng = random.Random(f"{seed}/{family}")
  generate = math_families.FAMILIES[family]
  while True:
    yield generate(rng)


def source_documents(source: str, seed: int) -> Iterator[tuple[str, str]]:
  """Endless (key, text) documents of a math source: its families in turn, keyed by prompt."""
  generators = [_family_problems(family, seed) for family in MATH_SOURCES[source]]
  while True:
    for generator in generators:
      problem = next(generator)
      yield format_prompt(problem), format_document(problem)


class MathExample(NamedTuple):
  """A problem for evaluation: the prompt, its reference continuation in the corpus format, the answer."""

  prompt: str
  completion: (
    str  # " <worked steps>\nAnswer: <answer>": the document after the prompt; ends with the answer
  )
  answer: str


def math_examples(family: str, split: str, num: int, seed: int) -> list[MathExample]:
  """``num`` distinct problems of ``family`` from ``split`` ('train', 'validation' or 'test'), in draw order.

  The same seed as the corpus (``config.data.seed``) gives the corpus's own problems for each split;
  'validation' and 'test' problems are never in any training corpus.
  """
  if family not in math_families.FAMILIES:
    raise ValueError(
      f"unknown math family {family!r}; known families: {sorted(math_families.FAMILIES)}."
    )
  if split not in splits.SPLITS:
    raise ValueError(f"split={split!r} is not one of {splits.SPLITS}.")
  if not isinstance(num, int) or num < 1:
    raise ValueError(f"num={num!r} must be a positive integer.")
  problems: dict[str, MathExample] = {}
  for draws, problem in enumerate(_family_problems(family, seed)):
    if len(problems) == num:
      break
    if draws >= _MAX_DRAWS_PER_PROBLEM * num:
      raise ValueError(
        f"family {family!r} has fewer than {num} distinct {split} problems; ask for fewer."
      )
    prompt = format_prompt(problem)
    if splits.split_of(prompt) == split:
      problems.setdefault(
        prompt, MathExample(prompt, format_document(problem)[len(prompt) :], str(problem.answer))
      )
  return list(problems.values())


def math_problems(family: str, split: str, num: int, seed: int) -> list[tuple[str, str]]:
  """The (prompt, answer) pairs of ``math_examples(family, split, num, seed)``."""
  return [(example.prompt, example.answer) for example in math_examples(family, split, num, seed)]
