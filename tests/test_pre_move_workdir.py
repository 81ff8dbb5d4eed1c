"""A workdir written before the subpackage move (issue 20) still loads.

``tests/data/pre_move_workdir`` was written by ``python -m launch.train
--preset=tiny --steps=2 --set=checkpoint_every=2`` at commit f3207e4 (flat
``sagan_tf/``); ``pre_move_workdir_golden.npz`` holds what that code's
``load_models`` generator and discriminator gave for a fixed input. Checkpoint
keys come from attribute and layer names, not module paths: these tests fail if
a move renames one.
"""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.run import safe_checkpoints as safe
from sagan_tf.run import state
from sagan_tf.run import workdir as workdir_lib

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
WORKDIR = os.path.join(DATA, "pre_move_workdir")


@pytest.fixture
def golden():
  with np.load(os.path.join(DATA, "pre_move_workdir_golden.npz")) as f:
    return {k: f[k] for k in f.files}


def test_models_restore_to_the_same_outputs(golden):
  config, generator, discriminator, step = state.load_models(WORKDIR)
  assert step == int(golden["step"]) == 2
  z = tf.random.stateless_normal([2, config.z_dim], seed=[7, 1])
  labels = tf.constant([3, 8], tf.int32)
  images = generator(z, labels, training=False).numpy()
  logits = discriminator(images, labels, training=False).numpy()
  np.testing.assert_allclose(images, golden["images"], rtol=0, atol=1e-5)
  np.testing.assert_allclose(logits, golden["logits"], rtol=1e-4, atol=1e-5)


def test_the_whole_run_state_resumes(tmp_path):
  """Every value of the checkpoint (optimizer slots included) finds its object."""
  workdir = str(tmp_path / "w")
  shutil.copytree(WORKDIR, workdir)
  config = workdir_lib.load_config(workdir)
  run = state.RunState.create(config)
  path, absent, skipped = run.restore_newest(
      workdir, safe.FiniteCheck(run.items()), set_aside=False)
  assert os.path.basename(path) == "ckpt-2"
  assert (absent, skipped) == ((), [])
  assert int(run.step.numpy()) == 2
  assert int(run.g_optimizer.iterations.numpy()) == 2
  assert int(run.d_optimizer.iterations.numpy()) == 2
  tf.train.Checkpoint(**run.items()).restore(path).assert_consumed()
