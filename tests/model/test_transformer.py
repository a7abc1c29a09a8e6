"""The transformer: shapes, causality, GQA, tied embeddings, precision, scan/unroll, remat, axis names."""

import dataclasses
import functools

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nexus.model import Transformer
from nexus.model import mean_token_loss
from nexus.model import sharding
from tests.model.fixtures import SMALL
from tests.model.fixtures import random_tokens
from tests.model.fixtures import small_config
from tests.model.fixtures import small_model

LOGICAL_NAMES = {name for name, _ in sharding.DEFAULT_RULES} - {"batch"}


# Jitted so that each test compiles one program instead of running op by op.
forward = nnx.jit(lambda model, tokens: model(tokens))
decode = nnx.jit(lambda model, tokens, positions, cache: model.decode(tokens, positions, cache))


@functools.partial(jax.jit, static_argnums=0)
def _loss_and_grads(graphdef, params, tokens):
  return jax.value_and_grad(lambda p: mean_token_loss(nnx.merge(graphdef, p), tokens))(params)


def loss_and_grads(model, tokens):
  return _loss_and_grads(*nnx.split(model), tokens)


def assert_trees_close(a, b, **tolerance):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(x, y, **tolerance)


def test_logits_shape_and_dtype():
  logits = forward(small_model(), random_tokens((3, 10)))
  assert logits.shape == (3, 10, SMALL.vocab_size)
  assert logits.dtype == jnp.float32
  assert np.isfinite(logits).all()


def test_init_is_deterministic_and_layers_differ():
  first, again, other = (
    nnx.state(small_model(0)),
    nnx.state(small_model(0)),
    nnx.state(small_model(1)),
  )
  assert_trees_close(first, again, rtol=0, atol=0)
  assert not np.allclose(first["embedding"][...], other["embedding"][...])
  gate = first["blocks"]["mlp"]["gate"][...]
  assert not np.allclose(gate[0], gate[1])


def test_attention_is_causal():
  model = small_model()
  tokens = random_tokens((2, 12))
  changed = tokens.at[:, 7].set(tokens[:, 7] % (SMALL.vocab_size - 1) + 1)
  before, after = forward(model, tokens), forward(model, changed)
  np.testing.assert_array_equal(before[:, :7], after[:, :7])
  assert not np.allclose(before[:, 7:], after[:, 7:])


def test_grouped_query_attention_equals_multi_head_with_repeated_kv():
  gqa = small_model(num_heads=4, num_kv_heads=2)
  mha = small_model(num_heads=4, num_kv_heads=4)
  state = nnx.state(gqa)
  for name in (
    "key",
    "value",
  ):  # [layers, embed, kv_heads, head_dim]: query head n reads kv head n // 2
    param = state["blocks"]["attention"][name]
    param.set_value(jnp.repeat(param.get_value(), 2, axis=2))
  nnx.update(mha, state)
  tokens = random_tokens((2, 9))
  np.testing.assert_allclose(forward(gqa, tokens), forward(mha, tokens), rtol=1e-5, atol=1e-5)


def test_tied_embeddings_share_the_parameter():
  tied, untied = small_model(tie_embeddings=True), small_model(tie_embeddings=False)
  assert "unembedding" not in nnx.state(tied)
  count = lambda model: sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert count(untied) - count(tied) == SMALL.vocab_size * SMALL.d_model
  # An id absent from the input still gets an embedding gradient: it is the output projection too.
  tokens = random_tokens((2, 8), vocab_size=SMALL.vocab_size - 1)
  _, grads = loss_and_grads(tied, tokens)
  assert np.abs(grads["embedding"][...][SMALL.vocab_size - 1]).sum() > 0
  _, untied_grads = loss_and_grads(untied, tokens)
  assert np.abs(untied_grads["embedding"][...][SMALL.vocab_size - 1]).sum() == 0


def test_bfloat16_compute_keeps_float32_params_and_logits():
  bf16, f32 = small_model(compute_dtype="bfloat16"), small_model(compute_dtype="float32")
  assert {x.dtype for x in jax.tree.leaves(nnx.state(bf16, nnx.Param))} == {jnp.dtype(jnp.float32)}
  tokens = random_tokens((2, 8))
  logits = forward(bf16, tokens)
  assert logits.dtype == jnp.float32
  np.testing.assert_allclose(logits, forward(f32, tokens), atol=0.05)
  _, grads = loss_and_grads(bf16, random_tokens((2, 9)))
  assert {x.dtype for x in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}


def test_scanned_and_unrolled_layers_agree():
  scanned, unrolled = small_model(scan_layers=True), small_model(scan_layers=False)
  assert_trees_close(nnx.state(scanned), nnx.state(unrolled), rtol=0, atol=0)
  tokens = random_tokens((2, 9))
  assert_trees_close(
    loss_and_grads(scanned, tokens), loss_and_grads(unrolled, tokens), rtol=1e-5, atol=1e-6
  )


@pytest.mark.parametrize(
  "remat, scan_layers",
  [
    ("full", True),
    ("dots_saveable", True),
    ("dots_with_no_batch_dims_saveable", True),
    ("full", False),
  ],
)
def test_remat_gives_the_same_gradients(remat, scan_layers):
  tokens = random_tokens((2, 9))
  reference = loss_and_grads(small_model(scan_layers=scan_layers), tokens)
  assert_trees_close(
    loss_and_grads(small_model(remat=remat, scan_layers=scan_layers), tokens),
    reference,
    rtol=1e-5,
    atol=1e-6,
  )


def test_every_param_has_logical_axis_names():
  params = nnx.to_flat_state(nnx.state(small_model(tie_embeddings=False), nnx.Param))
  assert len(params) == 12
  for path, param in params:
    axes = param.get_metadata()["out_sharding"]
    assert len(axes) == param.ndim, path
    assert set(axes) <= LOGICAL_NAMES, path
    assert (axes[0] == "layers") == (path[0] == "blocks"), path


def test_decode_with_cache_matches_the_forward_pass():
  model = small_model()
  tokens = random_tokens((2, 10))
  full = forward(model, tokens)
  positions = jnp.broadcast_to(jnp.arange(6), (2, 6))
  prefill, cache = decode(model, tokens[:, :6], positions, model.init_cache(2, 12))
  np.testing.assert_allclose(prefill, full[:, :6], rtol=1e-5, atol=1e-5)
  for position in range(6, 10):
    logits, cache = decode(
      model, tokens[:, position : position + 1], jnp.full((2, 1), position), cache
    )
    np.testing.assert_allclose(logits[:, 0], full[:, position], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
  "tokens, message",
  [
    (jnp.ones((2, 4), jnp.float32), "integer array"),
    (jnp.ones((8,), jnp.int32), "integer array"),
    (jnp.ones((1, SMALL.max_seq_len + 1), jnp.int32), "exceed max_seq_len"),
  ],
)
def test_bad_tokens_raise(tokens, message):
  with pytest.raises(ValueError, match=message):
    small_model()(tokens)


def test_bad_cache_raises():
  model = small_model()
  with pytest.raises(ValueError, match="init_cache"):
    model.decode(random_tokens((3, 1)), jnp.zeros((3, 1), jnp.int32), model.init_cache(2, 4))
  with pytest.raises(ValueError, match="cache length"):
    model.init_cache(2, SMALL.max_seq_len + 1)
  assert small_config().max_seq_len == SMALL.max_seq_len


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_attention_implementations_agree(compute_dtype):
  """The plain einsum path and jax.nn.dot_product_attention's XLA path: same logits, cache path too."""
  tokens = random_tokens((2, 11))
  einsum, xla = (
    small_model(attention=name, compute_dtype=compute_dtype) for name in ("einsum", "xla")
  )
  atol = 1e-5 if compute_dtype == "float32" else 0.05
  np.testing.assert_allclose(forward(einsum, tokens), forward(xla, tokens), rtol=1e-5, atol=atol)
  positions = jnp.broadcast_to(jnp.arange(5), (2, 5))
  cached = [
    decode(model, tokens[:, :5], positions, model.init_cache(2, 8))[0] for model in (einsum, xla)
  ]
  np.testing.assert_allclose(*cached, rtol=1e-5, atol=atol)


def test_cudnn_attention_off_gpu_is_a_one_line_error():
  if jax.default_backend() == "gpu":
    pytest.skip("runs the cudnn path instead on a GPU (bench/gpu.py)")
  with pytest.raises(ValueError, match="attention='cudnn' needs an NVIDIA GPU") as error:
    forward(small_model(attention="cudnn", compute_dtype="bfloat16"), random_tokens((2, 8)))
  assert "\n" not in str(error.value)


def test_scan_unroll_gives_the_same_gradients():
  tokens = random_tokens((2, 9))
  assert_trees_close(
    loss_and_grads(small_model(scan_unroll=2), tokens),
    loss_and_grads(small_model(), tokens),
    rtol=1e-5,
    atol=1e-6,
  )


@pytest.mark.parametrize("chunk_size", [3, 8, 64])
def test_chunked_loss_gives_the_same_loss_and_gradients(chunk_size):
  """Chunks that do not divide the length (3), divide it (8) or exceed it (64); padding targets inside."""
  tokens = random_tokens((2, 17)).at[1, 12:].set(0)
  whole = loss_and_grads(small_model(tie_embeddings=False), tokens)
  assert_trees_close(
    loss_and_grads(small_model(tie_embeddings=False, loss_chunk_size=chunk_size), tokens),
    whole,
    rtol=1e-5,
    atol=1e-6,
  )


def test_chunked_loss_never_materializes_the_whole_logits():
  config = small_config(vocab_size=4096, loss_chunk_size=8)
  graphdef, params = nnx.split(nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0))))
  tokens = jax.ShapeDtypeStruct((4, 33), jnp.int32)
  compile_temp = lambda graphdef: (
    jax.jit(jax.grad(lambda p, t: mean_token_loss(nnx.merge(graphdef, p), t)))
    .lower(params, tokens)
    .compile()
    .memory_analysis()
    .temp_size_in_bytes
  )
  whole_graphdef, _ = nnx.split(
    nnx.eval_shape(
      lambda: Transformer(dataclasses.replace(config, loss_chunk_size=None), rngs=nnx.Rngs(0))
    )
  )
  logits_bytes = 4 * 32 * 4096 * 4  # float32 [B, L, V]
  # The whole path holds the logits and their gradient; the chunks save at least one such array.
  assert compile_temp(graphdef) <= compile_temp(whole_graphdef) - logits_bytes


def test_named_remat_policy_keeps_the_tagged_tensors(capsys):
  tokens = random_tokens((2, 9))
  model = small_model(remat="save_qkv_attention", scan_layers=False)
  assert_trees_close(
    loss_and_grads(model, tokens), loss_and_grads(small_model(), tokens), rtol=1e-5, atol=1e-6
  )
  graphdef, params = nnx.split(model)
  jax.ad_checkpoint.print_saved_residuals(
    lambda p: mean_token_loss(nnx.merge(graphdef, p), tokens), params
  )
  saved = capsys.readouterr().out
  for name in ("query", "key", "value", "attention"):
    assert saved.count(f"named '{name}'") == SMALL.num_layers, saved
