"""Teacher-forced downstream metrics against a hand-computed bigram model, a uniform model and bad input."""

from absl.testing import absltest
import jax.numpy as jnp
import numpy as np

from nexus.data import tokenizers
from nexus.data import word_problems
from nexus.measure import teacher_forced

TOKENIZER = tokenizers.ByteTokenizer()
VOCAB = TOKENIZER.vocab_size
TASK = teacher_forced.ForcedTask(
  name="toy",
  prompts=("Q: 2+2?", "Q: 3*3?", "Q: 10-4?"),
  completions=(" 2+2=4.\nA: 4", " 3*3=9.\nA: 9", " 10-4=6.\nA: 6"),
  answers=("4", "9", "6"),
)


def bigram_logits(table, tokens):
  return table[tokens]


def reference_metrics(table, task):
  """The four metrics by direct per-token loops in float64."""
  table = np.asarray(table, np.float64)
  log_probs = table - np.log(np.sum(np.exp(table), axis=-1, keepdims=True))
  rows = {key: [] for key in teacher_forced.METRICS}
  for prompt, completion, answer in zip(task.prompts, task.completions, task.answers):
    body = completion[: -len(answer)]
    ids = (
      [tokenizers.BOS_ID]
      + TOKENIZER.encode(prompt)
      + TOKENIZER.encode(body)
      + TOKENIZER.encode(answer)
    )
    completion_start = 1 + len(TOKENIZER.encode(prompt))
    answer_start = len(ids) - len(TOKENIZER.encode(answer))
    for key, start in (("completion", completion_start), ("answer", answer_start)):
      nll = [-log_probs[ids[j - 1], ids[j]] for j in range(start, len(ids))]
      hits = [np.argmax(log_probs[ids[j - 1]]) == ids[j] for j in range(start, len(ids))]
      rows[f"{key}_nll"].append(np.mean(nll) if key == "completion" else np.sum(nll))
      rows[f"{key}_token_accuracy"].append(np.mean(hits))
  rows["truncated"] = [0.0]
  return {f"downstream/{task.name}/{key}": np.mean(values) for key, values in rows.items()}


class TeacherForcedTest(absltest.TestCase):
  def test_bigram_model_matches_per_token_loops_for_any_chunking(self):
    table = np.random.default_rng(0).normal(0.0, 2.0, (VOCAB, VOCAB)).astype(np.float32)
    # Make some targets the argmax, so token accuracy is strictly between 0 and 1.
    for a, b in zip(b" 2+2=4.", b"2+2=4.\n"):
      table[a + 3, b + 3] = 20.0
    expected = reference_metrics(table, TASK)
    self.assertBetween(expected["downstream/toy/completion_token_accuracy"], 0.05, 0.95)
    for chunk_size in (1, 2, 64):
      score = teacher_forced.make_teacher_forced(
        bigram_logits, TOKENIZER.encode, bos_id=tokenizers.BOS_ID, max_len=64, chunk_size=chunk_size
      )
      got = score(jnp.asarray(table), [TASK])
      self.assertAlmostEqual(got.pop("downstream/toy/answer_token_chance"), 1 / 3)  # 3 answers
      self.assertEqual(set(got), set(expected))
      for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, err_msg=key)

  def test_long_problems_keep_the_window_that_ends_at_the_answer(self):
    table = np.random.default_rng(1).normal(0.0, 2.0, (VOCAB, VOCAB)).astype(np.float32)
    full = teacher_forced.make_teacher_forced(
      bigram_logits, TOKENIZER.encode, bos_id=tokenizers.BOS_ID, max_len=64
    )(jnp.asarray(table), [TASK])
    # A window of exactly the completion plus one prompt token: the bigram's scores are unchanged.
    window = max(len(TOKENIZER.encode(c)) for c in TASK.completions) + 1
    cut = teacher_forced.make_teacher_forced(
      bigram_logits, TOKENIZER.encode, bos_id=tokenizers.BOS_ID, max_len=window
    )(jnp.asarray(table), [TASK])
    self.assertEqual(cut.pop("downstream/toy/truncated"), 1.0)
    self.assertEqual(full.pop("downstream/toy/truncated"), 0.0)
    for key, value in full.items():
      np.testing.assert_allclose(cut[key], value, rtol=1e-5, err_msg=key)
    # A window shorter than the completion scores the completion's last tokens only.
    short = teacher_forced.make_teacher_forced(
      bigram_logits, TOKENIZER.encode, bos_id=tokenizers.BOS_ID, max_len=4
    )(jnp.asarray(table), [TASK])
    np.testing.assert_allclose(
      short["downstream/toy/answer_nll"], full["downstream/toy/answer_nll"], rtol=1e-5
    )
    self.assertNotAlmostEqual(
      short["downstream/toy/completion_nll"], full["downstream/toy/completion_nll"]
    )

  def test_answer_token_chance_is_the_question_blind_predictors_accuracy(self):
    chance = teacher_forced.answer_token_chance
    self.assertAlmostEqual(chance([b"12", b"13", b"25"]), 2 / 3)  # the docstring's example
    self.assertEqual(chance([b"7", b"7", b"7"]), 1.0)
    self.assertAlmostEqual(chance([[t] for t in range(8)]), 1 / 8)
    # "4" first (3 of 4), then after "4" the first of three equally common digits: per problem
    # 40 → 2/2, 41 → 1/2, 42 → 1/2, 5 → 0/1, averaged over problems as answer_token_accuracy is.
    self.assertAlmostEqual(chance([b"40", b"41", b"42", b"5"]), 0.5)

  def test_uniform_model_has_log_vocab_nll_and_no_hits(self):
    uniform = lambda params, tokens: jnp.zeros(tokens.shape + (VOCAB,))
    got = teacher_forced.make_teacher_forced(
      uniform, TOKENIZER.encode, bos_id=tokenizers.BOS_ID, max_len=64
    )(None, [TASK])
    np.testing.assert_allclose(got["downstream/toy/completion_nll"], np.log(VOCAB), rtol=1e-6)
    np.testing.assert_allclose(
      got["downstream/toy/answer_nll"], np.log(VOCAB), rtol=1e-6
    )  # one answer byte
    self.assertEqual(got["downstream/toy/completion_token_accuracy"], 0.0)  # argmax is the pad id

  def test_one_compilation_for_several_tasks(self):
    traces = []

    def counting(params, tokens):
      traces.append(tokens.shape)
      return bigram_logits(params, tokens)

    other = teacher_forced.ForcedTask(
      name="other", prompts=("x",), completions=(" y 12",), answers=("12",)
    )
    got = teacher_forced.make_teacher_forced(
      counting, TOKENIZER.encode, bos_id=tokenizers.BOS_ID, max_len=64, chunk_size=2
    )(jnp.zeros((VOCAB, VOCAB)), [TASK, other])
    self.assertLen(traces, 1)
    self.assertEqual(traces[0], (2, 32))
    self.assertIn("downstream/other/answer_nll", got)

  def test_math_forced_task_is_the_corpus_document(self):
    task = teacher_forced.math_forced_task(
      "solve_then_evaluate", num=20, seed=0, split="validation"
    )
    self.assertLen(task.prompts, 20)
    self.assertEqual(
      list(zip(task.prompts, task.answers)),
      word_problems.math_problems("solve_then_evaluate", "validation", 20, 0),
    )
    for completion, answer in zip(task.completions, task.answers):
      self.assertTrue(completion.endswith(f"\n{word_problems.ANSWER_PREFIX} {answer}"))

  def test_bad_input(self):
    with self.assertRaisesRegex(ValueError, "does not end with"):
      teacher_forced.ForcedTask(
        name="x", prompts=("a",), completions=(" 4 and more",), answers=("4",)
      )
    with self.assertRaisesRegex(ValueError, "as many completions"):
      teacher_forced.ForcedTask(name="x", prompts=("a", "b"), completions=(" 4",), answers=("4",))
    with self.assertRaisesRegex(ValueError, "without '/'"):
      teacher_forced.ForcedTask(name="a/b", prompts=("a",), completions=(" 4",), answers=("4",))
    with self.assertRaisesRegex(ValueError, "chunk_size"):
      teacher_forced.make_teacher_forced(
        bigram_logits, TOKENIZER.encode, bos_id=1, max_len=8, chunk_size=0
      )
    score = teacher_forced.make_teacher_forced(bigram_logits, TOKENIZER.encode, bos_id=1, max_len=8)
    long_answer = teacher_forced.ForcedTask(
      name="x", prompts=("a",), completions=(" 123456789",), answers=("123456789",)
    )
    with self.assertRaisesRegex(ValueError, "max_len=8"):
      score(jnp.zeros((VOCAB, VOCAB)), [long_answer])
    with self.assertRaisesRegex(ValueError, "distinct"):
      score(jnp.zeros((VOCAB, VOCAB)), [TASK, TASK])


if __name__ == "__main__":
  absltest.main()
