"""sagan_tf.inference.grids: truncation trick, latent and class interpolation; CBN class mixtures;
launch.sample --grid (subprocess) on a tiny workdir."""
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sagan_tf.inference import grids
from sagan_tf.inference import sample_files
from sagan_tf.inference.bn_stats import BNStats
from sagan_tf.inference import sampling
from sagan_tf.run import state as state_lib
from sagan_tf.config import from_preset
from sagan_tf.models.builder import build_models
from sagan_tf.layers.normalization import ConditionalBatchNorm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """(path, G): a tiny workdir whose CBN gamma/beta differ between classes."""
  config = from_preset("tiny")
  g, d = build_models(config)
  rs = np.random.RandomState(0)
  for w in g.trainable_weights:  # fresh CBNs are class-blind (ones, zeros)
    if "cbn" in w.path and w.path.endswith(("gamma", "beta")):
      w.assign(w.numpy() + 0.5 * rs.randn(*w.shape).astype(np.float32))
  path = str(tmp_path_factory.mktemp("grids") / "run")
  state_lib.save_models(path, config, g, d, step=2)
  return path, g


def test_truncation_bounds_determinism_and_only_outliers_change():
  rng = np.random.default_rng(0)
  z = rng.standard_normal((64, 32), dtype=np.float32)
  a = grids.truncate(z, 0.5, grids.truncation_rng(3))
  b = grids.truncate(z, 0.5, grids.truncation_rng(3))
  c = grids.truncate(z, 0.5, grids.truncation_rng(4))
  inside = np.abs(z) <= 0.5
  assert np.abs(a).max() <= 0.5
  np.testing.assert_array_equal(a, b)  # deterministic given the seed
  np.testing.assert_array_equal(a[inside], z[inside])  # inside entries kept
  assert (a[~inside] != z[~inside]).all()  # every outlier redrawn
  assert np.abs(a[~inside] - c[~inside]).max() > 0.1  # from the seed's stream
  # Redraws follow N(0, 1) truncated to [-0.5, 0.5]: nearly flat there, so the
  # mean |z| is close to 0.25 (0.245), not that of an untruncated draw (0.80).
  assert abs(np.abs(a[~inside]).mean() - 0.245) < 0.02
  np.testing.assert_array_equal(grids.truncate(z, None, None), z)
  np.testing.assert_array_equal(grids.truncate(z, 0, None), z)
  with pytest.raises(ValueError, match="must be > 0"):
    grids.truncate(z, -1.0, None)


def _cbn():
  layer = ConditionalBatchNorm(4)
  layer.build((None, 3, 3, 5))
  rs = np.random.RandomState(1)
  layer.gamma.assign(1.0 + rs.randn(4, 5).astype(np.float32))
  layer.beta.assign(rs.randn(4, 5).astype(np.float32))
  layer.moving_mean.assign(rs.randn(1, 1, 1, 5).astype(np.float32))
  layer.moving_variance.assign(rs.uniform(0.5, 2, (1, 1, 1, 5)).astype(np.float32))
  return layer


def test_cbn_mixture_weights_average_the_class_parameters():
  layer = _cbn()
  x = np.random.RandomState(2).randn(3, 3, 3, 5).astype(np.float32)
  g, b = layer.gamma.numpy(), layer.beta.numpy()
  mm, mv = layer.moving_mean.numpy(), layer.moving_variance.numpy()
  weights = np.zeros((3, 4), np.float32)
  weights[:, 1] = weights[:, 3] = 0.5  # halfway between classes 1 and 3
  weights[2] = [0.0, 0.0, 1.0, 0.0]  # one-hot class 2
  out = layer(x, weights, training=False).numpy()
  gamma, beta = (g[1] + g[3]) / 2, (b[1] + b[3]) / 2
  for i in range(2):
    want = (x[i] - mm[0]) / np.sqrt(mv[0] + 1e-5) * gamma + beta
    np.testing.assert_allclose(out[i], want, rtol=1e-5, atol=1e-5)
  # One-hot weights give exactly the int labels' output.
  np.testing.assert_array_equal(
      out[2], layer(x[2:], np.array([2]), training=False).numpy()[0])
  with pytest.raises(ValueError, match="mixture weights have 3 columns"):
    layer(x, np.ones((3, 3), np.float32), training=False)


def test_latent_interpolation_ends_are_the_plain_samples(workdir):
  _, g = workdir
  grid = grids.latent_interpolation(g, rows=2, steps=3, seed=5, classes=[4, 7],
                                    truncation=1.0, batch_size=4)
  assert grid.images.shape == (6, 32, 32, 3) and (grid.rows, grid.cols) == (2, 3)
  np.testing.assert_array_equal(grid.labels, [4, 4, 4, 7, 7, 7])
  z = grids.truncate(sampling.NoiseAndLabels(g.z_dim, g.num_classes, 5).take(4)[0],
                     1.0, grids.truncation_rng(5))
  ends = grids.run_generator(g, z, np.array([4, 4, 7, 7]), batch_size=4)
  images = grid.images.reshape(2, 3, 32, 32, 3)
  np.testing.assert_allclose(images[:, 0], ends[0::2], atol=1e-6)
  np.testing.assert_allclose(images[:, 2], ends[1::2], atol=1e-6)
  np.testing.assert_allclose(grid.z[1], (z[0] + z[1]) / 2, atol=1e-6)
  assert np.abs(images[:, 1] - images[:, 0]).max() > 1e-3  # the middle moves


def test_class_interpolation_ends_are_the_class_samples(workdir):
  _, g = workdir
  grid = grids.class_interpolation(g, [(1, 3), (2, 0)], steps=3, seed=2)
  assert grid.images.shape == (6, 32, 32, 3) and grid.labels is None
  z = sampling.NoiseAndLabels(g.z_dim, g.num_classes, 2).take(2)[0]
  np.testing.assert_array_equal(grid.z, np.repeat(z, 3, axis=0))
  plain = grids.run_generator(g, np.repeat(z, 2, axis=0), np.array([1, 3, 2, 0]))
  images = grid.images.reshape(2, 3, 32, 32, 3)
  np.testing.assert_allclose(images[:, 0], plain[0::2], atol=1e-6)
  np.testing.assert_allclose(images[:, 2], plain[1::2], atol=1e-6)
  eye = np.eye(g.num_classes)
  np.testing.assert_array_equal(grid.class_weights[1], (eye[1] + eye[3]) / 2)
  mid = images[:, 1]
  assert min(np.abs(mid - plain[0::2]).max(), np.abs(mid - plain[1::2]).max()) > 1e-3
  with pytest.raises(ValueError, match="outside"):
    grids.class_interpolation(g, [(1, g.num_classes)], steps=3)


def test_sample_grid_without_truncation_is_eval_sampling(workdir):
  _, g = workdir
  grid = grids.sample_grid(g, 5, seed=1, classes=[4], batch_size=2)
  want, labels = sampling.generate(g, 5, seed=1, classes=[4], batch_size=5)
  np.testing.assert_allclose(grid.images, want, atol=1e-5)
  np.testing.assert_array_equal(grid.labels, labels)
  assert grids.parse_pairs(" 3,7; 1,2") == ((3, 7), (1, 2))
  with pytest.raises(ValueError, match="not a class pair"):
    grids.parse_pairs("3,7,1")


@pytest.mark.parametrize("args,shape", [
    (["--grid=latent_interp", "--interp_rows=2", "--interp_steps=3"], (2, 3)),
    (["--grid=class_interp", "--interp_classes=1,3;2,0", "--interp_steps=4"],
     (2, 4)),
    (["--truncation=0.7", "--num=5"], (2, 3)),
])
def test_cli_grids(workdir, tmp_path, args, shape):
  path, _ = workdir
  png, npz = str(tmp_path / "grid.png"), str(tmp_path / "out" / "g.npz")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  proc = subprocess.run(
      [sys.executable, "-m", "launch.sample", f"--workdir={path}", "--seed=3",
       f"--png={png}", f"--npz={npz}"] + args, cwd=REPO, env=env,
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows, cols = shape
  assert Image.open(png).size == (cols * 33 - 1, rows * 33 - 1)
  with np.load(npz) as f:
    n = f["images"].shape[0]
    assert f["images"].dtype == np.uint8 and f["z"].shape[0] == n
    if "truncation" in args[0]:
      assert n == 5 and np.abs(f["z"]).max() <= 0.7


def test_combinations_that_would_be_ignored_are_refused(tmp_path):
  """Grids and attention figures are drawn at inference and attention figures
  untruncated: with bn_stats=batch or truncation they are refused before any
  checkpoint is read (one line), not drawn with other statistics."""
  batch = BNStats("batch")
  png = str(tmp_path / "x.png")
  refused = [
      (dict(png=png, grid="latent_interp"), batch,
       "bn_stats=batch cannot be combined with grid='latent_interp'"),
      (dict(npz=png, truncation=0.5), batch,
       "bn_stats=batch cannot be combined with grid='samples' and truncation"),
      (dict(attention_maps=png), batch, "cannot honour bn_stats=batch or truncation"),
      (dict(attention_maps=png, truncation=0.5), None,
       "cannot honour bn_stats=batch or truncation"),
  ]
  for fields, bn, message in refused:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
      sample_files.write_samples(str(tmp_path / "no_workdir"),
                                 sample_files.SampleRequest(**fields), bn_stats=bn)
    assert "\n" not in str(info.value)
  # What is honoured passes the check: plain samples under batch statistics, a
  # truncated grid under standing ones.
  sample_files.SampleRequest(png=png).check("batch")
  sample_files.SampleRequest(png=png, truncation=0.5).check("standing")
  with pytest.raises(FileNotFoundError):  # past the check: no workdir
    sample_files.write_samples(str(tmp_path / "no_workdir"),
                               sample_files.SampleRequest(png=png), bn_stats=batch)
