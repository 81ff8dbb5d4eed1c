"""Tests for sagan_tf.models.lecam: the term, the averages and their schedule,
replicas, the checkpoint item, and the term in the train step's D loss."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf.models.lecam import LeCam
from sagan_tf.run import safe_checkpoints as safe
from sagan_tf.run import state as state_lib
from sagan_tf.training import step as step_lib

TINY = config_lib.from_preset("tiny")
PRE_MOVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                        "pre_move_workdir")


def _relu(x):
  return np.maximum(x, 0.0)


def test_off_in_every_preset():
  for name in config_lib.PRESETS:
    c = config_lib.from_preset(name)
    assert c.lecam_weight == 0.0 and state_lib.optional_lecam(c) is None
  c = config_lib.override(TINY, {"lecam_weight": "0.3"})
  assert (c.lecam_weight, c.lecam_decay) == (0.3, 0.99)
  with pytest.raises(ValueError, match="lecam_decay"):
    TINY.replace(lecam_decay=1.0)


def test_penalty_for_known_inputs():
  lecam = LeCam(weight=0.5, decay=0.99)
  real = np.array([1.0, -2.0, 3.0, 0.1], np.float32)
  fake = np.array([0.5, -1.0, 2.0, 1.6], np.float32)
  alpha_r, alpha_f = 1.5, 0.25
  got = lecam.penalty(tf.constant(real), tf.constant(fake), alpha_r, alpha_f).numpy()
  # relu(D(x) - alpha_F)^2 + relu(alpha_R - D(G(z)))^2, per example, times lambda.
  expected = 0.5 * np.array([0.75 ** 2 + 1.0 ** 2, 0.0 + 2.5 ** 2, 2.75 ** 2 + 0.0,
                             0.0 + 0.0])
  np.testing.assert_allclose(got, expected, rtol=1e-6)
  np.testing.assert_allclose(
      got, 0.5 * (_relu(real - alpha_f) ** 2 + _relu(alpha_r - fake) ** 2),
      rtol=1e-6)


def test_averages_copy_until_the_start_then_decay_and_the_term_waits():
  lecam = LeCam(weight=1.0, decay=0.9, start_step=2)
  rng = np.random.default_rng(0)
  ema_r = ema_f = 0.0
  for step in range(5):
    real = rng.normal(size=6).astype(np.float32)
    fake = rng.normal(size=6).astype(np.float32)
    term = lecam.term(tf.constant(real), tf.constant(fake),
                      tf.constant(step, tf.int64), global_batch=6).numpy()
    d = 0.0 if step < 2 else 0.9
    ema_r = d * ema_r + (1 - d) * real.mean()
    ema_f = d * ema_f + (1 - d) * fake.mean()
    np.testing.assert_allclose(lecam.real_mean.numpy(), ema_r, rtol=1e-5)
    np.testing.assert_allclose(lecam.fake_mean.numpy(), ema_f, rtol=1e-5)
    expected = _relu(real - ema_f) ** 2 + _relu(ema_r - fake) ** 2
    if step <= 2:  # official: the term from itr > start_itr on
      np.testing.assert_array_equal(term, np.zeros(6))
    else:
      assert expected.max() > 0
      np.testing.assert_allclose(term, expected, rtol=1e-5)


def test_mirrored_update_takes_the_global_mean_on_every_replica():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  with strategy.scope():
    lecam = LeCam(weight=1.0, decay=0.5, start_step=0)
  real = np.array([[1.0, 2.0], [5.0, 8.0]], np.float32)  # replica 0, replica 1
  fake = np.array([[-1.0, 0.0], [3.0, -6.0]], np.float32)
  lecam.real_mean.assign(2.0)

  @tf.function
  def run():
    def replica_fn():
      i = tf.distribute.get_replica_context().replica_id_in_sync_group
      return lecam.update(tf.gather(real, i), tf.gather(fake, i),
                          tf.constant(3, tf.int64), global_batch=4)
    return strategy.run(replica_fn)

  alpha_r, alpha_f = run()
  for value, expected in ((alpha_r, 0.5 * 2.0 + 0.5 * real.mean()),
                          (alpha_f, 0.5 * 0.0 + 0.5 * fake.mean())):
    for v in strategy.experimental_local_results(value):
      np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6)
  for var, expected in ((lecam.real_mean, 0.5 * 2.0 + 0.5 * real.mean()),
                        (lecam.fake_mean, 0.5 * fake.mean())):
    for v in strategy.experimental_local_results(var):
      np.testing.assert_allclose(v.numpy(), expected, rtol=1e-6)


def test_checkpoint_restores_the_averages(tmp_path):
  config = TINY.replace(lecam_weight=0.3)
  run = state_lib.RunState.create(config)
  assert "lecam" in run.items()
  run.lecam.real_mean.assign(1.25)
  run.lecam.fake_mean.assign(-0.75)
  path = run.checkpoint.save(str(tmp_path / "ckpt"))
  run.lecam.real_mean.assign(7.0)
  run.lecam.fake_mean.assign(7.0)
  run.checkpoint.restore(path).assert_consumed()
  assert (float(run.lecam.real_mean.numpy()), float(run.lecam.fake_mean.numpy())) \
      == (1.25, -0.75)
  # A fresh run state restores them too (through the one list of items).
  other = state_lib.RunState.create(config)
  other.checkpoint.restore(path).assert_consumed()
  assert float(other.lecam.fake_mean.numpy()) == -0.75


def test_old_workdir_restores_with_lecam_off_and_on(tmp_path):
  workdir = str(tmp_path / "w")
  shutil.copytree(PRE_MOVE, workdir)
  base = config_lib.Config.from_json(open(os.path.join(workdir, "config.json")).read())
  assert base.lecam_weight == 0.0
  for config, absent in ((base, ()), (base.replace(lecam_weight=0.3), ("lecam",))):
    run = state_lib.RunState.create(config)
    path, got_absent, skipped = run.restore_newest(
        workdir, safe.FiniteCheck(run.items()), set_aside=False)
    assert os.path.basename(path) == "ckpt-2"
    assert (got_absent, skipped) == (absent, [])
    assert int(run.step.numpy()) == 2


def test_term_joins_the_d_loss_of_the_step():
  config = TINY.replace(lecam_weight=0.5, lecam_decay=0.9, lecam_start=0)
  run = state_lib.RunState.create(config)
  run.lecam.real_mean.assign(0.2)
  run.lecam.fake_mean.assign(-0.1)
  step = step_lib.TrainStep(config, tf.distribute.get_strategy(), run.generator,
                            run.discriminator, run.g_optimizer, run.d_optimizer,
                            run.step, lecam=run.lecam, variable_reads="resource")
  logits = []
  d = run.discriminator

  def spy(*args, **kwargs):
    out = d(*args, **kwargs)
    logits.append(out.numpy().astype(np.float64))
    return out
  spy.trainable_variables = d.trainable_variables
  step.discriminator = spy
  rng = np.random.default_rng(1)
  images = tf.constant(rng.uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32))
  out = step.d_step(images, tf.constant([0, 1, 2, 3]), tf.constant(1, tf.int64), 0)
  real, fake = logits  # resource reads: the real pass first
  alpha_r = 0.9 * 0.2 + 0.1 * real.mean()
  alpha_f = 0.9 * -0.1 + 0.1 * fake.mean()
  hinge = _relu(1 - real).mean() + _relu(1 + fake).mean()
  lecam = 0.5 * ((_relu(real - alpha_f) ** 2).mean()
                 + (_relu(alpha_r - fake) ** 2).mean())
  assert lecam > 1e-4
  np.testing.assert_allclose(float(out["d_loss"]), hinge + lecam, rtol=1e-5)
  np.testing.assert_allclose(run.lecam.real_mean.numpy(), alpha_r, rtol=1e-5)
  np.testing.assert_allclose(run.lecam.fake_mean.numpy(), alpha_f, rtol=1e-5)
