"""The SAGAN self-attention block (official ``non_local.sn_non_local_block_sim``).

For x `[N, H, W, C]`::

    theta = SNConv1x1(C/8)(x)                      -> [N, HW, C/8]
    phi   = maxpool2x2(SNConv1x1(C/8)(x))          -> [N, HW/4, C/8]
    g     = maxpool2x2(SNConv1x1(C/2)(x))          -> [N, HW/4, C/2]
    attn  = softmax(theta phi^T)  (over the pooled positions)  [N, HW, HW/4]
    o     = SNConv1x1(C)(reshape(attn g, [N, H, W, C/2]))
    out   = x + sigma_ratio * o                    (sigma_ratio initialised to 0)

The 1x1 convolutions have no bias. Sub-layer names follow the official scopes
(``sn_conv_theta``, ``sn_conv_phi``, ``sn_conv_g``, ``sn_conv_attn``).

Deliberate deviations from the official code:

* The softmax runs in float32 under a mixed-precision policy.
* Reshapes use the dynamic batch size (the official code used the static one).
* ``return_attention=True`` also returns the attention map (not in the official code).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from sagan_tf.layers.spectral_norm import SNConv2D


class SelfAttention(keras.layers.Layer):
  """Self-attention with a zero-initialised gate ``sigma_ratio``.

  Args:
    u_space, clip_sigma: spectral-norm variant of the 1x1 convs (see
      ``sagan_tf.layers.spectral_norm``); TF-GAN uses ``W / sigma`` here even where its
      other layers clip, so ``clip_sigma`` defaults to False.
  """

  def __init__(self, u_space="out", clip_sigma=False, **kwargs):
    super().__init__(**kwargs)
    self.u_space = u_space
    self.clip_sigma = clip_sigma

  def build(self, input_shape):
    c = int(input_shape[-1])
    if c % 8:
      raise ValueError(f"SelfAttention needs channels divisible by 8, got {c}.")
    # The sub-layers are created here, at the first call: give them this layer's
    # dtype policy, not whatever global policy is in force by then.
    sn = dict(kernel_size=1, use_bias=False, u_space=self.u_space,
              clip_sigma=self.clip_sigma, dtype=self.dtype_policy)
    self.theta = SNConv2D(c // 8, name="sn_conv_theta", **sn)
    self.phi = SNConv2D(c // 8, name="sn_conv_phi", **sn)
    self.g = SNConv2D(c // 2, name="sn_conv_g", **sn)
    self.attn_conv = SNConv2D(c, name="sn_conv_attn", **sn)
    self.theta.build(input_shape)
    self.phi.build(input_shape)
    self.g.build(input_shape)
    self.attn_conv.build(tuple(input_shape[:-1]) + (c // 2,))
    self.sigma_ratio = self.add_weight(name="sigma_ratio", shape=(),
                                       initializer="zeros", autocast=False)

  def call(self, x, update_u=True, return_attention=False, late_u_grad=False):
    sn = dict(update_u=update_u, late_u_grad=late_u_grad)
    shape = tf.shape(x)
    n, h, w = shape[0], shape[1], shape[2]
    c = x.shape[-1]
    pool = lambda t: tf.nn.max_pool2d(t, 2, 2, "VALID")
    theta = tf.reshape(self.theta(x, **sn), [n, h * w, c // 8])
    phi = tf.reshape(pool(self.phi(x, **sn)), [n, -1, c // 8])
    logits = tf.matmul(theta, phi, transpose_b=True)
    attn = tf.nn.softmax(tf.cast(logits, tf.float32))
    g = tf.reshape(pool(self.g(x, **sn)), [n, -1, c // 2])
    attn_g = tf.reshape(tf.matmul(tf.cast(attn, g.dtype), g), [n, h, w, c // 2])
    o = self.attn_conv(attn_g, **sn)
    out = x + tf.cast(self.sigma_ratio, x.dtype) * o
    if return_attention:
      return out, attn
    return out


class AttentionPlacement:
  """Mixin for a model whose attention blocks follow some of its residual blocks.

  The generator and the discriminator both place a ``SelfAttention`` after the
  first block whose output has one of ``attention_resolutions``; the layer is named
  ``<prefix>_non_local`` (the official scope) when there is one, else
  ``<prefix>_non_local_<resolution>``.
  """

  def _init_attention(self, prefix, resolutions, u_space):
    self.attention_resolutions = tuple(resolutions)
    self._attention_after = {}  # block name -> (attention layer name, resolution)
    self._attention_prefix = prefix
    self._attention_u_space = u_space

  def _maybe_add_attention(self, block_name, resolution):
    placed = {r for _, r in self._attention_after.values()}
    if resolution not in self.attention_resolutions or resolution in placed:
      return
    name = f"{self._attention_prefix}_non_local"
    if len(self.attention_resolutions) > 1:
      name += f"_{resolution}"
    # The attention's 1x1 convs divide by sigma in both variants (TF-GAN too).
    setattr(self, name, SelfAttention(u_space=self._attention_u_space,
                                      clip_sigma=False, name=name))
    self._attention_after[block_name] = (name, resolution)

  def _check_attention(self, valid, image_size):
    bad = sorted(set(self.attention_resolutions) - set(valid))
    if bad:
      raise ValueError(f"{type(self).__name__} attention resolutions {bad} are not "
                       f"block outputs at image_size {image_size}; pick from "
                       f"{sorted(valid)}.")

  @property
  def attention_layers(self):
    """List of (resolution, SelfAttention) in forward order."""
    return [(r, getattr(self, n)) for n, r in self._attention_after.values()]

  def _attend(self, block_name, x, sn, maps):
    """Applies the attention that follows ``block_name`` (if any), recording its map.

    ``sn``: the spectral-norm call arguments (``update_u``, ``late_u_grad``).
    """
    if block_name not in self._attention_after:
      return x
    name, resolution = self._attention_after[block_name]
    x, maps[resolution] = getattr(self, name)(x, return_attention=True, **sn)
    return x
