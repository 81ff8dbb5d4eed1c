"""Tower batch norm (``group_size`` / ``Config.bn_group_size``) against numpy.

Each group of N consecutive examples of the global batch is normalised with its own
moments, and the moving statistics take one update per group, in group order. The
expected values are computed independently in numpy (``_np_groups``), on one
device and on a 2-replica MirroredStrategy (groups inside a replica, one group per
replica, one group spanning both replicas).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf import tf_compat
from sagan_tf.models.builder import build_models
from sagan_tf.layers.bn_moments import check_group_size
from sagan_tf.layers.normalization import BatchNorm, ConditionalBatchNorm

C = 3


def _x(n=8, seed=0):
  rs = np.random.RandomState(seed)
  # Each example gets its own offset and scale, so groups differ clearly.
  return (rs.randn(n, 2, 2, C) * rs.uniform(0.5, 3, (n, 1, 1, 1))
          + rs.randn(n, 1, 1, 1) * 2).astype(np.float32)


def _np_groups(x, n_group):
  """Per-group (mean [G, C], biased var [G, C]) and per-example copies."""
  g = x.reshape(-1, n_group, *x.shape[1:])
  mean, var = g.mean(axis=(1, 2, 3)), g.var(axis=(1, 2, 3))
  return mean, var, np.repeat(mean, n_group, 0), np.repeat(var, n_group, 0)


def _np_sequential(value, stats, d):
  for s in stats:
    value = value * d + s * (1.0 - d)
  return value


def _cbn(group_size, decay=0.5):
  layer = ConditionalBatchNorm(3, decay=decay, epsilon=1e-5, group_size=group_size)
  layer.build((None, 2, 2, C))
  rs = np.random.RandomState(1)
  layer.gamma.assign(1.0 + rs.randn(3, C).astype(np.float32))
  layer.beta.assign(rs.randn(3, C).astype(np.float32))
  layer.moving_mean.assign(rs.randn(1, 1, 1, C).astype(np.float32))
  layer.moving_variance.assign(rs.uniform(0.5, 2, (1, 1, 1, C)).astype(np.float32))
  return layer


@pytest.mark.parametrize("group", [1, 2, 4, 8])
def test_cbn_groups_on_one_device(group):
  x, labels = _x(), np.array([0, 1, 2, 1, 0, 2, 2, 1])
  layer = _cbn(group, decay=0.5)
  mm0, mv0 = layer.moving_mean.numpy(), layer.moving_variance.numpy()
  out = layer(x, labels, training=True).numpy()
  mean, var, mean_ex, var_ex = _np_groups(x, group)
  g, b = layer.gamma.numpy()[labels], layer.beta.numpy()[labels]
  expected = ((x - mean_ex[:, None, None]) / np.sqrt(var_ex[:, None, None] + 1e-5)
              * g[:, None, None] + b[:, None, None])
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(layer.moving_mean.numpy(),
                             _np_sequential(mm0, mean[:, None, None], 0.5),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(layer.moving_variance.numpy(),
                             _np_sequential(mv0, var[:, None, None], 0.5),
                             rtol=1e-5, atol=1e-6)


def test_update_order_is_group_order():
  """Sequential updates in group order, not their mean: with decay 0.5 the last
  group weighs 0.5, the first 0.5**G."""
  x = _x()
  layer = BatchNorm(decay=0.5, bessel=False, group_size=2)
  layer.build(x.shape)
  layer(x, training=True)
  mean = _np_groups(x, 2)[0]
  weights = 0.5 ** np.arange(4, 0, -1)  # groups 0..3
  np.testing.assert_allclose(layer.moving_mean.numpy(), weights @ mean, rtol=1e-5,
                             atol=1e-6)
  assert np.abs(layer.moving_mean.numpy()
                - _np_sequential(np.zeros(C), mean[::-1], 0.5)).max() > 1e-3


@pytest.mark.parametrize("bessel", [True, False])
def test_g_bn_groups_bessel(bessel):
  x = _x(seed=3)
  layer = BatchNorm(decay=0.9, epsilon=1.001e-5, bessel=bessel, group_size=4)
  layer.build(x.shape)
  out = layer(x, training=True).numpy()
  mean, var, mean_ex, var_ex = _np_groups(x, 4)
  np.testing.assert_allclose(
      out, (x - mean_ex[:, None, None]) / np.sqrt(var_ex[:, None, None] + 1.001e-5),
      rtol=1e-5, atol=1e-5)
  count = 4 * 2 * 2
  update = var * count / (count - 1) if bessel else var
  np.testing.assert_allclose(layer.moving_variance.numpy(),
                             _np_sequential(np.ones(C), update, 0.9), rtol=1e-5)
  np.testing.assert_allclose(layer.moving_mean.numpy(),
                             _np_sequential(np.zeros(C), mean, 0.9), rtol=1e-5,
                             atol=1e-6)


def test_group_size_zero_is_the_whole_batch():
  x, labels = _x(seed=5), np.array([0, 1, 2, 1, 0, 2, 2, 1])
  whole, one_group = _cbn(0), _cbn(8)
  out = whole(x, labels, training=True).numpy()
  np.testing.assert_allclose(out, one_group(x, labels, training=True).numpy(),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(whole.moving_variance.numpy(),
                             one_group.moving_variance.numpy(), rtol=1e-6)
  mean = x.mean(axis=(0, 1, 2))
  np.testing.assert_allclose(whole.moving_mean.numpy()[0, 0, 0],
                             0.5 * _cbn(0).moving_mean.numpy()[0, 0, 0] + 0.5 * mean,
                             rtol=1e-5, atol=1e-6)


def _mirrored_run(group, x, decay=0.5):
  """BatchNorm(bessel) on 2 replicas of 4 examples; returns per-replica outputs,
  input gradients of sum(out * w), and both replicas' moving statistics."""
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  w = np.random.RandomState(9).randn(*x.shape).astype(np.float32)
  with strategy.scope():
    layer = BatchNorm(decay=decay, epsilon=1e-3, bessel=True, group_size=group)
    layer.build(x.shape)

  def step(xs, ws):
    with tf.GradientTape() as tape:
      tape.watch(xs)
      out = layer(xs, training=True)
      loss = tf.reduce_sum(out * ws)
    return out, tape.gradient(loss, xs)

  def per_replica(values):
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: values[4 * ctx.replica_id_in_sync_group:
                           4 * ctx.replica_id_in_sync_group + 4])
  out, grad = strategy.run(tf.function(step), args=(per_replica(x), per_replica(w)))
  cat = lambda r: np.concatenate(
      [v.numpy() for v in strategy.experimental_local_results(r)])
  stats = [[c.numpy() for c in var.value.values]  # one tf.Variable per replica
           for var in (layer.moving_mean, layer.moving_variance)]
  return cat(out), cat(grad), stats, w


def _one_device_grad(group, x, w):
  layer = BatchNorm(epsilon=1e-3, group_size=group)
  layer.build(x.shape)
  xt = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(xt)
    loss = tf.reduce_sum(layer(xt, training=True) * w)
  return tape.gradient(loss, xt).numpy()


@pytest.mark.parametrize("group", [2, 4, 8])  # in a replica, per replica, across
def test_groups_under_two_replicas(group):
  x = _x(seed=7)
  out, grad, (means, variances), w = _mirrored_run(group, x)
  mean, var, mean_ex, var_ex = _np_groups(x, group)
  np.testing.assert_allclose(
      out, (x - mean_ex[:, None, None]) / np.sqrt(var_ex[:, None, None] + 1e-3),
      rtol=1e-4, atol=1e-5)
  count = group * 4
  assert len(means) == len(variances) == 2
  for replica_mean, replica_var in zip(means, variances):
    np.testing.assert_allclose(replica_mean, _np_sequential(np.zeros(C), mean, 0.5),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        replica_var, _np_sequential(np.ones(C), var * count / (count - 1), 0.5),
        rtol=1e-5)
  np.testing.assert_array_equal(means[0], means[1])
  # Gradients: the same as one device normalising the same groups (for a group
  # spanning both replicas they flow through the cross-replica moments).
  np.testing.assert_allclose(grad, _one_device_grad(group, x, w), rtol=1e-4,
                             atol=1e-5)


def test_bad_group_sizes_raise_clear_errors():
  check_group_size(8, 4, 2)  # spans both replicas
  check_group_size(2, 4, 2)
  for group, n, r in ((3, 4, 2), (6, 4, 2), (16, 4, 2), (8, 4, 1)):
    with pytest.raises(ValueError, match=f"bn_group_size={group} does not fit a "
                       f"per-replica batch of {n} on {r} replica"):
      check_group_size(group, n, r)
  with pytest.raises(ValueError, match="bn_group_size=-1 must be >= 0"):
    check_group_size(-1, 4, 1)
  base = config_lib.from_preset("tiny")  # batch 4
  with pytest.raises(ValueError, match=r"Config.bn_group_size=3: must divide "
                     r"batch_size=4 \(or be 0\): set bn_group_size=0 \(statistics "
                     r"over the whole batch\) or set bn_group_size=2 \(a divisor of 4\)"):
    base.replace(bn_group_size=3)
  with pytest.raises(ValueError, match=r"set bn_group_size=4 \(a divisor of 4\)"):
    base.replace(bn_group_size=64)
  with pytest.raises(ValueError, match="Config.bn_group_size=-2: must be >= 0"):
    base.replace(bn_group_size=-2)


def test_config_reaches_every_generator_norm_layer():
  config = config_lib.from_preset("tiny").replace(bn_group_size=2)
  g, _ = build_models(config)
  norms = [l for l in tf_compat.sublayers(g)
           if isinstance(l, (BatchNorm, ConditionalBatchNorm))]
  assert len(norms) == 2 * len(g.block_names) + 1
  assert {l.group_size for l in norms} == {2}
  assert config_lib.from_preset("imagenet128").bn_group_size == 64


def test_xla_and_bfloat16():
  x = tf.cast(_x(), tf.bfloat16)
  labels = tf.constant([0, 1, 2, 1, 0, 2, 2, 1])
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    eager_layer, xla_layer = _cbn(4), _cbn(4)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  eager = eager_layer(x, labels, training=True)
  xla = tf.function(lambda a, b: xla_layer(a, b, training=True),
                    jit_compile=True)(x, labels)
  assert eager.dtype == tf.bfloat16 and xla_layer.moving_mean.dtype == tf.float32
  np.testing.assert_allclose(tf.cast(xla, tf.float32).numpy(),
                             tf.cast(eager, tf.float32).numpy(), atol=2e-2)
  np.testing.assert_allclose(xla_layer.moving_variance.numpy(),
                             eager_layer.moving_variance.numpy(), rtol=1e-5)
  mean = _np_groups(tf.cast(x, tf.float32).numpy(), 4)[0]
  np.testing.assert_allclose(
      xla_layer.moving_mean.numpy(),
      _np_sequential(_cbn(4).moving_mean.numpy(), mean[:, None, None], 0.5),
      rtol=1e-5, atol=1e-6)


def test_a_sample_grid_the_group_does_not_divide_ends_with_a_smaller_group():
  """One replica, 8 examples, groups of 3: groups 3, 3, 2 (e.g. a sample grid)."""
  x = _x(seed=11)
  layer = BatchNorm(decay=0.5, bessel=True, group_size=3)
  layer.build(x.shape)
  out = layer(x, training=True).numpy()
  parts = np.split(x, [3, 6])
  mean_ex = np.concatenate([np.repeat(p.mean(axis=(0, 1, 2))[None], len(p), 0)
                            for p in parts])
  var_ex = np.concatenate([np.repeat(p.var(axis=(0, 1, 2))[None], len(p), 0)
                           for p in parts])
  np.testing.assert_allclose(
      out, (x - mean_ex[:, None, None]) / np.sqrt(var_ex[:, None, None] + 1.001e-5),
      rtol=1e-5, atol=1e-5)
  unbiased = [p.var(axis=(0, 1, 2)) * p[..., 0].size / (p[..., 0].size - 1)
              for p in parts]
  np.testing.assert_allclose(layer.moving_variance.numpy(),
                             _np_sequential(np.ones(C), unbiased, 0.5), rtol=1e-5)
