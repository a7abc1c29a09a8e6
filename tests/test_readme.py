"""The README's Optax example runs as written (so the documentation cannot rot)."""

import os
import re

from absl.testing import absltest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def readme_example() -> str:
  with open(README, encoding="utf-8") as f:
    text = f.read()
  match = re.search(r"<!-- readme-example[^>]*-->\s*```python\n(.*?)```", text, re.DOTALL)
  if match is None:
    raise AssertionError("README.md lost its tested example block")
  return match.group(1)


class ReadmeTest(absltest.TestCase):
  def test_optax_example_runs_and_trains(self):
    namespace: dict = {}
    exec(compile(readme_example(), README, "exec"), namespace)  # pylint: disable=exec-used
    self.assertGreater(float(namespace["diagnostics"].alignment), 0.0)
    all_rows = {k: v.reshape(-1, *v.shape[2:]) for k, v in namespace["batches"].items()}
    final = namespace["loss"](namespace["params"], all_rows)
    initial = namespace["loss"]({"w": namespace["jnp"].zeros(3)}, all_rows)
    self.assertLess(float(final), 0.1 * float(initial))


if __name__ == "__main__":
  absltest.main()
