"""The SAGAN projection discriminator (official ``discriminator.discriminator_test``).

Layout (see ``sagan_tf.models.architecture`` for the per-size tables)::

    image [N, S, S, 3] -> optimized block (SNConv3x3, ReLU, SNConv3x3, avgpool
                          + shortcut: avgpool, SNConv1x1)
    -> blocks (ReLU, SNConv3x3, ReLU, SNConv3x3, [avgpool]
               + shortcut SNConv1x1 [avgpool] when downsampling or widening),
       attention where asked
    -> ReLU -> sum over H, W -> h [N, C]
    logits = SNDense(1)(h) + sum(h * SNEmbedding(labels), axis=1)

Layer names follow the official scopes (``d_optimized_block1``, ``d_block2``...,
``d_non_local``, ``d_sn_linear``, ``d_embedding``).

Spectral-norm ``u`` updates: the official discriminator writes ``u`` on its real
pass (``update_collection=None``) and not on its fake pass (``'NO_OPS'``). Here
``update_u`` says it explicitly; ``None`` means "write when training". The train
step passes ``update_u=variant.d_update_u_on_fake`` on the fake pass.

Deliberate deviations from the official code:

* Logits have shape `[N]` (official `[N, 1]`).
* Logits are float32 under a mixed-precision policy.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from sagan_tf.models import architecture as arch_lib
from sagan_tf.layers.attention import AttentionPlacement
from sagan_tf.layers.spectral_norm import SNConv2D, SNDense, SNEmbedding


def downsample2x(x):
  return tf.nn.avg_pool2d(x, 2, 2, "VALID")


class DiscriminatorBlock(keras.layers.Layer):
  """Residual block of the official discriminator (``block``/``optimized_block``).

  Args:
    filters: output channels.
    in_channels: input channels (decides whether the shortcut has a 1x1 conv).
    downsample: average-pool by 2.
    optimized: the first block, which takes raw images (no leading ReLU, pooling
      before the shortcut conv).
  """

  def __init__(self, filters, in_channels, downsample=True, optimized=False,
               u_space="out", clip_sigma=False, **kwargs):
    super().__init__(**kwargs)
    sn = dict(u_space=u_space, clip_sigma=clip_sigma)
    self.downsample = bool(downsample)
    self.optimized = bool(optimized)
    self.sn_conv1 = SNConv2D(filters, 3, name="sn_conv1", **sn)
    self.sn_conv2 = SNConv2D(filters, 3, name="sn_conv2", **sn)
    self.learnable_shortcut = optimized or downsample or in_channels != filters
    if self.learnable_shortcut:
      self.sn_conv3 = SNConv2D(filters, 1, name="sn_conv3", **sn)

  def call(self, x, update_u=True, late_u_grad=False):
    sn = dict(update_u=update_u, late_u_grad=late_u_grad)
    h = x if self.optimized else tf.nn.relu(x)
    h = self.sn_conv1(h, **sn)
    h = self.sn_conv2(tf.nn.relu(h), **sn)
    if self.downsample:
      h = downsample2x(h)
    s = x
    if self.optimized:
      s = self.sn_conv3(downsample2x(s), **sn)
    elif self.learnable_shortcut:
      s = self.sn_conv3(s, **sn)
      if self.downsample:
        s = downsample2x(s)
    return s + h


class Discriminator(AttentionPlacement, keras.Model):
  """Class-conditional projection discriminator.

  Args:
    image_size: 32, 64 or 128.
    df_dim: base channel width (official 64).
    num_classes: number of classes (official 1000).
    attention: resolutions after whose block a self-attention block sits; None
      takes the architecture's default.
    variant: "official" or "tfgan_estimator" numerics.

  Call: ``discriminator(images, labels, training=False, update_u=None,
  return_attention=False, late_u_grad=False, cond_scale=None)``: images
  `[N, S, S, 3]` in [-1, 1], labels `[N]` int -> logits `[N]` float32.
  ``late_u_grad``: every SN layer's W-gradient through ``u W^T`` is taken at the
  post-iteration ``u'`` (TF 1.x RefVariable reads; see
  ``sagan_tf.layers.spectral_norm``). ``cond_scale``: None (the official logit), or
  the transitional conditioning's weight in [0, 1] multiplying the projection term
  (``sagan_tf.training.cond_transition``).
  """

  def __init__(self, image_size=128, df_dim=64, num_classes=1000, attention=None,
               variant="official", name="discriminator", **kwargs):
    super().__init__(name=name, **kwargs)
    arch = arch_lib.architecture(image_size)
    self.image_size = int(image_size)
    self.df_dim = int(df_dim)
    self.num_classes = int(num_classes)
    self.variant = arch_lib.variant(variant)
    v = self.variant
    sn = dict(u_space=v.u_space, clip_sigma=v.clip_sigma)
    self._init_attention(
        "d", arch.d_attention if attention is None else attention, v.u_space)
    self.block_names = []
    resolution, channels = self.image_size, 3
    valid = set()
    for i, (mult, down) in enumerate(arch.d_blocks, start=1):
      name_i = "d_optimized_block1" if i == 1 else f"d_block{i}"
      filters = mult * self.df_dim
      setattr(self, name_i, DiscriminatorBlock(
          filters, channels, downsample=down, optimized=(i == 1), name=name_i,
          **sn))
      self.block_names.append(name_i)
      channels = filters
      resolution //= 2 if down else 1
      valid.add(resolution)
      self._maybe_add_attention(name_i, resolution)
    self._check_attention(valid, image_size)
    self.feature_dim = channels
    # The head runs in float32 whatever the policy (logits feed the losses).
    self.d_sn_linear = SNDense(1, name="d_sn_linear", dtype="float32", **sn)
    self.d_embedding = SNEmbedding(num_classes, channels, name="d_embedding",
                                    dtype="float32", **sn)

  def call(self, images, labels, training=False, update_u=None,
           return_attention=False, late_u_grad=False, cond_scale=None):
    if update_u is None:
      update_u = bool(training)
    sn = dict(update_u=update_u, late_u_grad=late_u_grad)
    x = images
    maps = {}
    for name_i in self.block_names:
      x = getattr(self, name_i)(x, **sn)
      x = self._attend(name_i, x, sn, maps)
    h = tf.cast(tf.reduce_sum(tf.nn.relu(x), [1, 2]), tf.float32)
    out = self.d_sn_linear(h, **sn)[:, 0]
    emb = self.d_embedding(labels, **sn)
    projection = tf.reduce_sum(h * tf.cast(emb, h.dtype), axis=1)
    if cond_scale is not None:  # transitional conditioning (training only)
      projection = tf.cast(cond_scale, projection.dtype) * projection
    out = out + projection
    if return_attention:
      return out, maps
    return out

  def build_variables(self):
    """Creates every variable with a dummy forward that changes no state."""
    if not self.built or not self.weights:
      s = self.image_size
      self(tf.zeros([1, s, s, 3]), tf.zeros([1], tf.int32), training=False,
           update_u=False)
    return self
