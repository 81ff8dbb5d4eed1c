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


def test_parse_and_default_queries():
  assert am.parse_queries("3,4; 20,27;") == [(3, 4), (20, 27)]
  assert am.parse_queries("") is None and am.parse_queries(None) is None
  with pytest.raises(ValueError, match="y,x"):
    am.parse_queries("3,4,5")
  assert am.default_queries(32) == [(8, 8), (8, 24), (24, 8), (24, 24)]


def test_sample_cli_writes_attention_figure(tmp_path):
  import subprocess
  import sys
  from eval import sampling
  from sagan_tf import checkpoint as ckpt_lib
  from sagan_tf.config import from_preset
  from sagan_tf.models import build_models
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = from_preset("tiny")
  g, d = build_models(config)
  ema, _ = build_models(config)  # other weights: the figure must use these
  ema.g_non_local.sigma_ratio.assign(0.3)
  workdir = str(tmp_path / "run")
  ckpt_lib.save_models(workdir, config, g, d, step=2, ema_generator=ema)
  path = str(tmp_path / "attn.png")
  proc = subprocess.run(
      [sys.executable, "-m", "launch.sample", f"--workdir={workdir}", "--num=3",
       "--classes=4,7", "--seed=5", "--queries=2,3;30,17",
       f"--attention_maps={path}"],
      cwd=repo, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  fig = np.asarray(Image.open(path).convert("RGB"))
  # 3 samples x 1 attention block (16x16), 1 + 2 queries, 128 px panels, 4 px gaps.
  assert fig.shape == (3 * 132 - 4, 3 * 132 - 4, 3)
  z, labels = sampling.NoiseAndLabels(16, 10, seed=5, classes=[4, 7],
                                      num=3).take(3)
  np.testing.assert_array_equal(labels, [4, 4, 7])
  images, maps = am.attention_maps(ema, z, labels, [(2, 3), (30, 17)],
                                   return_images=True)
  want = am.render_attention_figure(images, maps, [(2, 3), (30, 17)])
  assert np.abs(fig.astype(int) - want.astype(int)).mean() < 0.5
