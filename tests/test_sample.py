"""launch.sample (subprocess) and sagan_tf.inference.sampling: PNG and .npz from a tiny workdir."""
import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sagan_tf.inference import sampling
from sagan_tf.run import state as state_lib
from sagan_tf.config import from_preset
from sagan_tf.images import to_uint8
from sagan_tf.models.builder import build_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """(path, live G, EMA G): a tiny workdir whose EMA generator differs."""
  config = from_preset("tiny")
  g, d = build_models(config)
  ema, _ = build_models(config)  # other random weights
  # As after training: open attention gates (fresh ones are 0, so the attention
  # would add nothing and a bug in it could not show) and BN moving statistics
  # away from their initial 0 and 1.
  rng = np.random.default_rng(0)
  for model in (g, ema):
    for w in model.weights:
      if w.name == "sigma_ratio":
        w.assign(0.7)
      elif w.name == "moving_mean":
        w.assign(rng.normal(0.0, 0.3, w.shape))
      elif w.name == "moving_variance":
        w.assign(rng.uniform(0.5, 2.0, w.shape))
  path = str(tmp_path_factory.mktemp("sample") / "run")
  state_lib.save_models(path, config, g, d, step=4, ema_generator=ema)
  return path, g, ema


def test_noise_and_labels_do_not_depend_on_batch_size():
  a = sampling.NoiseAndLabels(16, 10, seed=5)
  b = sampling.NoiseAndLabels(16, 10, seed=5)
  za, la = zip(*a.batches(11, 3))
  zb, lb = zip(*b.batches(11, 11))
  np.testing.assert_array_equal(np.concatenate(za), zb[0])
  np.testing.assert_array_equal(np.concatenate(la), lb[0])
  assert lb[0].min() >= 0 and lb[0].max() < 10 and lb[0].dtype == np.int32
  assert sampling.parse_classes(" 1, 2,3") == (1, 2, 3)
  assert sampling.parse_classes("") is None
  np.testing.assert_array_equal(sampling.class_runs(5, [7, 2]), [7, 7, 7, 2, 2])
  with pytest.raises(ValueError, match="outside"):
    sampling.NoiseAndLabels(16, 10, classes=[3, 10], num=4)


def test_generate_is_batch_independent_and_leaves_u_alone(workdir):
  _, g, _ = workdir
  u_before = [w.numpy().copy() for w in g.non_trainable_weights]
  x2, y2 = sampling.generate(g, 5, seed=1, classes=[4], batch_size=2)
  x5, _ = sampling.generate(g, 5, seed=1, classes=[4], batch_size=5)
  np.testing.assert_allclose(x2, x5, atol=1e-5)
  assert (y2 == 4).all() and x2.shape == (5, 32, 32, 3)
  assert np.abs(x2).max() <= 1.0
  for before, after in zip(u_before, g.non_trainable_weights):
    np.testing.assert_array_equal(before, after.numpy())


def test_cli_writes_png_and_npz_from_the_ema_generator(workdir, tmp_path):
  path, live, ema = workdir
  png, npz = str(tmp_path / "grid.png"), str(tmp_path / "out" / "s.npz")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  proc = subprocess.run(
      [sys.executable, "-m", "launch.sample", f"--workdir={path}", "--num=6",
       "--classes=1,3", "--seed=3", "--batch_size=4", f"--png={png}",
       f"--npz={npz}", "--bn_stats=moving"], cwd=REPO, env=env, capture_output=True, text=True,
      timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with np.load(npz) as f:
    images, labels = f["images"], f["labels"]
  assert images.dtype == np.uint8 and images.shape == (6, 32, 32, 3)
  np.testing.assert_array_equal(labels, [1, 1, 1, 3, 3, 3])
  assert Image.open(png).size == (3 * 33 - 1, 2 * 33 - 1)  # 2x3 grid, 1px gaps
  # The EMA generator made them, not the live one.
  want = to_uint8(sampling.generate(ema, 6, seed=3, classes=[1, 3])[0])
  other = to_uint8(sampling.generate(live, 6, seed=3, classes=[1, 3])[0])
  assert np.abs(images.astype(int) - want).max() <= 1
  assert np.abs(images.astype(int) - other).max() > 10


def test_write_samples_in_process(workdir, tmp_path):
  """sagan_tf.inference.sample_files, the library behind launch.sample: the live generator
  with --nouse_ema, moving statistics, the .npz's JSON entries."""
  from sagan_tf.inference import sample_files  # pylint: disable=g-import-not-at-top
  from sagan_tf.inference import bn_stats as bn_stats_lib  # pylint: disable=g-import-not-at-top
  path, live, ema = workdir
  npz = str(tmp_path / "live.npz")
  request = sample_files.SampleRequest(num=5, classes=(2,), seed=4, batch_size=2,
                                       npz=npz)
  written = sample_files.write_samples(path, request, use_ema=False,
                                       bn_stats=bn_stats_lib.BNStats("moving"))
  assert written == [npz]
  with np.load(npz) as f:
    images, labels = f["images"], f["labels"]
    assert json.loads(f["bn_stats"].item()) == {"mode": "moving"}
    assert json.loads(f["step"].item()) == 4
  np.testing.assert_array_equal(labels, [2] * 5)
  want = to_uint8(sampling.generate(live, 5, seed=4, classes=[2])[0])
  assert np.abs(images.astype(int) - want).max() <= 1
  assert request.plain and not dataclasses.replace(request, truncation=0.5).plain
  with pytest.raises(ValueError, match="grid='nope'"):
    sample_files.write_grid(live, dataclasses.replace(request, grid="nope"))
