"""Builds what a run needs from its config: the model's pure params, their shardings, the loss
functions, the optimizer-state shardings, and the placement of host batches on the mesh."""

from collections.abc import Callable
import dataclasses
from typing import Any

from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import optax

from nexus import model as model_lib
from nexus.train import step as step_lib

BATCH_AXES = ("data", "fsdp")


@dataclasses.dataclass(frozen=True)
class Run:
  """The pieces of a run that depend on the config and mesh only (no data, no checkpoint)."""

  mesh: jax.sharding.Mesh
  model_config: Any
  graphdef: Any
  abstract_state: step_lib.TrainState
  state_shardings: step_lib.TrainState
  batch_sharding: NamedSharding
  init_state: Callable[[], step_lib.TrainState]
  microbatch_loss: Callable[[Any, jax.Array], jax.Array]
  row_loss: Callable[[Any, jax.Array], jax.Array]

  def global_batch(self, batch: dict) -> dict[str, jax.Array]:
    """This process's ``[K, B_local, L+1]`` tokens as one global array sharded over the batch axis."""
    return {
      "tokens": jax.make_array_from_process_local_data(
        self.batch_sharding, np.asarray(batch["tokens"])
      )
    }

  def model(self, params) -> nnx.Module:
    """The model with ``params`` (a pure dict) merged in."""
    return nnx.merge(self.graphdef, params)

  def replicated(self, tree):
    return jax.device_put(tree, NamedSharding(self.mesh, P()))


def _optimizer_state_shardings(tx, abstract_params, mesh):
  """Optimizer-state shardings as XLA propagates them from the params through ``tx.init``.

  Params-shaped state (moments, Nexus's outer copy) inherits each param's sharding and counters are
  replicated, for any optimizer, including states with masked subtrees (Muon) that
  ``optax.tree_map_params`` cannot pair with the params.
  """
  compiled = jax.jit(tx.init).lower(abstract_params).compile()
  mesh_devices, replicated = set(mesh.devices.flat), NamedSharding(mesh, P())
  # Leaves that do not depend on the params (counters, diagnostics) may come out on one device;
  # replicate them.
  shardings = jax.tree.map(
    lambda s: s if s.device_set == mesh_devices else replicated, compiled.output_shardings
  )
  return shardings, jax.eval_shape(tx.init, abstract_params)


def setup_run(config, tx: optax.GradientTransformation, mesh: jax.sharding.Mesh) -> Run:
  """Creates the model abstractly, derives every sharding, and returns a ``Run``.

  ``config`` is an ``ExperimentConfig`` (``nexus.train.schema``): ``config.model`` and ``config.seed``.
  """
  model_config = config.model
  seed = int(config.seed)
  make_model = lambda: model_lib.Transformer(model_config, rngs=nnx.Rngs(seed))
  abstract_model = nnx.eval_shape(make_model)
  graphdef, abstract_params = nnx.split(abstract_model)
  param_shardings = model_lib.sharding.state_shardings(abstract_params, mesh)
  param_shardings = nnx.to_pure_dict(param_shardings)
  abstract_params = jax.tree.map(
    lambda x, sharding: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
    nnx.to_pure_dict(abstract_params),
    param_shardings,
  )
  opt_shardings, abstract_opt_state = _optimizer_state_shardings(tx, abstract_params, mesh)
  replicated = NamedSharding(mesh, P())
  state_shardings = step_lib.TrainState(
    step=replicated, params=param_shardings, opt_state=opt_shardings, skipped_steps=replicated
  )
  scalar = jax.ShapeDtypeStruct((), jnp.int32)
  abstract_state = jax.tree.map(
    lambda shape, sharding: jax.ShapeDtypeStruct(shape.shape, shape.dtype, sharding=sharding),
    step_lib.TrainState(
      step=scalar, params=abstract_params, opt_state=abstract_opt_state, skipped_steps=scalar
    ),
    state_shardings,
  )

  def merge(params):
    return nnx.merge(graphdef, params)  # Run.model, before the Run exists

  def init_state_fn():
    params = nnx.to_pure_dict(nnx.state(make_model()))
    zero = jnp.zeros((), jnp.int32)
    return step_lib.TrainState(
      step=zero, params=params, opt_state=tx.init(params), skipped_steps=zero
    )

  def row_loss(params, tokens):
    return model_lib.per_row_loss(merge(params), tokens)

  def microbatch_loss(params, tokens):
    return model_lib.mean_token_loss(merge(params), tokens)

  return Run(
    mesh=mesh,
    model_config=model_config,
    graphdef=graphdef,
    abstract_state=abstract_state,
    state_shardings=state_shardings,
    batch_sharding=NamedSharding(mesh, P(None, BATCH_AXES)),
    init_state=jax.jit(init_state_fn, out_shardings=state_shardings),
    microbatch_loss=microbatch_loss,
    row_loss=row_loss,
  )
