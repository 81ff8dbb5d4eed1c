"""sagan_tf.inference.bn_stats: standing statistics, batch mode, and what they leave alone."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.inference import bn_stats
from sagan_tf.config import from_preset
from sagan_tf.models.builder import build_models


def _generator(seed=0):
  tf.keras.utils.set_random_seed(seed)
  g, _ = build_models(from_preset("tiny"))
  return g


def _moving(g):
  return [w.numpy().copy() for layer in bn_stats.bn_layers(g)
          for w in (layer.moving_mean, layer.moving_variance)]


def test_finds_every_bn_layer():
  g = _generator()
  found = {id(layer) for layer in bn_stats.bn_layers(g)}
  # 32 px: three up blocks with two CBN each, then g_bn.
  expected = {id(getattr(getattr(g, f"g_block{i}"), c))
              for i in (1, 2, 3) for c in ("cbn_0", "cbn_1")} | {id(g.g_bn)}
  assert found == expected and len(bn_stats.bn_layers(g)) == 7


def test_standing_mean_of_first_cbn_is_the_average_of_its_batch_moments():
  g = _generator()
  passes, batch = 3, 5
  first = g.g_block1.cbn_0  # its input is g_snh0(z)
  first.group_size = 1  # tower BN of one example each: still the batch's moments
  bn_stats.compute_standing_statistics(g, passes=passes, batch_size=batch, seed=4)
  assert first.group_size == 1
  means, variances = [], []
  for z, _ in bn_stats.standing_inputs(g, passes, batch, seed=4):
    x = tf.reshape(g.g_snh0(tf.constant(z), update_u=False),
                   [batch, 4, 4, -1])
    m, v = tf.nn.moments(x, [0, 1, 2])
    means.append(m.numpy())
    variances.append(v.numpy())
  np.testing.assert_allclose(first.moving_mean.numpy().ravel(),
                             np.mean(means, 0), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(first.moving_variance.numpy().ravel(),
                             np.mean(variances, 0), rtol=1e-5, atol=1e-6)
  # The average differs from any single batch's moments.
  assert np.abs(np.mean(variances, 0) - variances[0]).max() > 1e-4


def test_one_standing_pass_reproduces_that_batch_in_training_mode():
  g = _generator()
  z, labels = next(bn_stats.standing_inputs(g, 1, 8, seed=2))
  with_batch = g(z, labels, training=True, update_u=False).numpy()
  g2 = _generator()
  bn_stats.compute_standing_statistics(g2, passes=1, batch_size=8, seed=2)
  standing = g2(z, labels, training=False, update_u=False).numpy()
  # Equal up to g_bn's Bessel-corrected variance (official) in the statistics.
  np.testing.assert_allclose(standing, with_batch, atol=2e-3)
  moving = _generator()(z, labels, training=False, update_u=False).numpy()
  assert np.abs(moving - with_batch).max() > 0.05  # the fresh moving stats differ


def test_standing_keeps_u_weights_and_decay_and_is_seeded():
  g = _generator()
  before = {w.path: w.numpy().copy() for w in g.weights}
  decays = [layer.decay for layer in bn_stats.bn_layers(g)]
  for layer in bn_stats.bn_layers(g):
    layer.group_size = 2  # tower BN: the passes still use the whole batch
  bn_stats.compute_standing_statistics(g, passes=2, batch_size=4, seed=1)
  changed = {p for p, w in ((w.path, w) for w in g.weights)
             if not np.array_equal(before[p], w.numpy())}
  assert changed and all("moving_" in p for p in changed), changed
  assert any(p.endswith("/u") or "/u" in p for p in before)  # u exists, unchanged
  assert [layer.decay for layer in bn_stats.bn_layers(g)] == decays
  assert all(layer.group_size == 2 for layer in bn_stats.bn_layers(g))
  first = _moving(g)
  bn_stats.compute_standing_statistics(g, passes=2, batch_size=4, seed=1)
  for a, b in zip(first, _moving(g)):
    np.testing.assert_array_equal(a, b)  # a function of the weights and seed
  bn_stats.compute_standing_statistics(g, passes=2, batch_size=4, seed=9)
  assert any(not np.array_equal(a, b) for a, b in zip(first, _moving(g)))


def test_batch_forward_uses_batch_moments_and_restores_the_moving_stats():
  g = _generator()
  z = tf.random.stateless_normal([6, g.z_dim], [1, 2])
  labels = tf.constant([0, 1, 2, 3, 4, 5])
  before = _moving(g)
  fn = tf.function(lambda z, y: bn_stats.batch_forward(g, z, y))
  images = fn(z, labels).numpy()
  for a, b in zip(before, _moving(g)):
    np.testing.assert_array_equal(a, b)
  expected = g(z, labels, training=True, update_u=False).numpy()
  np.testing.assert_allclose(images, expected, atol=1e-6)
  mode = bn_stats.BNStats("batch")
  np.testing.assert_allclose(bn_stats.draw(g, z, labels, mode), expected,
                             atol=1e-6)


def test_prepare_and_describe_per_mode():
  g = _generator()
  before = _moving(g)
  assert bn_stats.prepare(g, bn_stats.BNStats("moving")).describe() == {
      "mode": "moving"}
  for a, b in zip(before, _moving(g)):
    np.testing.assert_array_equal(a, b)
  info = bn_stats.prepare(g, bn_stats.BNStats("standing", passes=2,
                                              batch_size=3)).describe()
  assert info == dict(mode="standing", passes=2, batch_size=3, seed=0)
  assert any(not np.array_equal(a, b) for a, b in zip(before, _moving(g)))
  assert bn_stats.BNStats().mode == "standing"


def test_bad_mode_and_sizes_are_named():
  with pytest.raises(ValueError, match="bn_stats='running'"):
    bn_stats.BNStats("running")
  with pytest.raises(ValueError, match="passes"):
    bn_stats.BNStats("standing", passes=0)
