"""Tests for sagan_tf.inference.attention_maps: query mapping, normalisation, figures."""
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from sagan_tf.inference import attention_maps as am
from sagan_tf.models.generator import Generator


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
  # 2 samples x 2 resolutions rows, 1 + 2 queries columns, 64 px panels, below
  # 20 px of column titles and beside 18 px of row labels.
  assert fig.shape == (20 + 4 * 66, 18 + 3 * 66, 3) and fig.dtype == np.uint8
  with Image.open(path) as png:
    assert png.size == (fig.shape[1], fig.shape[0])
    np.testing.assert_array_equal(np.asarray(png.convert("RGB")), fig)
  # Overlays differ from the plain image panel.
  assert not np.array_equal(fig[20:84, 84:148], fig[20:84, 18:82])

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


def test_heat_map_sits_where_the_attention_is_and_marks_the_query():
  """One hot key cell, (2, 5) of the 8x8 keys of a 16x16 block: image pixels
  (8..11, 20..23) of 32, panel pixels (16..23, 40..47) at 64 px."""
  maps = np.zeros([1, 1, 8, 8], np.float32)
  maps[0, 0, 2, 5] = 1.0
  queries = [(28, 4)]
  fig = am.render_attention_figure(np.zeros([1, 32, 32, 3], np.float32),
                                   {16: maps}, queries, panel_size=64, pad=2)
  overlay = fig[20:84, 84:148].astype(np.float32)
  red_minus_blue = overlay[..., 0] - overlay[..., 2]
  hot = np.zeros([64, 64], bool)
  hot[16:24, 40:48] = True
  assert red_minus_blue[hot].mean() - red_minus_blue[~hot].mean() > 60
  # The query's marker (the first colour, green) at its pixel in both panels.
  for panel in (fig[20:84, 18:82], fig[20:84, 84:148]):
    r, g, b = panel[2 * 28 + 1, 2 * 4 + 1].astype(int)
    assert g > 200 and r < 80 and b < 80, (r, g, b)


def test_parse_and_default_queries():
  assert am.parse_queries("3,4; 20,27;") == [(3, 4), (20, 27)]
  assert am.parse_queries("") is None and am.parse_queries(None) is None
  with pytest.raises(ValueError, match="y,x"):
    am.parse_queries("3,4,5")
  assert am.default_queries(32) == [(8, 8), (8, 24), (24, 8), (24, 24)]


def numpy_attention_maps(generator, z, labels, queries):
  """Independent of attention_maps: captures the input of the generator's one
  attention block, applies the block's own 1x1 projections (kernel / sigma) and
  the softmax in numpy, and reads the query rows (keys: the 2x2-max-pooled grid,
  row-major).

  Returns:
    (images `[N, S, S, 3]`, maps `[N, Q, r/2, r/2]`) of the block at resolution r.
  """
  inputs = []
  attend = generator._attend  # pylint: disable=protected-access

  def recording_attend(block_name, x, update_u, maps):
    if block_name in generator._attention_after:  # pylint: disable=protected-access
      inputs.append(x.numpy().astype(np.float64))
    return attend(block_name, x, update_u, maps)
  generator._attend = recording_attend  # pylint: disable=protected-access
  try:
    images = generator(tf.constant(z), tf.constant(labels), training=False,
                       update_u=False).numpy()
  finally:
    del generator._attend  # pylint: disable=protected-access
  ((_, layer),) = generator.attention_layers
  (x,) = inputs
  n, r, _, c = x.shape
  k, s = r // 2, images.shape[1]

  def project(conv):  # 1x1 conv without bias, W / sigma
    w = conv.kernel.numpy().reshape(c, -1) / float(conv.sigma().numpy())
    return x @ w  # [N, r, r, C']

  def pool(t):  # 2x2 max pooling
    return t.reshape(n, k, 2, k, 2, -1).max(axis=(2, 4)).reshape(n, k * k, -1)

  theta = project(layer.theta).reshape(n, r * r, -1)
  logits = theta @ pool(project(layer.phi)).transpose(0, 2, 1)  # [N, r*r, k*k]
  attn = np.exp(logits - logits.max(-1, keepdims=True))
  attn /= attn.sum(-1, keepdims=True)
  rows = [(y * r // s) * r + (x_ * r // s) for y, x_ in queries]
  return images, attn[:, rows].reshape(n, len(queries), k, k)


def test_sample_cli_writes_attention_figure(tmp_path):
  import subprocess
  import sys
  from sagan_tf.inference import sampling
  from sagan_tf.run import state as state_lib
  from sagan_tf.config import from_preset
  from sagan_tf.images import to_uint8
  from sagan_tf.models.builder import build_models
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = from_preset("tiny")
  g, d = build_models(config)
  ema, _ = build_models(config)  # other weights: the figure must use these
  ema.g_non_local.sigma_ratio.assign(0.3)
  workdir = str(tmp_path / "run")
  state_lib.save_models(workdir, config, g, d, step=2, ema_generator=ema)
  path = str(tmp_path / "attn.png")
  queries = [(2, 3), (30, 17)]
  proc = subprocess.run(
      [sys.executable, "-m", "launch.sample", f"--workdir={workdir}", "--num=3",
       "--classes=4,7", "--seed=5", "--queries=2,3;30,17",
       f"--attention_maps={path}", "--bn_stats=moving"],
      cwd=repo, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  fig = np.asarray(Image.open(path).convert("RGB"))
  z, labels = sampling.NoiseAndLabels(16, 10, seed=5, classes=[4, 7],
                                      num=3).take(3)
  np.testing.assert_array_equal(labels, [4, 4, 7])
  images, maps = numpy_attention_maps(ema, z, labels, queries)
  assert maps.shape == (3, 2, 8, 8)
  # A row per sample (one attention block, 16x16), a column for the image and one
  # per query, 128 px panels, 4 px gaps, 20 px of titles and 18 px of labels.
  p, gap = 128, 4
  assert fig.shape == (20 + 3 * (p + gap), 18 + 3 * (p + gap), 3)
  # The same figure as the one drawn from the numpy maps of the EMA generator
  # (within the rounding of float maps and uint8 images), far from the one of
  # the live generator's maps.
  want = am.render_attention_figure(images, {16: maps}, queries)
  diff = np.abs(fig.astype(int) - want.astype(int))
  assert diff.mean() < 0.05 and np.percentile(diff, 99.9) <= 2, (
      diff.mean(), np.percentile(diff, 99.9))
  live_images, live_maps = numpy_attention_maps(g, z, labels, queries)
  live = am.render_attention_figure(live_images, {16: live_maps}, queries)
  assert np.abs(fig.astype(int) - live.astype(int)).mean() > 10 * diff.mean() + 1
