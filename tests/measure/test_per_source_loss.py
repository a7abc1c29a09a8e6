"""Per-source, micro/macro and OOD losses on sources of unequal size, with and without token weights."""

from absl.testing import absltest
import jax.numpy as jnp
import numpy as np

from nexus.measure import per_source_loss

PARAMS = {"scale": jnp.asarray(2.0)}


def row_loss(params, batch):
  return params["scale"] * batch["value"]


def num_tokens(batch):
  return batch["count"]


def batch(values, counts):
  return {"value": np.asarray(values, np.float32), "count": np.asarray(counts, np.int32)}


# Row losses are 2·value. "web": 4 rows in 2 batches; "code": 1 batch of 3 rows; "poetry" held out.
BATCHES = {
  "web": [batch([1.0, 2.0], [1, 3]), batch([3.0, 4.0], [2, 2])],
  "code": [batch([5.0, 0.0, 1.0], [4, 0, 4])],
  "poetry": [batch([1.0, 3.0], [1, 1]), batch([2.0, 2.0], [2, 0])],
}


class PerSourceLossTest(absltest.TestCase):
  def test_row_means_micro_and_macro(self):
    metrics = per_source_loss.make_per_source_loss(row_loss)(
      PARAMS, BATCHES, held_out_sources=["poetry"]
    )
    web, code = 2 * (1 + 2 + 3 + 4) / 4, 2 * (5 + 0 + 1) / 3  # 5 and 4
    np.testing.assert_allclose(metrics["eval/loss/web"], web)
    np.testing.assert_allclose(metrics["eval/loss/code"], code)
    np.testing.assert_allclose(
      metrics["eval/loss_micro"], 2 * (10 + 6) / 7
    )  # every row counts once
    np.testing.assert_allclose(
      metrics["eval/loss_macro"], (web + code) / 2
    )  # every source counts once
    np.testing.assert_allclose(metrics["eval/ood_loss/poetry"], 2 * 8 / 4)
    np.testing.assert_allclose(metrics["eval/ood_loss_macro"], 4.0)
    self.assertSameElements(
      metrics,
      [
        "eval/loss/web",
        "eval/loss/code",
        "eval/loss_micro",
        "eval/loss_macro",
        "eval/ood_loss/poetry",
        "eval/ood_loss_micro",
        "eval/ood_loss_macro",
      ],
    )

  def test_token_weighted(self):
    evaluate = per_source_loss.make_per_source_loss(row_loss, num_tokens_fn=num_tokens)
    metrics = evaluate(PARAMS, BATCHES, held_out_sources=["poetry"])
    web = 2 * (1 * 1 + 2 * 3 + 3 * 2 + 4 * 2) / 8  # 21/4
    code = 2 * (5 * 4 + 1 * 4) / 8  # 6: the empty row has no weight
    np.testing.assert_allclose(metrics["eval/loss/web"], web, rtol=1e-6)
    np.testing.assert_allclose(metrics["eval/loss/code"], code, rtol=1e-6)
    np.testing.assert_allclose(metrics["eval/loss_micro"], 2 * (21 + 24) / 16, rtol=1e-6)
    np.testing.assert_allclose(metrics["eval/loss_macro"], (web + code) / 2, rtol=1e-6)
    np.testing.assert_allclose(metrics["eval/ood_loss/poetry"], 2 * (1 + 3 + 4) / 4, rtol=1e-6)

  def test_empty_row_with_nan_loss_is_ignored(self):
    def nan_for_empty_rows(params, b):
      return jnp.where(b["count"] > 0, row_loss(params, b), jnp.nan)

    metrics = per_source_loss.make_per_source_loss(nan_for_empty_rows, num_tokens_fn=num_tokens)(
      PARAMS, {"code": BATCHES["code"]}
    )
    np.testing.assert_allclose(metrics["eval/loss/code"], 6.0, rtol=1e-6)

  def test_compiles_once_per_batch_shape(self):
    traces = []

    def counting_row_loss(params, b):
      traces.append(b["value"].shape)
      return row_loss(params, b)

    evaluate = per_source_loss.make_per_source_loss(counting_row_loss)
    evaluate(PARAMS, BATCHES, held_out_sources=["poetry"])
    evaluate({"scale": jnp.asarray(3.0)}, BATCHES)
    self.assertCountEqual(traces, [(2,), (3,)])

  def test_bad_input(self):
    evaluate = per_source_loss.make_per_source_loss(row_loss)
    with self.assertRaisesRegex(ValueError, "held_out_sources"):
      evaluate(PARAMS, BATCHES, held_out_sources=["news"])
    with self.assertRaisesRegex(ValueError, "no batches"):
      evaluate(PARAMS, {"web": []})
    with self.assertRaisesRegex(ValueError, "non-empty mapping"):
      evaluate(PARAMS, {})
    with self.assertRaisesRegex(ValueError, "one loss per row"):
      per_source_loss.make_per_source_loss(lambda p, b: jnp.sum(row_loss(p, b)))(PARAMS, BATCHES)
    with self.assertRaisesRegex(ValueError, "no tokens"):
      per_source_loss.make_per_source_loss(row_loss, num_tokens_fn=num_tokens)(
        PARAMS, {"x": [batch([1.0], [0])]}
      )


if __name__ == "__main__":
  absltest.main()
