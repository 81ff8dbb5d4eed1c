"""sagan_tf.models.generator: shapes per size, official parameter count, u/BN semantics."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.models.generator import Generator, upsample2x


def _count(variables):
  return int(sum(np.prod(v.shape) for v in variables))


@pytest.fixture(scope="module")
def g32():
  return Generator(image_size=32, gf_dim=2, num_classes=5, z_dim=8).build_variables()


def _inputs(g, n=2):
  z = tf.random.stateless_normal([n, g.z_dim], seed=[0, 1])
  return z, tf.constant([1, 3][:n])


def test_upsample2x_equals_nearest_resize():
  x = tf.random.stateless_normal([2, 3, 5, 4], seed=[2, 3])
  up = upsample2x(x).numpy()
  np.testing.assert_array_equal(up, tf.image.resize(x, [6, 10], "nearest").numpy())
  # The official op (legacy pixel mapping, align_corners=False).
  np.testing.assert_array_equal(
      up, tf.compat.v1.image.resize_nearest_neighbor(x, [6, 10]).numpy())


@pytest.mark.parametrize("size,blocks,attention", [
    (32, 3, 16), (64, 4, 32), (128, 5, 32)])
def test_shapes_at_every_size(size, blocks, attention):
  g = Generator(image_size=size, gf_dim=2, num_classes=5, z_dim=8)
  z, y = _inputs(g)
  images, maps = g(z, y, training=True, return_attention=True)
  assert images.shape == (2, size, size, 3) and images.dtype == tf.float32
  assert np.abs(images.numpy()).max() <= 1.0
  assert g.block_names == [f"g_block{i}" for i in range(1, blocks + 1)]
  assert list(maps) == [attention]
  assert maps[attention].shape == (2, attention ** 2, attention ** 2 // 4)


def test_attention_elsewhere_and_bad_resolution():
  g = Generator(image_size=128, gf_dim=2, num_classes=3, z_dim=4, attention=(64,))
  assert [r for r, _ in g.attention_layers] == [64]
  assert g._attention_after == {"g_block4": ("g_non_local", 64)}
  assert Generator(image_size=32, gf_dim=2, num_classes=3, attention=()
                   ).attention_layers == []
  with pytest.raises(ValueError, match="not block outputs"):
    Generator(image_size=64, gf_dim=2, num_classes=3, attention=(128,))


def test_official_full_size_parameter_count():
  g = Generator(image_size=128, gf_dim=64, num_classes=1000, z_dim=128)
  g.build_variables()
  assert _count(g.trainable_weights) == 42_078_852
  assert _count(g.non_trainable_weights) == 32_771  # u and BN moving statistics
  assert len(g.weights) == 104  # as the official checkpoint's G variables


def test_official_updates_u_at_inference_tfgan_does_not(g32):
  tfgan = Generator(image_size=32, gf_dim=2, num_classes=5, z_dim=8,
                    variant="tfgan_estimator").build_variables()
  for g, writes in ((g32, True), (tfgan, False)):
    z, y = _inputs(g)
    u = g.g_snh0.u.numpy()
    g(z, y, training=False)
    assert (not np.array_equal(g.g_snh0.u.numpy(), u)) == writes, g.variant
    u = g.g_snh0.u.numpy()
    g(z, y, training=True)
    assert not np.array_equal(g.g_snh0.u.numpy(), u)
    u = g.g_snh0.u.numpy()
    g(z, y, training=True, update_u=False)
    np.testing.assert_array_equal(g.g_snh0.u.numpy(), u)


def test_bn_statistics_move_only_in_training(g32):
  g = g32
  z, y = _inputs(g)
  stats = [v for v in g.non_trainable_weights if "moving" in v.path]
  assert len(stats) == 2 * 2 * 3 + 2  # two CBN per block, plus g_bn
  before = [v.numpy() for v in stats]
  g(z, y, training=False)
  assert all(np.array_equal(v.numpy(), b) for v, b in zip(stats, before))
  g(z, y, training=True)
  assert all(not np.array_equal(v.numpy(), b) for v, b in zip(stats, before))


def test_labels_condition_the_output(g32):
  g = g32
  cbn = g.g_block1.cbn_0
  cbn.gamma.assign(np.random.RandomState(0).uniform(0.5, 1.5, cbn.gamma.shape))
  z = tf.tile(tf.random.stateless_normal([1, 8], seed=[4, 5]), [2, 1])
  out = g(z, tf.constant([0, 4]), training=False, update_u=False).numpy()
  assert np.abs(out[0] - out[1]).max() > 1e-4
