"""Logical axis names → mesh axes (``data``, ``fsdp``, ``tensor``): parameter and batch shardings.

Every parameter names its dimensions logically (``vocab``, ``embed``, ``mlp``, ``heads``,
``kv_heads``, ``head_dim``, ``layers``, ``norm``); a rule table maps each name to ``None``
(replicated), one mesh axis or a tuple of mesh axes, as in MaxText's ``logical_axis_rules``. The
default rules shard weights over ``fsdp`` along ``embed`` (ZeRO-3/FSDP) and over ``tensor`` along
the Megatron dimensions (``mlp``, ``heads``, ``kv_heads``, ``vocab``), keep ``layers`` whole so a
scan slices locally, and split the batch over ``data`` × ``fsdp``.

Activations are constrained at block boundaries with ``constrain`` (logical names ``batch``,
``length``, ``embed``, ``heads``, ``mlp``, ``vocab``) when the program is traced under a mesh
(``jax.set_mesh(mesh)``); without a mesh it is the identity, so the model runs unchanged on one
device. In activations a mesh axis already used by an earlier dimension is skipped (``batch`` takes
``data`` x ``fsdp``, so ``embed``, which shards weights over ``fsdp``, stays whole in activations).

Divisibility policy: a mesh axis that does not divide the dimension it would split is DROPPED for
that dimension (that dimension is replicated over it instead) and a warning lists every such case.
This keeps e.g. the byte vocabulary (259 ids) usable on a mesh with ``tensor=2``; a warning about a
large model says where a shape change would recover the sharding.
"""

from collections.abc import Sequence
import logging
import math
from typing import Any

from flax import nnx
import jax
from jax.sharding import AbstractMesh
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec

_LOG = logging.getLogger(__name__)

MeshLike = Mesh | AbstractMesh  # an AbstractMesh gives shardings without devices (AOT, tests)
MeshAxes = str | tuple[str, ...] | None
Rules = Sequence[tuple[str, MeshAxes]]

DEFAULT_RULES: tuple[tuple[str, MeshAxes], ...] = (
  ("batch", ("data", "fsdp")),
  ("length", None),
  ("vocab", "tensor"),
  ("embed", "fsdp"),
  ("mlp", "tensor"),
  ("heads", "tensor"),
  ("kv_heads", "tensor"),
  ("head_dim", None),
  ("layers", None),
  ("norm", None),
)


def _as_tuple(axes: MeshAxes) -> tuple[str, ...]:
  if axes is None:
    return ()
  return (axes,) if isinstance(axes, str) else tuple(axes)


def _rule_table(rules: Rules, mesh: MeshLike) -> dict[str, tuple[str, ...]]:
  """The rules as ``{logical name: mesh axes}``, after checking names and mesh axes."""
  table = {}
  for rule in rules:
    if len(rule) != 2 or not isinstance(rule[0], str):
      raise ValueError(f"sharding rule {rule!r} must be a (logical name, mesh axes) pair.")
    name, axes = rule[0], _as_tuple(rule[1])
    if name in table:
      raise ValueError(f"logical axis {name!r} has two sharding rules; keep one.")
    unknown = [axis for axis in axes if axis not in mesh.axis_names]
    if unknown:
      raise ValueError(
        f"sharding rule for {name!r} names mesh axes {unknown} absent from the mesh "
        f"{tuple(mesh.axis_names)}; fix the rule or the mesh."
      )
    table[name] = axes
  return table


def _divisible_prefix(axes: tuple[str, ...], size: int, mesh: MeshLike) -> tuple[str, ...]:
  """The longest prefix of ``axes`` whose mesh sizes multiply to a divisor of ``size``."""
  while axes and size % math.prod(mesh.shape[axis] for axis in axes):
    axes = axes[:-1]
  return axes


def partition_spec(
  logical_axes: Sequence[str | None],
  shape: Sequence[int],
  mesh: MeshLike,
  rules: Rules = DEFAULT_RULES,
  *,
  name: str = "array",
  skip_used_axes: bool = False,
) -> tuple[PartitionSpec, list[str]]:
  """The ``PartitionSpec`` of an array of ``shape`` with ``logical_axes``, and the drops it made.

  Returns ``(spec, dropped)`` where ``dropped`` describes each mesh axis left out for divisibility.
  A mesh axis wanted by two dimensions is an error, unless ``skip_used_axes`` (activations), where
  the later dimension does without it.
  """
  table = _rule_table(rules, mesh)
  if len(logical_axes) != len(shape):
    raise ValueError(
      f"{name}: {len(logical_axes)} logical axes {tuple(logical_axes)} for shape {tuple(shape)}."
    )
  spec: list[MeshAxes] = []
  used: set[str] = set()
  dropped = []
  for logical, size in zip(logical_axes, shape):
    if logical is None:
      spec.append(None)
      continue
    if logical not in table:
      raise ValueError(
        f"{name}: logical axis {logical!r} has no sharding rule; add one (None = replicated)."
      )
    wanted = table[logical]
    if skip_used_axes:
      wanted = tuple(axis for axis in wanted if axis not in used)
    reused = used.intersection(wanted)
    if reused:
      raise ValueError(
        f"{name}: mesh axes {sorted(reused)} are used by two dimensions of {tuple(logical_axes)}; "
        "change the rules so each mesh axis shards at most one dimension."
      )
    kept = _divisible_prefix(wanted, size, mesh)
    if kept != wanted:
      dropped.append(
        f"{name} dim {logical!r} of size {size}: mesh axes {wanted[len(kept) :]} dropped"
      )
    used.update(kept)
    spec.append(None if not kept else kept[0] if len(kept) == 1 else kept)
  return PartitionSpec(*spec), dropped


def state_shardings(state: Any, mesh: MeshLike, rules: Rules = DEFAULT_RULES) -> Any:
  """``NamedSharding``s for every ``nnx.Variable`` of ``state`` from its logical axis names.

  Args:
    state: an ``nnx.State`` (concrete, or abstract from ``nnx.eval_shape``) or any tree of Variables.
      A Variable without ``out_sharding`` metadata is replicated.
    mesh: the device mesh.
    rules: ``(logical name, mesh axes)`` pairs; defaults to ``DEFAULT_RULES``.

  Returns:
    The same tree with each Variable's value replaced by its ``NamedSharding`` (``nnx.to_pure_dict``
    turns it into a plain dict for ``jax.jit``'s ``in_shardings``/``out_shardings``).
  """
  all_dropped = []

  def sharding(path, variable):
    axes = variable.get_metadata().get("out_sharding") or (None,) * len(variable.shape)
    spec, dropped = partition_spec(
      axes, variable.shape, mesh, rules, name=jax.tree_util.keystr(path)
    )
    all_dropped.extend(dropped)
    return variable.replace(NamedSharding(mesh, spec))

  shardings = jax.tree.map_with_path(sharding, state, is_leaf=lambda x: isinstance(x, nnx.Variable))
  if all_dropped:
    _LOG.warning(
      "replicated instead of sharded (mesh axis does not divide the size): %s",
      "; ".join(all_dropped),
    )
  return shardings


def batch_sharding(
  mesh: MeshLike, *, leading_dims: int = 0, rules: Rules = DEFAULT_RULES
) -> NamedSharding:
  """The sharding of token batches ``[*leading, B, L]``: rows split by the ``batch`` rule.

  The batch size must be divisible by the product of the ``batch`` mesh axes (the trainer's config
  checks enforce it before compiling).
  """
  table = _rule_table(rules, mesh)
  if "batch" not in table:
    raise ValueError(
      "the sharding rules have no 'batch' rule; add one, e.g. ('batch', ('data', 'fsdp'))."
    )
  axes = table["batch"]
  return NamedSharding(mesh, PartitionSpec(*([None] * leading_dims), axes or None, None))


def constrain(
  x: jax.Array, logical_axes: Sequence[str | None], rules: Rules = DEFAULT_RULES
) -> jax.Array:
  """``x`` constrained to the sharding its logical axes map to on the current mesh (if any).

  Used on activations inside the model; the identity when no mesh is set (``jax.set_mesh``), so
  single-device code and tests need no mesh. Dimensions a mesh axis does not divide stay whole.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  spec, _ = partition_spec(
    logical_axes, x.shape, mesh, rules, name="activation", skip_used_axes=True
  )
  return jax.lax.with_sharding_constraint(x, spec)
