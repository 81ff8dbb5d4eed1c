"""Replica-local ``u`` and BN moving statistics (``sagan_tf.layers.replica_local``) under a
2-replica MirroredStrategy on logical CPUs: the step's cross-replica reductions are
the gradients, the BN moments and the metrics only (``benchmark.count_collectives``);
the replicas' copies stay equal; a checkpoint saved on 2 replicas resumes bit for
bit on 2 replicas and restores into 1; on 3 replicas (own process,
``tests/three_replicas_worker.py``) the values read are the one-device ones, bit for
bit."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.perf import benchmark
from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf import config as config_lib
from sagan_tf.training import loop as train_lib
from sagan_tf.inference.bn_stats import bn_layers
from sagan_tf.layers.replica_local import replica_local_weight
from sagan_tf.layers.spectral_norm import SNDense
from sagan_tf.training.step import METRICS

# d_steps 2 so that every term of the expected count has its own factor.
CONFIG = config_lib.from_preset("tiny").replace(
    d_steps=2, log_every=1, sample_every=100, checkpoint_every=1)


def expected_collectives(config, n_bn):
  """Cross-replica reductions a multi-replica train step needs, from its structure:
  ``n_bn`` generator BN layers (whole-batch moments, ``bn_group_size=0``)."""
  g_forwards = config.d_steps + 1  # one per D step, one in the G step
  return (g_forwards  # the gradients: one packed all-reduce per optimizer step
          + n_bn * g_forwards  # BN moments of every training forward of G
          + n_bn  # their gradient, in the G step's backward pass
          + len(METRICS))  # the logged metrics (strategy.reduce)


def _mirrored():
  return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


def _replica_local(model):
  """Every sync-on-read weight of ``model`` (u and BN moving statistics)."""
  return [w for w in model.weights if isinstance(w.value, tf.distribute.DistributedValues)
          and w.value.synchronization == tf.VariableSynchronization.ON_READ]


def _count(strategy, replica_fn):
  fn = tf.function(lambda: strategy.run(replica_fn))
  return benchmark.count_collectives(fn.get_concrete_function())


def test_count_collectives_sees_each_kind_of_reduction():
  """An all-reduce (collective op) and a MEAN write of a mirrored variable
  (ReductionToOneDevice) count one each; a replica-local write counts nothing."""
  strategy = _mirrored()
  with strategy.scope():
    mean_var = tf.Variable(tf.zeros([3]), aggregation=tf.VariableAggregation.MEAN)
    layer = SNDense(3)
    layer.build((None, 4))
    local = replica_local_weight(layer, "local", (3,), "zeros")

  def all_reduce():
    ctx = tf.distribute.get_replica_context()
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.ones([3]))

  assert _count(strategy, all_reduce) == 1
  assert _count(strategy, lambda: mean_var.assign(tf.ones([3]))) == 1
  assert _count(strategy, lambda: local.assign(tf.ones([3]))) == 0
  x = tf.ones([2, 4])
  assert _count(strategy, lambda: layer(x, update_u=True)) == 0
  one_device = tf.function(lambda: layer(x, update_u=True))
  assert benchmark.count_collectives(one_device.get_concrete_function()) == 0


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory):
  """3 steps on 2 replicas (checkpoint every step) and the step's trace."""
  workdir = str(tmp_path_factory.mktemp("two_replicas"))
  strategy = _mirrored()
  trainer = train_lib.Trainer(CONFIG, workdir, strategy,
                              dataset_fn=benchmark.synthetic_dataset_fn)
  collectives = benchmark.count_collectives(
      trainer.train_step.trace(trainer.iterator))
  trainer.run(3)
  trainer.close()
  return dict(workdir=workdir, trainer=trainer, strategy=strategy,
              collectives=collectives)


def test_step_reduces_only_gradients_bn_moments_and_metrics(two_replicas):
  trainer = two_replicas["trainer"]
  n_bn = len(bn_layers(trainer.generator))
  assert n_bn > 0 and CONFIG.bn_group_size == 0
  assert two_replicas["collectives"] == expected_collectives(CONFIG, n_bn)


def test_replicas_hold_identical_u_and_moving_statistics(two_replicas):
  trainer, strategy = two_replicas["trainer"], two_replicas["strategy"]
  weights = (_replica_local(trainer.generator)
             + _replica_local(trainer.discriminator))
  n_u = sum(w.name == "u" for w in weights)
  assert n_u > 10 and len(weights) - n_u == 2 * len(bn_layers(trainer.generator))
  for w in weights:
    first, second = (t.numpy() for t in strategy.experimental_local_results(w.value))
    np.testing.assert_array_equal(first, second, err_msg=w.path)


def _copy_checkpoint(src_workdir, dst_workdir, step):
  src = os.path.join(src_workdir, "checkpoints")
  dst = os.path.join(dst_workdir, "checkpoints")
  os.makedirs(dst)
  shutil.copy(os.path.join(src_workdir, "config.json"), dst_workdir)
  for f in os.listdir(src):
    if f.startswith(f"ckpt-{step}."):
      shutil.copy(os.path.join(src, f), dst)
  with open(os.path.join(dst, "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "ckpt-{step}"\n')


def _restored_equal_checkpoint(trainer, saved):
  """Every copy of every non-trainable model weight (u, moving statistics; the
  trainable ones are saved under the optimizers' paths) equals the checkpoint's
  value; returns how many were compared."""
  checked = 0
  for model, root in ((trainer.generator, "generator"),
                      (trainer.discriminator, "discriminator")):
    keys = {id(v): k for k, v in ckpt_lib.checkpoint_keys({root: model}).items()}
    for w in model.non_trainable_weights:
      key = keys[id(w)]
      assert key in saved, key
      for copy in trainer.strategy.experimental_local_results(w.value):
        np.testing.assert_array_equal(np.asarray(copy), saved[key], err_msg=key)
      checked += 1
  return checked


def test_two_replica_checkpoint_resumes_exactly_and_restores_into_one(
    two_replicas, tmp_path):
  straight = two_replicas["workdir"]
  for f in ("a", "b"):
    _copy_checkpoint(straight, str(tmp_path / f), 2)
  step_2 = ckpt_lib.variables_of(str(tmp_path / "a"))
  # Into one replica: every variable, u and the moving statistics included.
  one = train_lib.Trainer(CONFIG, str(tmp_path / "a"),
                          dataset_fn=benchmark.synthetic_dataset_fn)
  one.close()
  assert int(one.step.numpy()) == 2
  assert _restored_equal_checkpoint(one, step_2) > 20
  # Into two replicas: both copies restored; one more step ends where the
  # uninterrupted run's step 3 did, bit for bit.
  two = train_lib.Trainer(CONFIG, str(tmp_path / "b"), _mirrored(),
                          dataset_fn=benchmark.synthetic_dataset_fn)
  assert _restored_equal_checkpoint(two, step_2) > 20
  two.run(3)
  two.close()
  a, b = ckpt_lib.variables_of(straight), ckpt_lib.variables_of(str(tmp_path / "b"))
  assert a.keys() == b.keys() and any("/u/" in k for k in a)
  differ = [k for k in a if not np.array_equal(a[k], b[k])]
  assert not differ, differ[:5]


def test_three_replicas_keep_the_one_device_value_bit_for_bit(tmp_path):
  """With 3 replicas a mean of the copies, ``(a + a + a) / 3``, is not always
  ``a``: every ``u`` after one step on 3 replicas equals the one-device ``u``, and
  a value written alike on all replicas into every ``u`` and moving statistic is
  read back unchanged."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
      [sys.executable, "-m", "tests.three_replicas_worker", str(tmp_path)],
      cwd=repo, capture_output=True, text=True, timeout=1200,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  got = json.loads(proc.stdout.strip().splitlines()[-1])
  assert got["n_u"] > 20 and got["n_weights"] > got["n_u"]
  assert got["mean_would_differ"] > 0  # the values can tell ONLY_FIRST from MEAN
  assert got["u_differ"] == []
  assert got["write_read_differ"] == []
