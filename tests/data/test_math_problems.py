"""Math word problems: correct worked solutions, exact answers, fixed splits, corpus consistency."""

import random
import re

from absl.testing import absltest
from absl.testing import parameterized

from nexus import data as data_lib
from nexus.data import math_families
from nexus.data import splits
from nexus.data import word_problems
from tests.data import fixtures

ALL_FAMILIES = data_lib.TRAIN_MATH_FAMILIES + data_lib.HELD_OUT_MATH_FAMILIES
BINARY_STEP = re.compile(r"(?<![\w.])(\d+) ([-+*/]) (\d+) = (-?\d+)\.")
DIVIDE_STEP = re.compile(r"(\d+)x = (-?\d+)\. Divide both sides by (\d+): x = (-?\d+)\.")
EQUATION = re.compile(r"(\d+)x ([-+]) (\d+) = (-?\d+)")
OPERATIONS = {
  "+": lambda a, b: a + b,
  "-": lambda a, b: a - b,
  "*": lambda a, b: a * b,
  "/": lambda a, b: a / b,
}


def check_problem(testcase, prompt: str, answer: str, document: str):
  """Every step of the worked solution is true and the answer is the solution's final value."""
  solution = document[len(prompt) :]
  testcase.assertTrue(document.startswith(prompt) and prompt.endswith("\nSolution:"))
  testcase.assertEqual(data_lib.extract_answer(solution), answer)
  testcase.assertRegex(answer, r"^-?\d+$")
  for a, op, b, c in BINARY_STEP.findall(solution):
    testcase.assertEqual(OPERATIONS[op](int(a), int(b)), int(c), msg=solution)
  for a, rhs, divisor, x in DIVIDE_STEP.findall(solution):
    testcase.assertEqual((a, int(a) * int(x)), (divisor, int(rhs)), msg=solution)
  body = solution[: solution.index(word_problems.ANSWER_PREFIX)]
  testcase.assertEqual(re.findall(r"-?\d+", body)[-1], answer, msg=solution)
  question_equation = EQUATION.search(prompt)
  if question_equation and "what is" not in prompt:  # the answer solves the question's equation
    a, sign, b, c = question_equation.groups()
    testcase.assertEqual(
      int(a) * int(answer) + (int(b) if sign == "+" else -int(b)), int(c), msg=prompt
    )


class FamiliesTest(parameterized.TestCase):
  def test_family_lists(self):
    self.assertEmpty(set(data_lib.TRAIN_MATH_FAMILIES) & set(data_lib.HELD_OUT_MATH_FAMILIES))
    self.assertCountEqual(ALL_FAMILIES, math_families.FAMILIES)

  @parameterized.parameters(*ALL_FAMILIES)
  def test_worked_solutions_are_correct(self, family):
    for split in splits.SPLITS:
      problems = data_lib.math_problems(family, split, 60, seed=3)
      self.assertLen(problems, 60)
      self.assertLen({prompt for prompt, _ in problems}, 60)
      for prompt, _ in problems:
        self.assertEqual(splits.split_of(prompt), split)
    rng = random.Random(0)
    for _ in range(200):
      problem = math_families.FAMILIES[family](rng)
      document = word_problems.format_document(problem)
      check_problem(self, word_problems.format_prompt(problem), str(problem.answer), document)

  def test_deterministic_and_seeded(self):
    first = data_lib.math_problems("cost_equation", "validation", 20, seed=1)
    self.assertEqual(first, data_lib.math_problems("cost_equation", "validation", 20, seed=1))
    self.assertNotEqual(first, data_lib.math_problems("cost_equation", "validation", 20, seed=2))

  def test_extract_answer(self):
    self.assertEqual(data_lib.extract_answer(" 3 * 4 = 12.\nAnswer: 12\nQuestion: more"), "12")
    self.assertIsNone(data_lib.extract_answer(" 3 * 4 = 12. The answer is 12"))

  @parameterized.parameters(
    ("nope", "train", 1, "unknown math family"),
    ("add_sub", "dev", 1, "split"),
    ("add_sub", "train", 0, "positive"),
  )
  def test_bad_arguments(self, family, split, num, message):
    with self.assertRaisesRegex(ValueError, message):
      data_lib.math_problems(family, split, num, seed=0)


class CorpusConsistencyTest(absltest.TestCase):
  def test_validation_problems_never_in_training_corpus(self):
    config = fixtures.small_config()
    for source, families in word_problems.MATH_SOURCES.items():
      train_documents = fixtures.corpus_texts(config, source, "train")
      train_prompts = {d[: d.index("\nSolution:") + len("\nSolution:")] for d in train_documents}
      for family in families:
        held = data_lib.math_problems(family, "validation", 30, seed=config.seed)
        self.assertEmpty({prompt for prompt, _ in held} & train_prompts)
        # The corpus's training problems are this family's first 'train' problems for the same seed.
        seen = data_lib.math_problems(family, "train", 5, seed=config.seed)
        self.assertContainsSubset({prompt for prompt, _ in seen}, train_prompts)

  def test_corpus_documents_are_checked_problems(self):
    config = fixtures.small_config()
    for source in word_problems.MATH_SOURCES:
      for document in fixtures.corpus_texts(config, source, "validation"):
        prompt = document[: document.index("\nSolution:") + len("\nSolution:")]
        check_problem(self, prompt, data_lib.extract_answer(document), document)


if __name__ == "__main__":
  absltest.main()
