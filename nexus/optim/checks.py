"""Argument checks shared by every transformation in ``nexus.optim`` and by its registry.

Each check raises one line naming the argument, the value it got and the fix, eagerly (when the
transformation is built) wherever the value is known then. Values traced by
``optax.inject_hyperparams`` inside ``jax.jit`` are accepted as they are: they were checked when
they were concrete (at ``init``).
"""

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check_transformation(tx: Any, name: str = "outer") -> None:
  """Raises a TypeError unless ``tx`` (the argument called ``name``) is an Optax transformation."""
  if not (callable(getattr(tx, "init", None)) and callable(getattr(tx, "update", None))):
    raise TypeError(
      f"{name} must be an Optax GradientTransformation (e.g. optax.adamw(1e-3)), got "
      f"{type(tx).__name__}."
    )


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
  """Raises a ValueError unless ``value`` is one of ``choices`` (compared exactly, no case folding)."""
  choices = tuple(choices)
  if isinstance(value, bool) or value not in choices:
    raise ValueError(f"{name}={value!r} is not one of {choices}; pick one of them.")


def check_static_int(name: str, value: Any, minimum: int, hint: str = "") -> None:
  """Raises unless ``value`` is a static Python int >= ``minimum``."""
  if isinstance(value, jax.core.Tracer):
    raise TypeError(
      f"{name} must be a static Python int, got a traced value" + (f"; {hint}" if hint else ".")
    )
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{name} must be a Python int, got {type(value).__name__} {value!r}.")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def check_num_inner_steps(num_inner_steps: Any) -> None:
  """K: a static int >= 1 (with ``optax.inject_hyperparams`` it must be a static argument)."""
  check_static_int(
    "num_inner_steps",
    num_inner_steps,
    1,
    hint="with optax.inject_hyperparams pass static_args=('num_inner_steps',).",
  )


def concrete_scalar(name: str, value: Any) -> float | None:
  """``value`` as a Python float, or None for a schedule or a traced value (nothing to check yet).

  Accepts every real dtype JAX has, bfloat16 and float16 included (``optax.inject_hyperparams`` casts
  hyperparameters to the params' dtype).
  """
  if callable(value) or isinstance(value, jax.core.Tracer):
    return None
  try:
    # numpy, not jax.numpy: inside a trace (a transformation built within jax.jit) jnp.asarray of a
    # Python float would itself be traced. ml_dtypes gives numpy bfloat16/float16 arrays.
    array = np.asarray(value)
  except jax.errors.TracerArrayConversionError:
    return None
  except (TypeError, ValueError):
    array = None
  if (
    array is None
    or array.shape != ()
    or isinstance(value, bool)
    or not (jnp.issubdtype(array.dtype, jnp.floating) or jnp.issubdtype(array.dtype, jnp.integer))
  ):
    raise TypeError(f"{name} must be a real scalar or a schedule, got {value!r}.")
  return float(array)


def check_scalar_in_range(
  name: str, value: Any, low: float, high: float, *, closed: str = "both", fix: str = ""
) -> None:
  """Raises a ValueError unless the scalar ``value`` is finite and within [low, high] as ``closed``
  says (``"both"``, ``"left"`` [low, high), ``"right"`` (low, high], ``"neither"``); schedules and traced
  values pass (see ``concrete_scalar``)."""
  number = concrete_scalar(name, value)
  if number is None:
    return
  above = number >= low if closed in ("both", "left") else number > low
  below = number <= high if closed in ("both", "right") else number < high
  if not (np.isfinite(number) and above and below):
    left = "[" if closed in ("both", "left") else "("
    right = "]" if closed in ("both", "right") else ")"
    raise ValueError(
      f"{name} must be in {left}{low}, {high}{right}, got {number}" + (f"; {fix}" if fix else ".")
    )


def check_inner_learning_rate(inner_learning_rate: Any, pseudo_gradient_scale: str = "raw") -> None:
  """γ: a finite scalar >= 0 (> 0 when the pseudo-gradient is divided by it) or a schedule."""
  if pseudo_gradient_scale == "inverse_gamma":
    check_scalar_in_range(
      "inner_learning_rate",
      inner_learning_rate,
      0.0,
      float("inf"),
      closed="neither",
      fix="pseudo_gradient_scale='inverse_gamma' divides by γ, so pass γ > 0.",
    )
  else:
    check_scalar_in_range(
      "inner_learning_rate",
      inner_learning_rate,
      0.0,
      float("inf"),
      closed="left",
      fix="pass the inner step length γ (finite, >= 0).",
    )


def check_callable(name: str, fn: Any, usage: str) -> None:
  """Raises a TypeError naming ``usage`` (how ``fn`` is called) unless ``fn`` is callable."""
  if not callable(fn):
    raise TypeError(f"{name} must be callable as {usage}, got {type(fn).__name__} {fn!r}.")


def check_tree_like(name: str, tree: Any, params: Any, fix: str) -> None:
  """Raises a ValueError unless ``tree`` has the params' tree structure and leaf shapes."""
  expected = jax.tree.structure(params)
  got = jax.tree.structure(tree)
  if got != expected:  # type: ignore[operator]  # PyTreeDefs compare by structure
    raise ValueError(f"{name} must have the params' tree structure {expected}, got {got}; {fix}")
  for (path, leaf), param in zip(jax.tree.leaves_with_path(tree), jax.tree.leaves(params)):
    if tuple(jnp.shape(leaf)) != tuple(jnp.shape(param)):
      raise ValueError(
        f"{name}{jax.tree_util.keystr(path)} has shape {tuple(jnp.shape(leaf))} where the param has "
        f"shape {tuple(jnp.shape(param))}; {fix}"
      )


def check_scalar_output(name: str, fn: Callable[..., Any], *args: Any) -> None:
  """Raises a ValueError unless ``fn(*args)`` returns a real scalar (checked by shape only)."""
  out = jax.eval_shape(fn, *args)
  if not hasattr(out, "shape") or out.shape != () or not jnp.issubdtype(out.dtype, jnp.floating):
    raise ValueError(f"{name} must return a real scalar loss, got {out}; return the mean loss.")
