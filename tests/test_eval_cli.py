"""launch.eval end to end (subprocess): two .npz image sets, and a tiny workdir."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from sagan_tf.inference import sampling
from eval.testing import save_tiny_classifier
from sagan_tf.run import state as state_lib
from sagan_tf.config import from_preset
from sagan_tf.data.pipeline import make_dataset
from sagan_tf.models.builder import build_models
from tests.test_eval_manifold import _brute as brute_prdc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_eval(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
  proc = subprocess.run([sys.executable, "-m", "launch.eval", *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = proc.stdout.strip().splitlines()
  assert len(lines) == 1, proc.stdout  # ONE JSON line on stdout
  return json.loads(lines[0])


def independent(path, images):
  """Activations of the saved module (resized as the real network's input) for
  uint8 images, or floats in [-1, 1]."""
  x = np.asarray(images, np.float32)
  if images.dtype == np.uint8:
    x = x / 127.5 - 1.0
  x = tf.compat.v1.image.resize_bilinear(x, [299, 299])
  out = tf.saved_model.load(path)(x)
  logits = out["logits"].numpy().astype(np.float64)
  pool = out["pool_3"].numpy().reshape(len(images), -1).astype(np.float64)
  return logits, pool



def np_is(logits):
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  return float(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(p.mean(0))), 1))))


def np_fid(a, b):
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  return float(np.sum((a.mean(0) - b.mean(0)) ** 2)
               + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real))


def np_kid(a, b):
  k = lambda x, y: (x @ y.T / a.shape[1] + 1) ** 3
  m, n = len(a), len(b)
  kaa, kbb = k(a, a), k(b, b)
  return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1))
               + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2 * k(a, b).mean())


def test_compare_two_npz_sets(tmp_path):
  cls = save_tiny_classifier(str(tmp_path / "tiny"), num_classes=6, dim=4)
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
  b = np.clip(rng.normal(150, 40, (10, 24, 24, 3)), 0, 255).astype(np.uint8)
  ya, yb = np.arange(12) % 2, np.arange(10) // 5  # two classes in each set
  np.savez(tmp_path / "a.npz", images=a, labels=ya)
  np.savez(tmp_path / "b.npz", images=b, labels=yb)
  np.savez(tmp_path / "b_nolabels.npz", images=b)
  out = run_eval(f"--images_a={tmp_path / 'a.npz'}", f"--images_b={tmp_path / 'b.npz'}",
                 f"--inception_path={cls}", "--batch_size=5")
  assert sorted(out) == ["coverage", "density", "fid", "intra_fid",
                         "intra_fid_classes", "is_a", "is_b", "kid", "precision",
                         "recall"]
  (la, pa), (lb, pb) = independent(cls, a), independent(cls, b)
  assert out["fid"] == pytest.approx(np_fid(pa, pb), rel=1e-3)
  assert out["is_a"] == pytest.approx(np_is(la), rel=1e-3)
  assert out["is_b"] == pytest.approx(np_is(lb), rel=1e-3)
  assert out["kid"] == pytest.approx(np_kid(pa, pb), rel=1e-3)
  # k-NN metrics against brute force on the independently computed features.
  want = brute_prdc(pa, pb)
  for name in ("precision", "recall", "density", "coverage"):
    assert out[name] == pytest.approx(want[name], abs=1e-9), name
  assert 0 < out["precision"] < 1 or 0 < out["recall"] < 1
  # Intra-FID: the mean of the per-class numpy FIDs (labels from the .npz files).
  assert out["intra_fid_classes"] == 2
  assert out["intra_fid"] == pytest.approx(
      np.mean([np_fid(pa[ya == c], pb[yb == c]) for c in (0, 1)]), rel=1e-3)
  # Labels in only one file: no intra-FID.
  out = run_eval(f"--images_a={tmp_path / 'a.npz'}",
                 f"--images_b={tmp_path / 'b_nolabels.npz'}",
                 f"--inception_path={cls}", "--batch_size=5")
  assert "intra_fid" not in out and out["fid"] == pytest.approx(np_fid(pa, pb),
                                                                rel=1e-3)


def test_evaluate_workdir_on_digits(tmp_path):
  config = from_preset("tiny")  # digits: real images offline
  g, d = build_models(config)
  workdir = str(tmp_path / "run")
  state_lib.save_models(workdir, config, g, d, step=3)
  cls = save_tiny_classifier(str(tmp_path / "tiny"), dim=4)
  out = run_eval(f"--workdir={workdir}", f"--inception_path={cls}",
                 "--num_samples=10", "--batch_size=5", "--bn_stats=moving",
                 f"--cache_dir={tmp_path / 'cache'}")
  assert out["step"] == 3
  # Independent: the first 10 digits, the same seeded samples, numpy metrics.
  real = np.concatenate([x for x, _ in make_dataset(
      config, 5, split="train", shuffle=False, repeat=False).take(2)])
  _, g, _, _ = state_lib.load_models(workdir)
  fake, _ = sampling.generate(g, 10, seed=0, batch_size=5)
  (_, pool_real), (logits, pool_fake) = independent(cls, real), independent(cls, fake)
  assert out["IS"] == pytest.approx(np_is(logits), rel=1e-3)
  assert out["FID"] == pytest.approx(np_fid(pool_real, pool_fake), rel=1e-3)
  assert out["KID"] == pytest.approx(np_kid(pool_real, pool_fake), rel=1e-3)
  # Moving statistics (not the default mode): the file of that mode.
  with open(os.path.join(workdir, "eval", "metrics_000000003_moving.json")) as f:
    saved = json.load(f)
  assert saved["metrics"]["FID"] == pytest.approx(out["FID"])
  assert saved["protocol"]["real_count"] == 10
  # Global and per-class (intra-FID) real statistics.
  assert sorted(n.split("_")[1] for n in os.listdir(tmp_path / "cache")) == [
      "class", "stats"]
  # The first 10 digits hold one image per class: no class has the 2 a
  # covariance needs, so intra-FID is left out (with a warning), not an error.
  assert "intra_fid" not in out
