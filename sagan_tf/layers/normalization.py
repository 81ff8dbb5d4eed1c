"""Batch normalisation layers of the SAGAN generator.

* ``ConditionalBatchNorm`` is the official ``ops.ConditionalBatchNorm``: per-class
  gamma `[classes, C]` (ones) and beta (zeros) gathered by label; in training,
  batch moments over N, H, W with the biased variance and eps 1e-5; moving mean and
  variance of shape `[1, 1, 1, C]` (official names ``mean``/``var``) with decay 0.999,
  used in inference. An addition for class interpolation (not in the official
  code; int labels are unchanged): labels may also be `[N, classes]` float mixture
  weights, and gamma/beta are then the weighted sums of the class rows.
* ``BatchNorm`` is the official ``g_bn`` (``tf.contrib.layers.batch_norm`` with decay
  0.9999, eps 1e-5, fused in TF 1.5 and so clamped to 1.001e-5): batch statistics in
  training with the biased variance in the normalisation, but the moving variance is
  updated with the Bessel-corrected batch variance (as the fused kernel reports it).

Both update their moving statistics whenever they are called with ``training=True``
(the official code put the updates in ``UPDATE_OPS``, which its training graph ran
with both the D and the G step, i.e. after every generator forward in training).

Deliberate deviations from the official code:

* With ``group_size=0`` (the default) and more than one replica of a
  ``tf.distribute`` strategy, the batch moments are all-reduced across replicas (as
  TF-GAN's TPU batch norm does), so the normalisation and the moving statistics are
  those of the global batch, and the moving statistics stay identical on every
  replica. With one replica the moments are exactly ``tf.nn.moments``.
* With ``group_size > 0`` every group's moving-statistics update is applied, in
  group order; the official CBN updates raced and often kept one tower's (above).
* Statistics are computed in float32 under a mixed-precision policy.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from sagan_tf.layers.bn_moments import (batch_moments, grouped_moments,
                                 sequential_moving_average)
from sagan_tf.layers.replica_local import replica_local_weight


def _normalize(x, mean, var, gamma, beta, eps):
  """(x - mean) / sqrt(var + eps) * gamma + beta, as tf.nn.batch_normalization."""
  inv = tf.math.rsqrt(var + eps) * gamma
  return x * inv + (beta - mean * inv)


class ConditionalBatchNorm(keras.layers.Layer):
  """Class-conditional batch norm: call ``layer(x, labels, training=...)``.

  ``labels`` are `[N]` int classes, or `[N, num_classes]` float weights of a
  class mixture (see ``class_parameters``).

  Args:
    num_classes: number of classes (rows of gamma and beta).
    decay: moving-average decay (official 0.999).
    epsilon: variance epsilon (official 1e-5; TF-GAN 1e-3).
    group_size: examples per normalisation group in training (tower BN; 0 = the
      whole global batch). See the module docstring.
  """

  def __init__(self, num_classes, decay=0.999, epsilon=1e-5, group_size=0,
               **kwargs):
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.decay = float(decay)
    self.epsilon = float(epsilon)
    self.group_size = int(group_size)

  def build(self, x_shape, labels_shape=None):
    c = int(x_shape[-1])
    self.gamma = self.add_weight(name="gamma", shape=(self.num_classes, c),
                                 initializer="ones", autocast=False)
    self.beta = self.add_weight(name="beta", shape=(self.num_classes, c),
                                initializer="zeros", autocast=False)
    # Equal on every replica by construction: written with no collective.
    self.moving_mean = replica_local_weight(self, "moving_mean", (1, 1, 1, c),
                                            "zeros")
    self.moving_variance = replica_local_weight(self, "moving_variance",
                                                (1, 1, 1, c), "ones")

  def class_parameters(self, labels):
    """Per-example (gamma, beta), each `[N, 1, 1, C]` float32.

    Args:
      labels: `[N]` int classes (the official gather), or `[N, num_classes]`
        float mixture weights: gamma = weights @ gamma_table, likewise beta
        (class interpolation, sagan_tf.inference.grids; one-hot rows give exactly
        the int labels' parameters).
    """
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank == 2:
      if labels.shape[-1] is not None and labels.shape[-1] != self.num_classes:
        raise ValueError(
            f"{self.name}: class mixture weights have {labels.shape[-1]} columns, "
            f"the layer has {self.num_classes} classes; give [N, {self.num_classes}] "
            "weights or [N] int labels.")
      weights = tf.cast(labels, tf.float32)
      gamma = tf.matmul(weights, self.gamma)
      beta = tf.matmul(weights, self.beta)
    elif labels.shape.rank == 1:
      labels = tf.cast(labels, tf.int32)
      gamma = tf.gather(self.gamma, labels)
      beta = tf.gather(self.beta, labels)
    else:
      raise ValueError(f"{self.name}: labels must be [N] int classes or "
                       f"[N, {self.num_classes}] mixture weights, got shape "
                       f"{labels.shape}.")
    return gamma[:, None, None, :], beta[:, None, None, :]

  def call(self, x, labels, training=False, cond_scale=None):
    """``cond_scale``: None (the class's gamma and beta), or a float scalar
    ``s`` in [0, 1] giving ``1 + s (gamma - 1)`` and ``s beta``: the transitional
    conditioning's weight (``sagan_tf.training.cond_transition``)."""
    dtype = x.dtype
    x32 = tf.cast(x, tf.float32)
    gamma, beta = self.class_parameters(labels)
    if cond_scale is not None:
      s = tf.cast(cond_scale, tf.float32)
      gamma = 1.0 + s * (gamma - 1.0)
      beta = s * beta
    d = self.decay
    if training and self.group_size:
      (mean, var), (g_mean, g_var, _) = grouped_moments(x32, self.group_size)
      self.moving_mean.assign(sequential_moving_average(self.moving_mean, g_mean, d))
      self.moving_variance.assign(
          sequential_moving_average(self.moving_variance, g_var, d))
    elif training:
      mean, var = batch_moments(x32)
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
    group_size: examples per normalisation group in training (tower BN; 0 = the
      whole global batch). See the module docstring.
  """

  def __init__(self, decay=0.9999, epsilon=1.001e-5, bessel=True, group_size=0,
               **kwargs):
    super().__init__(**kwargs)
    self.decay = float(decay)
    self.epsilon = float(epsilon)
    self.bessel = bool(bessel)
    self.group_size = int(group_size)

  def build(self, input_shape):
    c = int(input_shape[-1])
    self.gamma = self.add_weight(name="gamma", shape=(c,), initializer="ones",
                                 autocast=False)
    self.beta = self.add_weight(name="beta", shape=(c,), initializer="zeros",
                                autocast=False)
    # Equal on every replica by construction: written with no collective.
    self.moving_mean = replica_local_weight(self, "moving_mean", (c,), "zeros")
    self.moving_variance = replica_local_weight(self, "moving_variance", (c,),
                                                "ones")

  def call(self, x, training=False):
    dtype = x.dtype
    x32 = tf.cast(x, tf.float32)
    d = self.decay
    if training and self.group_size:
      (mean, var), (g_mean, g_var, count) = grouped_moments(x32, self.group_size)
      if self.bessel:
        g_var = g_var * count / tf.maximum(count - 1.0, 1.0)
      self.moving_mean.assign(sequential_moving_average(self.moving_mean, g_mean, d))
      self.moving_variance.assign(
          sequential_moving_average(self.moving_variance, g_var, d))
    elif training:
      mean, var, unbiased = batch_moments(x32, bessel=True)
      self.moving_mean.assign(self.moving_mean * d + mean * (1.0 - d))
      self.moving_variance.assign(
          self.moving_variance * d + (unbiased if self.bessel else var) * (1.0 - d))
    else:
      mean, var = self.moving_mean, self.moving_variance
    return tf.cast(_normalize(x32, mean, var, self.gamma, self.beta, self.epsilon),
                   dtype)
