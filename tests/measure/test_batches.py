"""Stacking per-source batch lists into [S, N, ...] arrays."""

from absl.testing import absltest
import numpy as np

from nexus.measure import batches as batches_lib


def batch(value, length=3):
  return {"tokens": np.full((2, length), value, np.int32)}


class StackSourceBatchesTest(absltest.TestCase):
  def test_layout(self):
    sources, stacked = batches_lib.stack_source_batches(
      {"web": [batch(1), batch(2), batch(9)], "code": [batch(3), batch(4)]}, 2
    )
    self.assertEqual(sources, ["web", "code"])
    self.assertEqual(stacked["tokens"].shape, (2, 2, 2, 3))
    np.testing.assert_array_equal(stacked["tokens"][:, :, 0, 0], [[1, 2], [3, 4]])

  def test_bad_input(self):
    with self.assertRaisesRegex(ValueError, "different numbers of batches"):
      batches_lib.stack_source_batches({"web": [batch(1)], "code": [batch(3), batch(4)]})
    with self.assertRaisesRegex(ValueError, "batch 0 of source 'code' differs"):
      batches_lib.stack_source_batches({"web": [batch(1)], "code": [batch(3, length=4)]})
    with self.assertRaisesRegex(ValueError, "num_batches=0"):
      batches_lib.stack_source_batches({"web": [batch(1)]}, 0)


if __name__ == "__main__":
  absltest.main()
