"""Batch normalisation layers of the SAGAN generator.

* ``ConditionalBatchNorm`` is the official ``ops.ConditionalBatchNorm``: per-class
  gamma `[classes, C]` (ones) and beta (zeros) gathered by label; in training,
  batch moments over N, H, W with the biased variance and eps 1e-5; moving mean and
  variance of shape `[1, 1, 1, C]` (official names ``mean``/``var``) with decay 0.999,
  used in inference.
* ``BatchNorm`` is the official ``g_bn`` (``tf.contrib.layers.batch_norm`` with decay
  0.9999, eps 1e-5, fused in TF 1.5 and so clamped to 1.001e-5): batch statistics in
  training with the biased variance in the normalisation, but the moving variance is
  updated with the Bessel-corrected batch variance (as the fused kernel reports it).

Both update their moving statistics whenever they are called with ``training=True``
(the official code put the updates in ``UPDATE_OPS``, which its training graph ran
with both the D and the G step, i.e. after every generator forward in training).

Deliberate deviations from the official code:

* Under a ``tf.distribute`` strategy with more than one replica, the batch moments
  are all-reduced across replicas (as TF-GAN's TPU batch norm does), so the
  normalisation and the moving statistics are those of the global batch, and the
  moving statistics stay identical on every replica. With one replica the moments
  are exactly ``tf.nn.moments``.
* Statistics are computed in float32 under a mixed-precision policy.
"""
from __future__ import annotations

import keras
import tensorflow as tf


def batch_moments(x, bessel=False):
  """Mean and variance over N, H, W (global across replicas under a strategy).

  Args:
    x: `[N, H, W, C]` tensor (cast to float32).
    bessel: also return the Bessel-corrected variance.

  Returns:
    (mean, variance[, unbiased_variance]), each `[C]` float32; variance is biased.
  """
  x = tf.cast(x, tf.float32)
  ctx = tf.distribute.get_replica_context()
  n_local = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
  if ctx is not None and ctx.num_replicas_in_sync > 1:
    s, sq, n = ctx.all_reduce(
        tf.distribute.ReduceOp.SUM,
        [tf.reduce_sum(x, [0, 1, 2]), tf.reduce_sum(tf.square(x), [0, 1, 2]), n_local])
    mean = s / n
    var = tf.maximum(sq / n - tf.square(mean), 0.0)
  else:
    n = n_local
    mean, var = tf.nn.moments(x, [0, 1, 2])
  if bessel:
    return mean, var, var * n / tf.maximum(n - 1.0, 1.0)
  return mean, var


def _normalize(x, mean, var, gamma, beta, eps):
  """(x - mean) / sqrt(var + eps) * gamma + beta, as tf.nn.batch_normalization."""
  inv = tf.math.rsqrt(var + eps) * gamma
  return x * inv + (beta - mean * inv)


class ConditionalBatchNorm(keras.layers.Layer):
  """Class-conditional batch norm: call ``layer(x, labels, training=...)``.

  Args:
    num_classes: number of classes (rows of gamma and beta).
    decay: moving-average decay (official 0.999).
    epsilon: variance epsilon (official 1e-5; TF-GAN 1e-3).
  """

  def __init__(self, num_classes, decay=0.999, epsilon=1e-5, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.decay = float(decay)
    self.epsilon = float(epsilon)

  def build(self, x_shape, labels_shape=None):
    c = int(x_shape[-1])
    self.gamma = self.add_weight(name="gamma", shape=(self.num_classes, c),
                                 initializer="ones", autocast=False)
    self.beta = self.add_weight(name="beta", shape=(self.num_classes, c),
                                initializer="zeros", autocast=False)
    self.moving_mean = self.add_weight(
        name="moving_mean", shape=(1, 1, 1, c), initializer="zeros",
        trainable=False, autocast=False, aggregation="mean")
    self.moving_variance = self.add_weight(
        name="moving_variance", shape=(1, 1, 1, c), initializer="ones",
        trainable=False, autocast=False, aggregation="mean")

  def call(self, x, labels, training=False):
    dtype = x.dtype
    x32 = tf.cast(x, tf.float32)
    labels = tf.cast(labels, tf.int32)
    gamma = tf.gather(self.gamma, labels)[:, None, None, :]
    beta = tf.gather(self.beta, labels)[:, None, None, :]
    if training:
      mean, var = batch_moments(x32)
      d = self.decay
      self.moving_mean.assign(self.moving_mean * d + mean * (1.0 - d))
      self.moving_variance.assign(self.moving_variance * d + var * (1.0 - d))
    else:
      mean, var = self.moving_mean, self.moving_variance
    return tf.cast(_normalize(x32, mean, var, gamma, beta, self.epsilon), dtype)


class BatchNorm(keras.layers.Layer):
  """Unconditional batch norm before the generator's last conv (official ``g_bn``).

  Args:
    decay: moving-average decay (official 0.9999; TF-GAN 0.999).
    epsilon: official 1.001e-5 (the fused kernel's clamp of 1e-5); TF-GAN 1e-3.
    bessel: update the moving variance with the unbiased batch variance (official
      True, as the fused kernel; TF-GAN False).
  """

  def __init__(self, decay=0.9999, epsilon=1.001e-5, bessel=True, **kwargs):
    super().__init__(**kwargs)
    self.decay = float(decay)
    self.epsilon = float(epsilon)
    self.bessel = bool(bessel)

  def build(self, input_shape):
    c = int(input_shape[-1])
    self.gamma = self.add_weight(name="gamma", shape=(c,), initializer="ones",
                                 autocast=False)
    self.beta = self.add_weight(name="beta", shape=(c,), initializer="zeros",
                                autocast=False)
    self.moving_mean = self.add_weight(
        name="moving_mean", shape=(c,), initializer="zeros", trainable=False,
        autocast=False, aggregation="mean")
    self.moving_variance = self.add_weight(
        name="moving_variance", shape=(c,), initializer="ones", trainable=False,
        autocast=False, aggregation="mean")

  def call(self, x, training=False):
    dtype = x.dtype
    x32 = tf.cast(x, tf.float32)
    if training:
      mean, var, unbiased = batch_moments(x32, bessel=True)
      d = self.decay
      self.moving_mean.assign(self.moving_mean * d + mean * (1.0 - d))
      self.moving_variance.assign(
          self.moving_variance * d + (unbiased if self.bessel else var) * (1.0 - d))
    else:
      mean, var = self.moving_mean, self.moving_variance
    return tf.cast(_normalize(x32, mean, var, self.gamma, self.beta, self.epsilon),
                   dtype)
