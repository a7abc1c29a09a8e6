"""The test session's XLA flags: a fast-compile flag this jaxlib does not know is left out, not fatal."""

from tests import multidevice


def test_an_unknown_optional_flag_is_probed_and_left_out(monkeypatch):
  monkeypatch.delenv("NEXUS_TESTS_FAST_COMPILE_FLAGS")
  monkeypatch.setattr(multidevice, "OPTIONAL_FAST_COMPILE_FLAG", "--xla_cpu_no_such_flag=true")
  assert multidevice.fast_compile_flags() == multidevice.FAST_COMPILE_FLAGS
