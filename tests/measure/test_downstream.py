"""Downstream tasks: exact-match scoring of the final answer and accuracy over a caller's generator."""

import random

from absl.testing import absltest
from absl.testing import parameterized

from nexus.data import math_families
from nexus.data import word_problems
from nexus.measure import downstream

TASK = downstream.Task(name="toy", prompts=("2+2?", "3*3?", "10-4?"), references=("4", "9", "6"))
CONTINUATIONS = {
  "2+2?": " 2+2 = 4.\nAnswer: 4\nQuestion: 5+5?",
  "3*3?": " 3*3 = 9.\nAnswer: 6",
  "10-4?": "\nAnswer:  6 ",
}


def lookup_generator(calls):
  def generate(prompts):
    calls.append(len(prompts))
    return [CONTINUATIONS[prompt] for prompt in prompts]

  return generate


class ScorerTest(parameterized.TestCase):
  @parameterized.parameters(
    (" 3 + 4 = 7.\nAnswer: 7\nQuestion: next", "7", True),
    (" 3 + 4 = 7.\nAnswer: 70", "7", False),
    (" 3 + 4 = 7. The answer is 7", "7", False),
    ("\nAnswer: 7\nAnswer: 8", "7", True),  # the first answer line is the model's answer
  )
  def test_exact_match_answer(self, continuation, reference, expected):
    self.assertEqual(downstream.exact_match_answer(continuation, reference), expected)

  def test_corpus_documents_score_as_correct(self):
    problem = math_families.FAMILIES["groups_then_change"](random.Random(3))
    prompt, document = word_problems.format_prompt(problem), word_problems.format_document(problem)
    self.assertTrue(downstream.exact_match_answer(document[len(prompt) :], str(problem.answer)))


class EvaluateTaskTest(absltest.TestCase):
  def test_accuracy_and_batching(self):
    calls = []
    self.assertAlmostEqual(
      downstream.evaluate_task(lookup_generator(calls), TASK, batch_size=2), 2 / 3
    )
    self.assertEqual(calls, [2, 1])

  def test_evaluate_tasks_names_metrics(self):
    custom = downstream.Task(
      name="strict",
      prompts=("10-4?",),
      references=("6",),
      scorer=lambda text, reference: text == reference,
    )
    got = downstream.evaluate_tasks(lookup_generator([]), [TASK, custom])
    self.assertEqual(
      got,
      {
        "downstream/toy/accuracy": 2 / 3,
        "downstream/toy/accuracy_chance": 1 / 3,
        "downstream/strict/accuracy": 0.0,
        "downstream/strict/accuracy_chance": 1.0,
      },
    )

  def test_chance_level_is_the_share_of_the_most_common_answer(self):
    task = downstream.Task(name="t", prompts=tuple("abcde"), references=("4", " 4", "7", "4 ", "9"))
    self.assertEqual(downstream.chance_level(task), 3 / 5)
    always_four = lambda prompts: (
      ["Answer: 4"] * len(prompts)
    )  # a question-blind model reaches it exactly
    self.assertEqual(downstream.evaluate_task(always_four, task), downstream.chance_level(task))

  def test_training_families_have_a_chance_level_above_zero(self):
    # Answers drawn from small ranges repeat: exact match must be read against this, not against 0.
    for family in ("mul_div", "linear_equation"):
      chance = downstream.chance_level(downstream.math_task(family, num=500, seed=0))
      self.assertBetween(chance, 0.02, 0.2)

  def test_math_task(self):
    task = downstream.math_task("cost_equation", num=5, seed=0)
    self.assertLen(task.prompts, 5)
    self.assertTrue(all(prompt.endswith("Solution:") for prompt in task.prompts))
    self.assertEqual(
      list(zip(task.prompts, task.references)),
      word_problems.math_problems("cost_equation", "validation", 5, 0),
    )

  def test_bad_input(self):
    with self.assertRaisesRegex(ValueError, "one per prompt"):
      downstream.evaluate_task(lambda prompts: ["Answer: 4"], TASK)
    with self.assertRaisesRegex(ValueError, "as many references"):
      downstream.Task(name="x", prompts=("a", "b"), references=("1",))
    with self.assertRaisesRegex(ValueError, "without '/'"):
      downstream.Task(name="a/b", prompts=("a",), references=("1",))
    with self.assertRaisesRegex(ValueError, "distinct name"):
      downstream.evaluate_tasks(lookup_generator([]), [TASK, TASK])
    with self.assertRaisesRegex(ValueError, "batch_size"):
      downstream.evaluate_task(lookup_generator([]), TASK, batch_size=0)


if __name__ == "__main__":
  absltest.main()
