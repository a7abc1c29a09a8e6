"""The per-step source choice: the four modes' distributions and structure, and determinism."""

from absl.testing import absltest
from absl.testing import parameterized
import numpy as np

from nexus.data import schedule

UNIFORM = np.full(4, 0.25)
SKEWED = np.asarray([0.5, 0.3, 0.2, 0.0])


def sources(mode, step, probabilities=UNIFORM, seed=0, k=3, b=5):
  return schedule.micro_batch_sources(
    mode, seed=seed, step=step, num_inner_steps=k, global_batch_size=b, probabilities=probabilities
  )


class ScheduleTest(parameterized.TestCase):
  @parameterized.parameters("pure_uniform", "pure_weighted", "round_robin")
  def test_pure_modes_give_one_source_per_micro_batch(self, mode):
    for step in range(20):
      ids = sources(mode, step)
      self.assertEqual(ids.shape, (3, 5))
      self.assertEqual(ids.dtype, np.int32)
      np.testing.assert_array_equal(ids, np.repeat(ids[:, :1], 5, axis=1))

  @parameterized.parameters(
    ("pure_uniform", UNIFORM), ("pure_weighted", SKEWED), ("mixture", SKEWED), ("mixture", UNIFORM)
  )
  def test_frequencies_follow_the_weights(self, mode, probabilities):
    ids = np.concatenate(
      [
        sources(mode, step, probabilities)[:, 0 if mode != "mixture" else slice(None)].ravel()
        for step in range(2000)
      ]
    )
    frequencies = np.bincount(ids, minlength=4) / ids.size
    np.testing.assert_allclose(frequencies, probabilities, atol=0.03)

  def test_mixture_mixes_rows(self):
    ids = sources("mixture", 0, k=4, b=64)
    self.assertTrue(all(len(set(row)) > 1 for row in ids))

  def test_round_robin_cycles_are_fresh_permutations_across_steps(self):
    # K=3 and S=4: cycles straddle outer steps.
    sequence = np.concatenate([sources("round_robin", step)[:, 0] for step in range(40)])
    cycles = sequence.reshape(-1, 4)
    for cycle in cycles:
      self.assertCountEqual(cycle, range(4))
    self.assertGreater(len({tuple(c) for c in cycles}), 5)

  @parameterized.parameters("pure_uniform", "pure_weighted", "round_robin", "mixture")
  def test_deterministic_in_seed_and_step(self, mode):
    p = UNIFORM
    first = np.stack([sources(mode, step, p, seed=7) for step in range(10)])
    np.testing.assert_array_equal(
      first, np.stack([sources(mode, step, p, seed=7) for step in range(10)])
    )
    self.assertFalse(
      np.array_equal(first, np.stack([sources(mode, step, p, seed=8) for step in range(10)]))
    )


if __name__ == "__main__":
  absltest.main()
