"""The --bn_stats, --standing_*, --classifier and --eval_* flags of the launchers
(subprocesses on a tiny digits workdir; the digits classifier is pre-placed in the
cache with untrained weights so nothing trains it here)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from eval import digits_classifier as dc
from sagan_tf.run import state as state_lib
from sagan_tf.config import from_preset
from sagan_tf.models.builder import build_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  root = tmp_path_factory.mktemp("quality_cli")
  config = from_preset("tiny")
  g, d = build_models(config)
  workdir = str(root / "run")
  state_lib.save_models(workdir, config, g, d, step=5)
  cache = str(root / "cache")
  weights = dc.build_model(dc.RECIPE).get_weights()
  dc.save_cached(dc.cache_path(cache, dc.RECIPE), dc.RECIPE, weights, 0.0)
  return root, workdir, cache


def run(module, *args, cache=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  if cache:
    env["SAGAN_TF_CACHE_DIR"] = cache
  return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=900)


def test_sample_bn_stats_flags(setup):
  root, workdir, _ = setup
  outs = {}
  for mode in ("moving", "standing"):
    npz = str(root / f"{mode}.npz")
    r = run("launch.sample", f"--workdir={workdir}", "--num=8", f"--npz={npz}",
            f"--bn_stats={mode}", "--standing_passes=2",
            "--standing_batch_size=8", "--standing_seed=3")
    assert r.returncode == 0, r.stderr[-2000:]
    with np.load(npz) as f:
      outs[mode] = f["images"]
      assert json.loads(str(f["bn_stats"]))["mode"] == mode
      assert json.loads(str(f["step"])) == 5
  assert np.abs(outs["moving"].astype(int) - outs["standing"].astype(int)).max() > 10
  bad = run("launch.sample", f"--workdir={workdir}", "--npz=x.npz",
            "--standing_passes=0")
  assert bad.returncode != 0 and "passes > 0" in bad.stderr


def test_eval_digits_classifier_and_bn_stats(setup):
  root, workdir, cache = setup
  r = run("launch.eval", f"--workdir={workdir}", "--classifier=digits",
          f"--cache_dir={cache}", "--num_samples=20", "--num_real=30",
          "--batch_size=10", "--bn_stats=batch", "--log_every=0",
          "--intra_fid_classes=3")
  assert r.returncode == 0, r.stderr[-2000:]
  line = json.loads(r.stdout.strip().splitlines()[-1])
  assert line["bn_stats"] == {"mode": "batch"} and line["step"] == 5
  assert 0.0 <= line["class_accuracy"] <= 1.0 and line["FID"] > 0
  # Not the default BN mode: its own result file.
  with open(os.path.join(workdir, "eval", "metrics_000000005_batch.json")) as f:
    saved = json.load(f)
  assert saved["protocol"]["inception"] == "digits"
  assert saved["protocol"]["num_samples"] == 20
  assert saved["protocol"]["intra_fid_classes"] == 3
  assert set(saved.get("intra_fid", {})) <= {"0", "1", "2"}
  bad = run("launch.eval", f"--workdir={workdir}", "--standing_batch_size=0")
  assert bad.returncode != 0 and "must be positive" in bad.stderr
  bad = run("launch.eval", f"--workdir={workdir}", "--intra_fid_classes=-1")
  assert bad.returncode != 0 and "--intra_fid_classes must be >= 0" in bad.stderr


def test_export_bn_stats_flag(setup):
  root, workdir, _ = setup
  out = str(root / "export")
  r = run("launch.export", f"--workdir={workdir}", f"--output={out}",
          "--bn_stats=moving")
  assert r.returncode == 0, r.stderr[-2000:]
  with open(os.path.join(out, "sagan_tf_export.json")) as f:
    assert json.load(f)["bn_stats"] == {"mode": "moving"}


def test_train_eval_every(setup):
  root, _, cache = setup
  workdir = str(root / "train")
  r = run("launch.train", "--preset=tiny", f"--workdir={workdir}", "--steps=2",
          "--set=eval_every=2", "--eval_classifier=digits",
          "--eval_num_samples=16", cache=cache)
  assert r.returncode == 0, r.stderr[-3000:]
  with open(os.path.join(workdir, "eval", "metrics_000000002.json")) as f:
    saved = json.load(f)
  assert saved["protocol"]["num_samples"] == 16
  assert saved["bn_stats"]["mode"] == "standing"
  assert "class_accuracy" in saved["metrics"]
  assert "Evaluation at step 2" in r.stderr
