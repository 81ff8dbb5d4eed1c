"""sagan_tf.layers.normalization: per-class CBN, moving statistics, g_bn's Bessel update."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers.bn_moments import batch_moments
from sagan_tf.layers.normalization import BatchNorm, ConditionalBatchNorm


def _x(shape=(4, 3, 3, 5), seed=0):
  return np.random.RandomState(seed).randn(*shape).astype(np.float32) * 2.0 + 0.5


def _cbn(decay=0.9, eps=1e-5):
  layer = ConditionalBatchNorm(3, decay=decay, epsilon=eps)
  layer.build((None, 3, 3, 5))
  rs = np.random.RandomState(1)
  layer.gamma.assign(1.0 + rs.randn(3, 5).astype(np.float32))
  layer.beta.assign(rs.randn(3, 5).astype(np.float32))
  layer.moving_mean.assign(rs.randn(1, 1, 1, 5).astype(np.float32))
  layer.moving_variance.assign(rs.uniform(0.5, 2, (1, 1, 1, 5)).astype(np.float32))
  return layer


def test_cbn_uses_the_gamma_beta_of_each_label():
  layer, x = _cbn(), _x()
  labels = np.array([0, 2, 1, 2])
  out = layer(x, labels, training=False).numpy()
  mm, mv = layer.moving_mean.numpy(), layer.moving_variance.numpy()
  g, b = layer.gamma.numpy(), layer.beta.numpy()
  for i, y in enumerate(labels):
    expected = (x[i] - mm[0]) / np.sqrt(mv[0] + 1e-5) * g[y] + b[y]
    np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-5)
  # Another label for the same input changes the output.
  other = layer(x, np.array([1, 2, 1, 2]), training=False).numpy()
  assert np.abs(other[0] - out[0]).max() > 1e-2
  np.testing.assert_array_equal(other[1:], out[1:])


def test_cbn_training_uses_batch_moments_and_updates_moving_stats():
  layer, x = _cbn(decay=0.9, eps=1e-3), _x()
  labels = np.array([0, 1, 1, 2])
  mm0, mv0 = layer.moving_mean.numpy(), layer.moving_variance.numpy()
  out = layer(x, labels, training=True).numpy()
  mean = x.mean(axis=(0, 1, 2))
  var = x.var(axis=(0, 1, 2))  # biased, as tf.nn.moments
  g, b = layer.gamma.numpy(), layer.beta.numpy()
  expected = (x - mean) / np.sqrt(var + 1e-3) * g[labels][:, None, None] \
      + b[labels][:, None, None]
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layer.moving_mean.numpy(), 0.9 * mm0 + 0.1 * mean,
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(layer.moving_variance.numpy(), 0.9 * mv0 + 0.1 * var,
                             rtol=1e-6, atol=1e-6)
  # Inference neither updates the statistics nor uses the batch's.
  mm1 = layer.moving_mean.numpy()
  layer(x * 3.0, labels, training=False)
  np.testing.assert_array_equal(layer.moving_mean.numpy(), mm1)


@pytest.mark.parametrize("bessel", [True, False])
def test_batch_norm_moving_variance_update(bessel):
  layer = BatchNorm(decay=0.99, epsilon=1.001e-5, bessel=bessel)
  x = _x((2, 4, 4, 3), seed=2)
  layer.build(x.shape)
  out = layer(x, training=True).numpy()
  n = 2 * 4 * 4
  var = x.var(axis=(0, 1, 2))
  np.testing.assert_allclose(out, (x - x.mean(axis=(0, 1, 2))) / np.sqrt(var + 1.001e-5),
                             rtol=1e-5, atol=1e-5)
  update_var = var * n / (n - 1) if bessel else var
  np.testing.assert_allclose(layer.moving_variance.numpy(),
                             0.99 * 1.0 + 0.01 * update_var, rtol=1e-6)
  np.testing.assert_allclose(layer.moving_mean.numpy(), 0.01 * x.mean(axis=(0, 1, 2)),
                             rtol=1e-5, atol=1e-7)


def test_batch_norm_inference_uses_moving_stats():
  layer = BatchNorm(epsilon=1e-3)
  x = _x((2, 2, 2, 3), seed=3)
  layer.build(x.shape)
  layer.moving_mean.assign([1.0, -1.0, 0.5])
  layer.moving_variance.assign([4.0, 1.0, 0.25])
  layer.gamma.assign([2.0, 1.0, 1.0])
  layer.beta.assign([0.0, 1.0, -1.0])
  expected = (x - [1.0, -1.0, 0.5]) / np.sqrt(np.array([4.0, 1.0, 0.25]) + 1e-3) \
      * [2.0, 1.0, 1.0] + [0.0, 1.0, -1.0]
  np.testing.assert_allclose(layer(x, training=False).numpy(), expected, rtol=1e-5)
  np.testing.assert_array_equal(layer.moving_mean.numpy(), [1.0, -1.0, 0.5])


def test_moments_are_global_across_replicas():
  """Under 2 replicas the moments (and so the moving stats) are the global batch's."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  x = _x((4, 2, 2, 3), seed=4)
  with strategy.scope():
    layer = BatchNorm(decay=0.5, bessel=True)
    layer.build(x.shape)

  def step(xs):
    layer(xs, training=True)
    return batch_moments(xs, bessel=True)

  dist = strategy.experimental_distribute_values_from_function(
      lambda ctx: x[2 * ctx.replica_id_in_sync_group:2 * ctx.replica_id_in_sync_group + 2])
  results = strategy.run(tf.function(step), args=(dist,))
  mean, var, unbiased = (strategy.experimental_local_results(r)[0].numpy()
                         for r in results)
  np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(var, x.var(axis=(0, 1, 2)), rtol=1e-5)
  np.testing.assert_allclose(unbiased, x.var(axis=(0, 1, 2)) * 16 / 15, rtol=1e-5)
  np.testing.assert_allclose(layer.moving_variance.numpy(), 0.5 + 0.5 * unbiased,
                             rtol=1e-5)
