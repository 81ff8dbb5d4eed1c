"""The train step's noise: z, class labels and the seeds of DiffAugment.

Noise is reproducible: z and c are drawn with stateless ops seeded by
``(config.seed, global step, substep, replica id)`` (substep ``d_steps`` is the G
step), so a run resumed from a checkpoint at step k draws exactly the numbers an
uninterrupted run draws at step k. (The noise therefore depends on the number of
replicas: the same seed on 1 and 2 replicas gives different runs.) ``TrainStep``'s
``noise_fn`` replaces the draw (tests feed recorded noise through it). DiffAugment
draws from the same seed, folded with 2 (real images) or 3 (fake; z and c take 0
and 1); the mode-seeking term pairs the G step's labels after the draw
(``sagan_tf.training.mode_seeking``).
"""
from __future__ import annotations

import tensorflow as tf

from sagan_tf.config import Config


def noise_seed(seed, step, substep, replica_id):
  """Stateless seed `[2]` int64 for (run seed, global step, substep, replica)."""
  s = tf.constant([0, 0], tf.int64) + tf.cast(seed, tf.int64)
  for data in (step, substep, replica_id):
    s = tf.random.experimental.stateless_fold_in(s, tf.cast(data, tf.int64))
  return s


def sample_noise(config: Config, batch: int, step, substep, replica_id):
  """Returns (z `[batch, z_dim]` float32 ~ N(0, 1), labels `[batch]` int32 uniform).

  Deterministic in (config.seed, step, substep, replica_id).
  """
  seed = noise_seed(config.seed, step, substep, replica_id)
  z_seed = tf.random.experimental.stateless_fold_in(seed, 0)
  c_seed = tf.random.experimental.stateless_fold_in(seed, 1)
  z = tf.random.stateless_normal([batch, config.z_dim], seed=z_seed)
  labels = tf.random.stateless_uniform([batch], seed=c_seed, minval=0,
                                       maxval=config.num_classes, dtype=tf.int32)
  return z, labels
