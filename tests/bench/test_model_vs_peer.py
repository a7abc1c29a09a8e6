"""bench/model_vs_peer.py: without a nanodo checkout it says so in one line and exits cleanly."""

import sys
from unittest import mock

from bench import model_vs_peer


def test_skips_in_one_line_without_nanodo(tmp_path, capsys):
  with mock.patch.object(sys, "argv", ["model_vs_peer", f"--nanodo_path={tmp_path}"]):
    model_vs_peer.main()
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"skipped: no nanodo checkout at {tmp_path}")


def test_shapes_have_equal_matmul_flops():
  for shape in model_vs_peer.SHAPES.values():
    nanodo_mlp = 2 * shape.d_model * (shape.mlp_dim * 3 // 2)
    assert 3 * shape.d_model * shape.mlp_dim == nanodo_mlp
