"""The SAGAN generator (official ``generator.generator_test``), for 32, 64 and 128 px.

Layout (see ``sagan_tf.models.architecture`` for the per-size tables)::

    z [N, z_dim] -> SNDense -> [N, 4, 4, g_in*gf]
    -> up blocks (CBN, ReLU, x2 nearest, SNConv3x3, CBN, ReLU, SNConv3x3
                  + shortcut: x2 nearest, SNConv1x1), attention where asked
    -> BatchNorm (g_bn) -> ReLU -> SNConv3x3 -> 3 -> tanh

Layer names follow the official variable scopes (``g_snh0``, ``g_block1``...,
``g_non_local``, ``g_bn``, ``g_snconv_last``) so the checkpoint map stays readable.

Spectral-norm ``u`` updates: the official generator writes ``u`` on every forward
pass, in training and inference alike; ``update_u=None`` does that for the official
variant (and follows ``training`` for the TF-GAN variant).

Deliberate deviations from the official code:

* Nearest-neighbour x2 upsampling is written with reshape and tile: identical values
  to ``tf.image.resize_nearest_neighbor`` at x2, and compilable by XLA (there is no
  XLA kernel for ``ResizeNearestNeighborGrad``).
* The output is cast to float32 under a mixed-precision policy.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from sagan_tf.models import architecture as arch_lib
from sagan_tf.layers.attention import AttentionPlacement
from sagan_tf.layers.normalization import BatchNorm, ConditionalBatchNorm
from sagan_tf.layers.spectral_norm import SNConv2D, SNDense


def upsample2x(x):
  """Nearest-neighbour x2 upsampling `[N, H, W, C]` -> `[N, 2H, 2W, C]`."""
  shape = tf.shape(x)
  n, h, w = shape[0], shape[1], shape[2]
  c = x.shape[-1]
  x = tf.reshape(x, [n, h, 1, w, 1, c])
  x = tf.tile(x, [1, 1, 2, 1, 2, 1])
  return tf.reshape(x, [n, h * 2, w * 2, c])


class GeneratorBlock(keras.layers.Layer):
  """Residual up block of the official generator (``generator.block``)."""

  def __init__(self, filters, num_classes, variant, bn_group_size=0, **kwargs):
    super().__init__(**kwargs)
    sn = dict(u_space=variant.u_space, clip_sigma=variant.clip_sigma)
    cbn = dict(decay=variant.cbn_decay, epsilon=variant.cbn_epsilon,
               group_size=bn_group_size)
    self.cbn_0 = ConditionalBatchNorm(num_classes, name="cbn_0", **cbn)
    self.snconv1 = SNConv2D(filters, 3, name="snconv1", **sn)
    self.cbn_1 = ConditionalBatchNorm(num_classes, name="cbn_1", **cbn)
    self.snconv2 = SNConv2D(filters, 3, name="snconv2", **sn)
    self.snconv3 = SNConv2D(filters, 1, name="snconv3", **sn)

  def call(self, x, labels, training=False, update_u=True, late_u_grad=False,
           cond_scale=None):
    sn = dict(update_u=update_u, late_u_grad=late_u_grad)
    h = tf.nn.relu(self.cbn_0(x, labels, training=training, cond_scale=cond_scale))
    h = self.snconv1(upsample2x(h), **sn)
    h = tf.nn.relu(self.cbn_1(h, labels, training=training, cond_scale=cond_scale))
    h = self.snconv2(h, **sn)
    return self.snconv3(upsample2x(x), **sn) + h


class Generator(AttentionPlacement, keras.Model):
  """Class-conditional SAGAN generator.

  Args:
    image_size: 32, 64 or 128.
    gf_dim: base channel width (official 64).
    num_classes: number of classes (official 1000).
    z_dim: noise size (official 128).
    attention: resolutions after whose block a self-attention block sits; None
      takes the architecture's default (32 for 64/128 px, 16 for 32 px).
    variant: "official" or "tfgan_estimator" numerics.
    bn_group_size: examples per batch-norm group in training (the official
      towers' 64; 0 = the whole global batch). See ``sagan_tf.layers.normalization``.

  Call: ``generator(z, labels, training=False, update_u=None,
  return_attention=False, late_u_grad=False, cond_scale=None)`` with z
  `[N, z_dim]` float and labels `[N]` int -> images `[N, S, S, 3]` in [-1, 1] (and,
  with ``return_attention``, a dict resolution -> attention map `[N, r*r, r*r/4]`).
  ``cond_scale``: None (the official generator), or the transitional conditioning's
  weight in [0, 1] for every conditional batch norm
  (``sagan_tf.training.cond_transition``).
  ``late_u_grad``: every SN layer's W-gradient through ``u W^T`` is taken at the
  post-iteration ``u'`` (TF 1.x RefVariable reads; see ``sagan_tf.layers.spectral_norm``).
  """

  def __init__(self, image_size=128, gf_dim=64, num_classes=1000, z_dim=128,
               attention=None, variant="official", bn_group_size=0,
               name="generator", **kwargs):
    super().__init__(name=name, **kwargs)
    arch = arch_lib.architecture(image_size)
    self.image_size = int(image_size)
    self.gf_dim = int(gf_dim)
    self.num_classes = int(num_classes)
    self.z_dim = int(z_dim)
    self.variant = arch_lib.variant(variant)
    v = self.variant
    sn = dict(u_space=v.u_space, clip_sigma=v.clip_sigma)
    self._in_channels = arch.g_in * self.gf_dim
    self.g_snh0 = SNDense(4 * 4 * self._in_channels, name="g_snh0", **sn)
    self._init_attention(
        "g", arch.g_attention if attention is None else attention, v.u_space)
    self.block_names = []
    resolution = 4
    valid = set()
    for i, mult in enumerate(arch.g_blocks, start=1):
      name_i = f"g_block{i}"
      setattr(self, name_i, GeneratorBlock(mult * self.gf_dim, num_classes, v,
                                           bn_group_size, name=name_i))
      self.block_names.append(name_i)
      resolution *= 2
      valid.add(resolution)
      self._maybe_add_attention(name_i, resolution)
    self._check_attention(valid, image_size)
    self.g_bn = BatchNorm(decay=v.bn_decay, epsilon=v.bn_epsilon,
                          bessel=v.bn_bessel, group_size=bn_group_size,
                          name="g_bn")
    self.g_snconv_last = SNConv2D(3, 3, name="g_snconv_last", **sn)

  def call(self, z, labels, training=False, update_u=None,
           return_attention=False, late_u_grad=False, cond_scale=None):
    if update_u is None:
      update_u = bool(training) or self.variant.g_update_u_at_inference
    sn = dict(update_u=update_u, late_u_grad=late_u_grad)
    x = self.g_snh0(z, **sn)
    x = tf.reshape(x, [-1, 4, 4, self._in_channels])
    maps = {}
    for name_i in self.block_names:
      x = getattr(self, name_i)(x, labels, training=training,
                                cond_scale=cond_scale, **sn)
      x = self._attend(name_i, x, sn, maps)
    x = tf.nn.relu(self.g_bn(x, training=training))
    x = self.g_snconv_last(x, **sn)
    out = tf.cast(tf.tanh(x), tf.float32)
    if return_attention:
      return out, maps
    return out

  def build_variables(self):
    """Creates every variable with a dummy forward that changes no state."""
    if not self.built or not self.weights:
      self(tf.zeros([1, self.z_dim]), tf.zeros([1], tf.int32), training=False,
           update_u=False)
    return self
