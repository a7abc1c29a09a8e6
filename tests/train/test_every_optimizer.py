"""Every registered optimizer trains a few real steps in the trainer on the tiny config."""

from absl.testing import absltest

from nexus.optim import registry
from tests import multidevice
from tests.train import harness


class EveryOptimizerTest(absltest.TestCase):
  def test_each_method_runs_real_steps(self):
    overrides = {key: value for key, value in harness.TINY_OVERRIDES.items()}
    overrides.update({"train.steps": 2, "eval.every": 0, "checkpoint.every": 100})
    assignments = "\n".join(f"    config.{key} = {value!r}" for key, value in overrides.items())
    output = multidevice.run_with_devices(
      f"""
      import os, tempfile
      os.environ["NEXUS_CACHE_DIR"] = {harness.cache_dir()!r}
      import numpy as np
      from configs import tiny
      from nexus.train import loop
      for method in {sorted(registry.METHODS)!r}:
        config = tiny.get_config()
{assignments.replace("    config", "        config")}
        config.opt.name = method
        summary = loop.train(config, tempfile.mkdtemp())
        loss = summary["metrics_last"]["train/loss"]
        assert summary["step"] == 2 and np.isfinite(loss), (method, summary)
        print(method, loss)
    """,
      num_devices=1,
      timeout=1200,
    )
    for method in registry.METHODS:
      self.assertIn(method, output)


if __name__ == "__main__":
  absltest.main()
