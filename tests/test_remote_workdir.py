"""Workdirs on non-local file systems (gs:// on a TPU pod): every file of a run goes
through ``tf.io.gfile``. TensorFlow's in-memory ``ram://`` file system stands in for
GCS here; a path that fell back to Python's ``open``/``os`` would land in a local
folder named ``ram:`` instead."""
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf import config as config_lib
from sagan_tf import images as images_lib
from sagan_tf.run import workdir as workdir_lib


def _ram_dir(name):
  path = f"ram://sagan_tf_tests/{name}"
  if tf.io.gfile.exists(path):
    tf.io.gfile.rmtree(path)
  return path


def test_config_round_trip(monkeypatch, tmp_path):
  monkeypatch.chdir(tmp_path)
  workdir = _ram_dir("config")
  config = config_lib.from_preset("tiny")
  path = workdir_lib.save_config(workdir, config)
  assert tf.io.gfile.exists(path)
  assert ckpt_lib.load_config(workdir) == config
  assert not os.listdir(tmp_path)  # nothing written locally


def test_save_png(monkeypatch, tmp_path):
  monkeypatch.chdir(tmp_path)
  path = _ram_dir("png") + "/samples/grid.png"
  image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
  assert images_lib.save_png(path, image) == path
  local = tmp_path / "copy.png"
  local.write_bytes(tf.io.gfile.GFile(path, "rb").read())
  np.testing.assert_array_equal(np.asarray(Image.open(local)), image)
  assert os.listdir(tmp_path) == ["copy.png"]
