"""Run by tests/test_replica_sync.py in its own process: 3 logical CPUs (a process's
logical devices are fixed once TensorFlow starts, and conftest makes 2).

    python -m tests.three_replicas_worker WORKDIR

Prints one JSON line:

* ``u_differ``: paths of the spectral-norm ``u`` whose value after one train step
  on 3 replicas (read in cross-replica context) is not bit-equal to the value after
  the same step on one device (``u`` depends only on the initial weights then);
* ``write_read_differ``: paths of the replica-local weights (every ``u`` and BN
  moving statistic) for which a value written alike on all 3 replicas is not what a
  cross-replica read returns, bit for bit;
* ``n_u``, ``n_weights``: how many were compared; ``mean_would_differ``: how many
  elements of the written values have ``(a + a + a) / 3 != a`` in float32.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# Before anything else touches the devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 3)

from sagan_tf import config as config_lib  # noqa: E402
from sagan_tf.perf import benchmark  # noqa: E402
from sagan_tf.run import state  # noqa: E402
from sagan_tf.training import loop as train_lib  # noqa: E402

CONFIG = config_lib.from_preset("tiny").replace(
    batch_size=6, d_steps=1, log_every=1, sample_every=100, checkpoint_every=100)


def replica_local(model):
  return [w for w in model.weights
          if isinstance(w.value, tf.distribute.DistributedValues)
          and w.value.synchronization == tf.VariableSynchronization.ON_READ]


def one_step(workdir, strategy=None):
  state.set_process_switches(CONFIG)  # same initial weights in both runs
  trainer = train_lib.Trainer(CONFIG, workdir, strategy,
                              dataset_fn=benchmark.synthetic_dataset_fn)
  trainer.run(1)
  trainer.close()
  return trainer


def main(workdir):
  one = one_step(os.path.join(workdir, "one"))
  strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(3)])
  three = one_step(os.path.join(workdir, "three"), strategy)
  models = ((one.generator, three.generator), (one.discriminator, three.discriminator))
  u_differ, n_u = [], 0
  for m1, m3 in models:
    u1 = {w.path: w.numpy() for w in m1.non_trainable_weights if w.name == "u"}
    for w in m3.non_trainable_weights:
      if w.name == "u":
        n_u += 1
        if not np.array_equal(np.asarray(w.numpy()), u1[w.path]):
          u_differ.append(w.path)
  weights = replica_local(three.generator) + replica_local(three.discriminator)
  rng = np.random.default_rng(0)
  values = [rng.uniform(0.1, 2.0, tuple(w.shape)).astype(np.float32) for w in weights]

  def write():
    for w, v in zip(weights, values):
      w.assign(tf.constant(v))
  strategy.run(tf.function(write))
  write_read_differ = [w.path for w, v in zip(weights, values)
                       if not np.array_equal(np.asarray(w.numpy()), v)]
  mean_would_differ = int(sum(np.sum((v + v + v) / np.float32(3) != v) for v in values))
  print(json.dumps(dict(u_differ=u_differ, n_u=n_u, n_weights=len(weights),
                        write_read_differ=write_read_differ,
                        mean_would_differ=mean_would_differ)))


if __name__ == "__main__":
  main(sys.argv[1])
