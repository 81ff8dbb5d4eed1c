"""Tests for sagan_tf.inference.export and launch.export: a SavedModel usable without sagan_tf."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.inference import bn_stats
from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import state as state_lib
from sagan_tf import config as config_lib
from sagan_tf.inference import export as export_lib
from sagan_tf import images as images_lib
from sagan_tf.models.ema import EMA
from sagan_tf.models.builder import build_models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a fresh interpreter that cannot import the project: it may only use TF.
# The project is installed (editable) into the venv, so a finder first in
# sys.meta_path hides its packages, as on a serving host without them.
_LOADER = r"""
import importlib.abc, json, sys
class _NoProject(importlib.abc.MetaPathFinder):
  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in ("sagan_tf", "launch", "eval"):
      raise ImportError(name + " is hidden: the SavedModel must load without it")
sys.meta_path.insert(0, _NoProject())
import numpy as np
try:
  import sagan_tf
  raise SystemExit("sagan_tf importable: " + str(sagan_tf.__file__))
except ImportError:
  pass
import tensorflow as tf
path, inputs, out = sys.argv[1:4]
data = np.load(inputs)
model = tf.saved_model.load(path)
fn = model.signatures["serving_default"]
spec = fn.structured_input_signature[1]
images = fn(z=tf.constant(data["z"]), labels=tf.constant(data["labels"]))["images"]
again = fn(z=tf.constant(data["z"]), labels=tf.constant(data["labels"]))["images"]
np.save(out, images.numpy())
json.dump({"z": spec["z"].shape.as_list(), "labels": spec["labels"].shape.as_list(),
           "z_dtype": spec["z"].dtype.name, "labels_dtype": spec["labels"].dtype.name,
           "dtype": images.dtype.name, "repeat_equal": bool(np.array_equal(images, again))},
          sys.stdout)
"""


def _run_loader(tmp_path, export_dir, z, labels):
  inputs = str(tmp_path / "inputs.npz")
  out = str(tmp_path / "out.npy")
  np.savez(inputs, z=z, labels=labels)
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  proc = subprocess.run(
      [sys.executable, "-c", _LOADER, export_dir, inputs, out],
      cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return np.load(out), json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """A tiny workdir whose checkpoint holds a live and a (different) EMA generator."""
  config = config_lib.from_preset("tiny").replace(gf_dim=2, df_dim=2)
  g, d = build_models(config)
  ema = EMA(g, decay=0.5)
  rng = np.random.default_rng(0)
  for w in g.weights:
    if w.trainable:
      w.assign(w.numpy() + 0.05 * rng.standard_normal(tuple(w.shape)).astype(np.float32))
  ema.update(g, 1)
  path = str(tmp_path_factory.mktemp("export") / "run")
  state_lib.save_models(path, config, g, d, step=5, ema_generator=ema.generator)
  return path


def test_to_uint8_matches_numpy():
  x = np.linspace(-1.2, 1.2, 1001, dtype=np.float32)
  np.testing.assert_array_equal(images_lib.to_uint8_tensor(x).numpy(),
                                images_lib.to_uint8(x))
  # The levels: k / 127.5 - 1 is level k, 0 rounds up to 128, outside clips.
  levels = np.arange(256, dtype=np.float32) / 127.5 - 1.0
  np.testing.assert_array_equal(images_lib.to_uint8(levels), np.arange(256))
  np.testing.assert_array_equal(images_lib.to_uint8([-1.2, 0.0, 1.2]),
                                [0, 128, 255])


def test_launcher_export_loads_without_sagan_tf(workdir, tmp_path):
  export_dir = str(tmp_path / "saved")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, "-m", "launch.export", f"--workdir={workdir}",
       f"--output={export_dir}", "--bn_stats=moving"],  # official inference
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Exported the EMA generator of step 5" in proc.stderr
  config = ckpt_lib.load_config(workdir)
  _, generator, _, _ = state_lib.load_models(workdir, use_ema=True)
  u_before = [w.numpy() for w in generator.weights if not w.trainable]

  rng = np.random.default_rng(1)
  z = rng.standard_normal((3, config.z_dim)).astype(np.float32)
  labels = np.array([0, 4, 9], np.int32)
  served, info = _run_loader(tmp_path, export_dir, z, labels)
  assert info == {"z": [None, config.z_dim], "labels": [None], "z_dtype": "float32",
                  "labels_dtype": "int32", "dtype": "uint8", "repeat_equal": True}
  assert served.shape == (3, 32, 32, 3) and served.dtype == np.uint8

  expected = images_lib.to_uint8(
      generator(z, labels, training=False, update_u=False).numpy())
  diff = np.abs(served.astype(int) - expected.astype(int))
  assert diff.max() <= 1, diff.max()
  assert (diff == 0).mean() > 0.99
  # Serving the official way from the same state (writing u) gives the same pixels.
  official = images_lib.to_uint8(generator(z, labels, training=False).numpy())
  assert np.abs(served.astype(int) - official.astype(int)).max() <= 1
  assert any(not np.array_equal(a, w.numpy()) for a, w in zip(
      u_before, [w for w in generator.weights if not w.trainable]))


def test_live_generator_export_differs(workdir, tmp_path):
  export_dir = str(tmp_path / "live")
  path, _, step, used_ema = export_lib.export_workdir(
      workdir, export_dir, use_ema=False,
      bn_stats=bn_stats.BNStats("moving"))  # official inference
  assert (path, step, used_ema) == (export_dir, 5, False)
  _, live, _, _ = state_lib.load_models(workdir, use_ema=False)
  loaded = tf.saved_model.load(export_dir)
  z = tf.random.stateless_normal([2, 16], seed=[3, 4])
  labels = tf.constant([1, 2])
  served = loaded.signatures["serving_default"](z=z, labels=labels)["images"]
  expected = images_lib.to_uint8(
      live(z, labels, training=False, update_u=False).numpy())
  assert np.abs(served.numpy().astype(int) - expected.astype(int)).max() <= 1
  _, ema, _, _ = state_lib.load_models(workdir, use_ema=True)
  ema_images = images_lib.to_uint8(
      ema(z, labels, training=False, update_u=False).numpy())
  assert np.abs(served.numpy().astype(int) - ema_images.astype(int)).max() > 1
  with pytest.raises(FileExistsError):
    export_lib.export_workdir(workdir, export_dir)

