"""One-line checks of config fields, shared by the config sections of the model, data and trainer.

Each raises a ValueError that names the field (``config.<section>.<field>``), the value it got and
what would be valid, so a bad command-line override fails before any work starts. (The optimizer
layer has its own argument checks, ``nexus.optim.checks``, since it depends on JAX and Optax only.)
"""

from collections.abc import Iterable
import math
from typing import Any


def positive_int(name: str, value: Any) -> None:
  """``value`` is an int >= 1 (bools are not ints here)."""
  if not isinstance(value, int) or isinstance(value, bool) or value < 1:
    raise ValueError(f"{name}={value!r} must be a positive integer.")


def non_negative_int(name: str, value: Any) -> None:
  """``value`` is an int >= 0."""
  if not isinstance(value, int) or isinstance(value, bool) or value < 0:
    raise ValueError(f"{name}={value!r} must be a non-negative integer.")


def positive_number(name: str, value: Any) -> None:
  """``value`` is a finite real number > 0."""
  if not _is_real(value) or not math.isfinite(value) or value <= 0:
    raise ValueError(f"{name}={value!r} must be a positive number.")


def fraction(name: str, value: Any) -> None:
  """``value`` is a real number in [0, 1]."""
  if not _is_real(value) or not 0 <= value <= 1:
    raise ValueError(f"{name}={value!r} must be a number in [0, 1].")


def boolean(name: str, value: Any) -> None:
  if not isinstance(value, bool):
    raise ValueError(f"{name}={value!r} must be True or False.")


def choice(name: str, value: Any, choices: Iterable[Any]) -> None:
  """``value`` is one of ``choices`` (compared exactly)."""
  choices = tuple(choices)
  if isinstance(value, bool) or value not in choices:
    raise ValueError(f"{name}={value!r} is not one of {choices}.")


def _is_real(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)
