"""sagan_tf.models.discriminator: shapes per size, official parameter count, projection, u."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.models.discriminator import Discriminator


def _count(variables):
  return int(sum(np.prod(v.shape) for v in variables))


def _images(size, n=2, seed=0):
  return tf.random.stateless_uniform([n, size, size, 3], seed=[seed, 1],
                                     minval=-1.0, maxval=1.0)


@pytest.mark.parametrize("size,blocks,attention", [
    (32, 4, 16), (64, 5, 32), (128, 6, 32)])
def test_shapes_at_every_size(size, blocks, attention):
  # The attention input (4df at 32 px, df at 64, 2df at 128) needs 8 | channels.
  df = {32: 2, 64: 8, 128: 4}[size]
  d = Discriminator(image_size=size, df_dim=df, num_classes=5)
  logits, maps = d(_images(size), tf.constant([0, 4]), training=True,
                   return_attention=True)
  assert logits.shape == (2,) and logits.dtype == tf.float32
  assert d.block_names == ["d_optimized_block1"] + [
      f"d_block{i}" for i in range(2, blocks + 1)]
  assert list(maps) == [attention]
  assert maps[attention].shape == (2, attention ** 2, attention ** 2 // 4)
  last = getattr(d, d.block_names[-1])
  # The last block keeps the resolution; it only needs a shortcut conv where it
  # widens (8df -> 16df at 64 px), as the official block.
  assert not last.downsample
  assert hasattr(last, "sn_conv3") == (size == 64)


def test_official_full_size_parameter_count():
  d = Discriminator(image_size=128, df_dim=64, num_classes=1000)
  d.build_variables()
  assert _count(d.trainable_weights) == 39_463_618
  assert _count(d.non_trainable_weights) == 9_225  # the u vectors
  assert len(d.weights) == 65  # as the official checkpoint's D variables


@pytest.fixture(scope="module")
def d32():
  return Discriminator(image_size=32, df_dim=2, num_classes=5).build_variables()


def test_projection_head(d32):
  """logits = linear(h) + <h, embedding[y]>: zero embeddings remove the label."""
  x = _images(32, seed=3)
  saved = d32.d_embedding.embeddings.numpy()
  try:
    d32.d_embedding.embeddings.assign(np.zeros_like(saved))
    a = d32(x, tf.constant([0, 1]), update_u=False).numpy()
    b = d32(x, tf.constant([4, 2]), update_u=False).numpy()
    np.testing.assert_array_equal(a, b)
  finally:
    d32.d_embedding.embeddings.assign(saved)
  a = d32(x, tf.constant([0, 1]), update_u=False).numpy()
  b = d32(x, tf.constant([4, 2]), update_u=False).numpy()
  assert np.abs(a - b).min() > 1e-6


def test_update_u_follows_training_unless_given(d32):
  x, y = _images(32, seed=5), tf.constant([1, 2])
  layers = [d32.d_optimized_block1.sn_conv1, d32.d_sn_linear, d32.d_embedding]
  snapshot = lambda: [layer.u.numpy() for layer in layers]
  before = snapshot()
  d32(x, y, training=False)
  assert all(np.array_equal(a, b) for a, b in zip(snapshot(), before))
  d32(x, y, training=True, update_u=False)  # the official fake pass ('NO_OPS')
  assert all(np.array_equal(a, b) for a, b in zip(snapshot(), before))
  d32(x, y, training=True)
  assert all(not np.array_equal(a, b) for a, b in zip(snapshot(), before))


def test_variants_set_the_fake_pass_update():
  assert not Discriminator(image_size=32, df_dim=2, num_classes=3
                           ).variant.d_update_u_on_fake
  assert Discriminator(image_size=32, df_dim=2, num_classes=3,
                       variant="tfgan_estimator").variant.d_update_u_on_fake
  with pytest.raises(ValueError, match="not block outputs"):
    Discriminator(image_size=32, df_dim=2, num_classes=3, attention=(32,))


def test_attention_follows_the_first_block_at_its_resolution():
  # At 32 px, d_block2, d_block3 and d_block4 all output 8x8: one attention,
  # after the first of them.
  d = Discriminator(32, df_dim=2, num_classes=3, attention=(8, 16))
  assert [(r, layer.name) for r, layer in d.attention_layers] == [
      (16, "d_non_local_16"), (8, "d_non_local_8")]
  after = d._attention_after  # pylint: disable=protected-access
  assert {k: tuple(v) for k, v in after.items()} == {
      "d_optimized_block1": ("d_non_local_16", 16),
      "d_block2": ("d_non_local_8", 8)}
  logits, maps = d(_images(32), tf.constant([0, 2]), return_attention=True)
  assert logits.shape == (2,) and sorted(maps) == [8, 16]
  with pytest.raises(ValueError, match=r"Discriminator attention resolutions \[2\]"):
    Discriminator(32, df_dim=2, num_classes=3, attention=(2,))
