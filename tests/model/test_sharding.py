"""Logical axis rules → mesh shardings: specs, divisibility drops, errors, activation constraints, and a real
8-device forward."""

import logging

from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from nexus.model import Transformer
from nexus.model import mean_token_loss
from nexus.model import sharding
from tests.model.fixtures import SMALL
from tests.model.fixtures import random_tokens

MESH = AbstractMesh((2, 2, 2), ("data", "fsdp", "tensor"))


def test_default_rules_shard_fsdp_and_tensor_dimensions():
  spec, dropped = sharding.partition_spec(("layers", "embed", "mlp"), (2, 32, 64), MESH)
  assert spec == P(None, "fsdp", "tensor") and not dropped
  spec, _ = sharding.partition_spec(("heads", "head_dim", "embed"), (4, 8, 32), MESH)
  assert spec == P("tensor", None, "fsdp")


def test_axes_that_do_not_divide_are_dropped():
  spec, dropped = sharding.partition_spec(("vocab", "embed"), (61, 32), MESH, name="embedding")
  assert spec == P(None, "fsdp")
  assert dropped == ["embedding dim 'vocab' of size 61: mesh axes ('tensor',) dropped"]
  spec, _ = sharding.partition_spec(
    ("batch", None), (6, 5), MESH
  )  # 6 splits over data (2), not data x fsdp (4)
  assert spec == P("data", None)


@pytest.mark.parametrize(
  "axes, rules, message",
  [
    (("embed", "unnamed"), sharding.DEFAULT_RULES, "'unnamed' has no sharding rule"),
    (("embed",), [("embed", "model")], r"mesh axes \['model'\] absent from the mesh"),
    (
      ("embed", "mlp"),
      [("embed", "fsdp"), ("mlp", "fsdp")],
      r"mesh axes \['fsdp'\] are used by two dimensions",
    ),
    (("embed",), [("embed", "fsdp"), ("embed", None)], "has two sharding rules"),
    (("embed",), [("embed",)], "must be a \\(logical name, mesh axes\\) pair"),
  ],
)
def test_bad_rules_raise(axes, rules, message):
  with pytest.raises(ValueError, match=message):
    sharding.partition_spec(axes, (8,) * len(axes), MESH, rules)


def test_state_shardings_of_an_abstract_model(caplog):
  abstract = nnx.eval_shape(lambda: Transformer(SMALL, rngs=nnx.Rngs(0)))
  with caplog.at_level(logging.WARNING):
    shardings = nnx.to_pure_dict(sharding.state_shardings(nnx.state(abstract), MESH))
  assert shardings["blocks"]["attention"]["key"].spec == P(None, "fsdp", "tensor", None)
  assert shardings["blocks"]["mlp"]["down"].spec == P(None, "tensor", "fsdp")
  assert shardings["blocks"]["mlp_norm"]["scale"].spec == P(None, None)
  assert shardings["unembedding"].spec == P("fsdp", None)  # 61 ids do not split over tensor=2
  assert "['unembedding'] dim 'vocab' of size 61" in caplog.text


def test_activation_specs_skip_mesh_axes_taken_by_the_batch():
  spec, _ = sharding.partition_spec(
    ("batch", "length", "embed"), (8, 16, 32), MESH, skip_used_axes=True
  )
  assert spec == P(("data", "fsdp"), None, None)
  spec, _ = sharding.partition_spec(
    ("batch", "length", "mlp"), (8, 16, 64), MESH, skip_used_axes=True
  )
  assert spec == P(("data", "fsdp"), None, "tensor")


def test_constrain_without_a_mesh_is_the_identity():
  x = jnp.ones((2, 3, 4))
  assert sharding.constrain(x, ("batch", "length", "embed")) is x


def test_batch_sharding():
  assert sharding.batch_sharding(MESH, leading_dims=1).spec == P(None, ("data", "fsdp"), None)
  with pytest.raises(ValueError, match="no 'batch' rule"):
    sharding.batch_sharding(MESH, rules=[("embed", "fsdp")])


def test_sharded_forward_and_loss_match_one_device():
  assert len(jax.devices()) == 8, "tests/conftest.py gives the session 8 CPU devices"
  model = Transformer(SMALL, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tokens = random_tokens((8, 13))

  def loss_and_logits(params, tokens):
    model = nnx.merge(graphdef, params)
    return mean_token_loss(model, tokens), model(tokens[:, :-1])

  expected = jax.jit(loss_and_logits)(params, tokens)
  mesh = Mesh(
    np.asarray(jax.devices()).reshape(2, 2, 2),
    ("data", "fsdp", "tensor"),
    axis_types=(AxisType.Auto,) * 3,
  )
  param_shardings = sharding.state_shardings(params, mesh)
  batch_sharding = sharding.batch_sharding(mesh)
  sharded_params = jax.device_put(params, param_shardings)
  gate = sharded_params["blocks"]["mlp"]["gate"][...]
  assert gate.addressable_shards[0].data.shape == (2, 16, 32)
  step = jax.jit(loss_and_logits, in_shardings=(param_shardings, batch_sharding))
  sharded_tokens = jax.device_put(tokens, batch_sharding)
  for want, got in zip(expected, step(sharded_params, sharded_tokens)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # Under a mesh the activations are constrained at the block boundaries (one scanned body):
  # embeddings, queries, attended values, MLP hidden, the two residual sums; two forward passes.
  assert "sharding_constraint" not in step.lower(sharded_params, tokens).as_text()
  with jax.set_mesh(mesh):
    constrained = step.lower(sharded_params, sharded_tokens)
    text = constrained.as_text()
    assert text.count("sharding_constraint") == 2 * 6
    assert (
      '[{"data", "fsdp"}, {}, {"tensor"}]> : tensor<8x12x64xf32>' in text
    )  # [batch, length, mlp]
    for want, got in zip(expected, constrained.compile()(sharded_params, sharded_tokens)):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
