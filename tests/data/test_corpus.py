"""The built-in corpus: sources and sizes, caching, determinism, disjoint splits, and no TensorFlow."""

import collections
import itertools
import os
import subprocess
import sys
import tempfile
import textwrap

from absl.testing import absltest
import pytest

from nexus import data as data_lib
from nexus.data import builtin_sources
from nexus.data import splits
from nexus.data import stdlib_text
from tests.data import fixtures

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_python(code: str, *args: str) -> str:
  env = {
    **os.environ,
    "PYTHONPATH": REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
    "JAX_PLATFORMS": "cpu",
  }
  result = subprocess.run(
    [sys.executable, "-c", textwrap.dedent(code), *args],
    env=env,
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  if result.returncode:
    raise AssertionError(f"subprocess failed:\n{result.stdout}\n{result.stderr}")
  return result.stdout + result.stderr


class BuildCorpusTest(absltest.TestCase):
  def build(self, corpus_dir, seed=0):
    return data_lib.build_corpus(
      corpus_dir, bytes_per_source=fixtures.SMALL_BYTES_PER_SOURCE, seed=seed
    )

  def test_sources_roles_and_sizes(self):
    summary = self.build(fixtures.small_config().corpus_dir)
    self.assertCountEqual(summary["sources"], data_lib.BUILTIN_SOURCES)
    held_out = [name for name, source in summary["sources"].items() if source["held_out"]]
    self.assertCountEqual(held_out, ["docstrings", "math_composite"])
    self.assertLen(summary["sources"], 6)
    budgets = builtin_sources.split_budgets(fixtures.SMALL_BYTES_PER_SOURCE)
    for name, source in summary["sources"].items():
      for split, stats in source["splits"].items():
        self.assertGreater(stats["documents"], 0, msg=(name, split))
        self.assertEqual(stats["tokens"], stats["bytes"] + 2 * stats["documents"])
        # Every built-in source is larger than the small budget: each split is filled, overshooting
        # by at most one document (<= 4000 characters).
        self.assertBetween(
          stats["bytes"], budgets[split], budgets[split] + 4 * stdlib_text.MAX_DOCUMENT_CHARS
        )
    table = data_lib.format_summary(summary)
    for name in data_lib.BUILTIN_SOURCES:
      self.assertIn(name, table)

  def test_cached_and_deterministic(self):
    with tempfile.TemporaryDirectory() as first_dir, tempfile.TemporaryDirectory() as second_dir:
      first = self.build(first_dir)
      self.assertFalse(first["cached"])
      summary_file = os.path.join(first["path"], "summary.json")
      mtime = os.stat(summary_file).st_mtime_ns
      again = self.build(first_dir)
      self.assertTrue(again["cached"])
      self.assertEqual(os.stat(summary_file).st_mtime_ns, mtime)
      self.assertEqual(
        [p for p in os.listdir(first_dir)], [os.path.basename(first["path"])]
      )  # no leftovers
      second = self.build(second_dir)
      other_seed = self.build(second_dir, seed=1)
      for name, source in data_lib.BUILTIN_SOURCES.items():
        for split in splits.SPLITS:
          texts = fixtures.corpus_texts(fixtures.small_config(corpus_dir=first_dir), name, split)
          self.assertEqual(
            texts, fixtures.corpus_texts(fixtures.small_config(corpus_dir=second_dir), name, split)
          )
          reseeded = fixtures.corpus_texts(
            fixtures.small_config(corpus_dir=second_dir, seed=1), name, split
          )
          generated = "Apache" in source.licence
          self.assertEqual(
            texts != reseeded, generated, msg=(name, split)
          )  # only generated text depends on seed
      self.assertNotEqual(second["path"], other_seed["path"])

  def test_three_splits_do_not_overlap(self):
    config = fixtures.small_config()
    summary = self.build(config.corpus_dir)
    for name, source in summary["sources"].items():  # training and held-out sources alike
      self.assertEqual(tuple(source["splits"]), splits.SPLITS)
      texts = {split: set(fixtures.corpus_texts(config, name, split)) for split in splits.SPLITS}
      for first, second in itertools.combinations(splits.SPLITS, 2):
        self.assertEmpty(texts[first] & texts[second], msg=(name, first, second))

  def test_split_of_is_a_partition_by_key(self):
    keys = [f"key {i}" for i in range(20_000)]
    counts = collections.Counter(splits.split_of(key) for key in keys)
    self.assertEqual(set(counts), set(splits.SPLITS))
    self.assertBetween(counts[splits.VALIDATION] / len(keys), 0.09, 0.11)
    self.assertBetween(counts[splits.TEST] / len(keys), 0.09, 0.11)
    self.assertEqual(
      [splits.split_of(key) for key in keys[:100]], [splits.split_of(key) for key in keys[:100]]
    )

  def test_too_small_is_rejected(self):
    with self.assertRaisesRegex(ValueError, "too small"):
      data_lib.build_corpus(fixtures.scratch_dir(), bytes_per_source=100, seed=0)


class StdlibTextTest(absltest.TestCase):
  def test_chunks_reassemble_and_respect_the_limit(self):
    with open(os.path.join(stdlib_text.stdlib_dir(), "argparse.py"), encoding="utf-8") as f:
      source = f.read()
    for text in (source, "x" * 9000 + "\n\nshort\n", "", "\n\n  indented\nflush\n"):
      chunks = stdlib_text.chunk_text(text, max_chars=1000)
      self.assertEqual("".join(chunks), text)
      self.assertTrue(all(0 < len(chunk) <= 1000 for chunk in chunks))
    self.assertGreater(len(stdlib_text.chunk_text(source, max_chars=1000)), len(source) // 1000)

  def test_docstring_modules_are_held_out_from_code(self):
    code = set(stdlib_text.stdlib_modules(docstring_modules=False))
    docstrings = set(stdlib_text.stdlib_modules(docstring_modules=True))
    self.assertEmpty(code & docstrings)
    self.assertBetween(len(docstrings) / (len(code) + len(docstrings)), 0.1, 0.3)


class NoTensorFlowTest(absltest.TestCase):
  def test_build_read_and_stream_without_tensorflow(self):
    output = run_python(f"""
        import sys
        from nexus import data
        config = data.DataConfig(corpus_dir={os.path.join(fixtures.scratch_dir(), "no-tf-corpus")!r},
                                 corpus_bytes_per_source={fixtures.SMALL_BYTES_PER_SOURCE})
        stream = data.make_train_stream(config, num_inner_steps=2, global_batch_size=2, seq_len=16, seed=0,
                                        process_index=0, process_count=1)
        next(stream)
        data.make_eval_batches(config, sources=["docstrings"], batch_size=2, seq_len=16, num_batches=1)
        print("tensorflow imported:", "tensorflow" in sys.modules)
    """)
    self.assertIn("tensorflow imported: False", output)

  @pytest.mark.slow
  def test_launcher_prints_the_summary_and_rebuilds(self):
    corpus_dir = os.path.join(fixtures.scratch_dir(), "launcher-corpus")
    code = f"""
        import sys
        from absl import app
        from launch import build_corpus
        sys.argv = ["build_corpus", "--corpus_dir={corpus_dir}", "--bytes_per_source=10000", *sys.argv[1:]]
        app.run(build_corpus.main)
    """
    output = run_python(code)
    for name in data_lib.BUILTIN_SOURCES:
      self.assertIn(name, output)
      self.assertEqual(output.count(f"corpus: built {name} ("), 1)  # one progress line per source
      self.assertEqual(output.count(f"tokenized {name} (byte): "), 1)
    self.assertIn("built in", output)
    for noise in (
      "Downloading and preparing",
      "Generating",
      "%|",
      "Subsequent calls",
    ):  # TFDS banners and bars
      self.assertNotIn(noise, output)
    self.assertNotRegex(output, r"(?m)^I\d{4} ")  # absl INFO lines
    again = run_python(code)
    self.assertIn("reused the cached corpus", again)
    self.assertNotIn("tokenized", again)
    summary = data_lib.build_corpus(corpus_dir, bytes_per_source=10_000, seed=0)
    with open(os.path.join(summary["path"], "summary.json"), "w") as f:
      f.write("{")  # damaged
    rebuilt = run_python(code, "--rebuild")
    self.assertIn("built in", rebuilt)
    self.assertIn("tokenized code (byte)", rebuilt)


if __name__ == "__main__":
  absltest.main()
