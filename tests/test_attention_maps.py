"""Tests for sagan_tf.attention_maps: query mapping, normalisation, figures."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf import attention_maps as am
from sagan_tf.generator import Generator


@pytest.fixture(scope="module")
def generator():
  g = Generator(image_size=32, gf_dim=2, num_classes=3, z_dim=8,
                attention=(8, 16)).build_variables()
  # Open the attention gates, as after training.
  for _, layer in g.attention_layers:
    layer.sigma_ratio.assign(0.5)
  return g


def test_query_position():
  assert am.query_position((0, 0), 32, 16) == (0, 0)
  assert am.query_position((31, 5), 32, 16) == (15, 2)
  assert am.query_position((17, 30), 128, 32) == (4, 7)
  with pytest.raises(ValueError, match="outside"):
    am.query_position((32, 0), 32, 16)


def test_select_queries_picks_rows_row_major():
  r, k, n = 8, 4, 2
  attn = np.random.default_rng(0).random((n, r * r, k * k)).astype(np.float32)
  maps = am.select_queries(attn, r, 32, [(0, 0), (31, 5), (12, 20)])
  assert maps.shape == (n, 3, k, k)
  # (31, 5) -> block (7, 1) -> row 57; (12, 20) -> block (3, 5) -> row 29.
  for j, row in enumerate([0, 57, 29]):
    np.testing.assert_array_equal(maps[:, j], attn[:, row].reshape(n, k, k))
  # Key layout: column c of the row is pooled position (c // k, c % k).
  np.testing.assert_array_equal(maps[1, 1, 2, 3], attn[1, 57, 2 * k + 3])


def test_maps_sum_to_one_and_state_untouched(generator):
  z = tf.random.stateless_normal([2, 8], seed=[1, 2])
  labels = tf.constant([0, 2])
  before = [w.numpy() for w in generator.weights]
  queries = [(3, 4), (20, 27), (31, 0)]
  images, maps = am.attention_maps(generator, z, labels, queries,
                                   return_images=True)
  assert images.shape == (2, 32, 32, 3)
  assert sorted(maps) == [8, 16]
  assert maps[8].shape == (2, 3, 4, 4) and maps[16].shape == (2, 3, 8, 8)
  for m in maps.values():
    assert m.dtype == np.float32 and (m >= 0).all()
    np.testing.assert_allclose(m.sum(axis=(2, 3)), 1.0, atol=1e-5)
  up = am.upsample_maps(maps[16], 32)
  assert up.shape == (2, 3, 32, 32)
  np.testing.assert_allclose(up.sum(axis=(2, 3)), 1.0, atol=1e-5)
  for a, b in zip(before, generator.weights):
    np.testing.assert_array_equal(a, b.numpy())


def test_render_png_and_summary(generator, tmp_path):
  queries = [(5, 5), (25, 10)]
  images, maps = am.attention_maps(generator, tf.zeros([2, 8]), [1, 1], queries,
                                   return_images=True)
  path = str(tmp_path / "attn.png")
  fig = am.render_attention_figure(images, maps, queries, path=path,
                                   panel_size=64, pad=2)
  # 2 samples x 2 resolutions rows, 1 + 2 queries columns, 64 px panels.
  assert fig.shape == (4 * 66 - 2, 3 * 66 - 2, 3) and fig.dtype == np.uint8
  with Image.open(path) as png:
    assert png.size == (fig.shape[1], fig.shape[0])
    np.testing.assert_array_equal(np.asarray(png.convert("RGB")), fig)
  # Overlays differ from the plain image panel.
  assert not np.array_equal(fig[:64, 66:130], fig[:64, :64])

  logdir = str(tmp_path / "tb")
  writer = tf.summary.create_file_writer(logdir)
  with writer.as_default():
    am.attention_summary(images, maps, queries, step=3, panel_size=32)
  writer.flush()
  tags = []
  for f in glob.glob(os.path.join(logdir, "events.*")):
    for rec in tf.data.TFRecordDataset(f):
      event = tf.compat.v1.Event.FromString(rec.numpy())
      tags += [(v.tag, event.step) for v in event.summary.value]
  assert ("attention_maps", 3) in tags
