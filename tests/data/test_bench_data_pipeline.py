"""The data-pipeline benchmark runs end to end at small shapes and prints its figures and target."""

import contextlib
import io

from absl.testing import absltest

from bench import data_pipeline
from tests.data import fixtures


class DataPipelineBenchTest(absltest.TestCase):
  def test_small_run(self):
    config = fixtures.small_config()
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
      data_pipeline.main(
        [
          "--batch=4",
          "--seq_len=64",
          "--inner_steps=2",
          "--steps=1",
          "--repeats=1",
          f"--corpus_dir={config.corpus_dir}",
          f"--corpus_bytes={config.corpus_bytes_per_source}",
        ]
      )
    text = output.getvalue()
    self.assertIn("stream / in-memory gather = ", text)
    self.assertRegex(text, r"measured [\d,]+ tokens/s per core = [\d.]+x the target")

  def test_target_arithmetic(self):
    args = type(
      "Args",
      (),
      dict(
        preset="130m", seq_len=2048, gpus=8, peak_tflops=989.0, mfu=0.45, margin=10.0, host_cores=32
      ),
    )
    flops_per_token, consumed, per_core = data_pipeline.target_tokens_per_core(args)
    self.assertAlmostEqual(consumed, 8 * 989e12 * 0.45 / flops_per_token)
    self.assertAlmostEqual(per_core, 10 * consumed / 32)
    self.assertBetween(
      flops_per_token, 6 * 100e6, 6 * 130e6 + 12 * 12 * 768 * 2048
    )  # 6·N_matmul + attention


if __name__ == "__main__":
  absltest.main()
