"""The measurement layer stays light: ``nexus.measure`` does not load ``nexus.report`` (reports are
offline work, done after training by ``launch.compare``), and neither it nor the trainer loads
matplotlib."""

import json

from absl.testing import absltest

from tests import multidevice


class LayeringTest(absltest.TestCase):
  def test_measure_loads_no_report_and_the_trainer_no_matplotlib(self):
    loaded = multidevice.run_with_devices(
      """
      import json
      import sys

      def loaded(package):
        return sorted(m for m in sys.modules if m == package or m.startswith(package + "."))

      import nexus.measure
      report = loaded("nexus.report")
      import nexus.train.loop
      print(json.dumps({"report": report, "matplotlib": loaded("matplotlib")}))
      """,
      num_devices=1,
    )
    self.assertEqual(json.loads(loaded), {"report": [], "matplotlib": []})


if __name__ == "__main__":
  absltest.main()
