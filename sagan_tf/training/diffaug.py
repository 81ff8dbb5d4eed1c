"""DiffAugment: differentiable augmentation of every image D sees (Zhao et al. 2020).

"Differentiable Augmentation for Data-Efficient GAN Training" (Zhao, Liu, Lin, Zhu,
Han; NeurIPS 2020) augments the real and the generated images with the same
random, differentiable transformations before each D pass, in the D step and in
the G step, so that D cannot memorise a small data set and G's gradient passes
through the augmentation. ``Config.diffaug`` names the policies, comma-separated
(``"color,translation,cutout"``; ``""`` = off, the default of every preset, so
runs that follow the official SAGAN code are unchanged)::

    x = augment(images, ("color", "translation"), seed)   # [B, H, W, C] -> same

The policies, applied in the order named, each with its own draw per example:

* ``color``: three steps in this order. Brightness: add ``b ~ U[-0.5, 0.5)``.
  Saturation: ``(x - m) * s + m`` with ``m`` the mean over the channels of each
  pixel and ``s ~ U[0, 2)``. Contrast: ``(x - m) * c + m`` with ``m`` the mean over
  the whole image (pixels and channels) and ``c ~ U[0.5, 1.5)``.
* ``translation``: an integer shift ``(dy, dx)``, each uniform over
  ``[-S // 8, S // 8]`` (both ends included; ``S`` the height resp. width):
  ``out[i, j] = x[i - dy, j - dx]``, zero where that pixel lies outside the image.
* ``cutout``: a square of side ``S // 2`` set to zero; its centre is uniform over
  rows and columns ``0 .. S - (side % 2)`` (so ``0 .. S`` for an even side: a
  square centred on the border keeps half of itself), its rows
  ``centre - side // 2`` to ``centre - side // 2 + side - 1``; the part outside the
  image is clipped away.

These are the reference implementation's policies (mit-han-lab/data-efficient-gans,
``DiffAugment_tf.py``: the same distributions, sizes, zero fill, clipping and
order), written anew. Value range: SAGAN's images are in [-1, 1] (G ends in tanh,
the data are scaled to [-1, 1]), and so are the reference's (its StyleGAN2 code
feeds D images in ``drange_net = [-1, 1]``, its BigGAN code normalises with mean
and std 0.5), so the constants apply as they are: brightness moves an image by up
to a quarter of its range, saturation and contrast (affine in ``x``) do not depend
on the range, and the zeros of translation and cutout are mid-grey. Nothing is
clipped back into [-1, 1] (the reference does not either).

Randomness: every draw is stateless, from the ``seed`` given (the train step
folds the stream of the D pass, real or fake, into its noise seed of
``(config.seed, step, substep, replica)``: ``sagan_tf.training.step``), so a
resumed run augments exactly as an uninterrupted one. Each of the five draws
(brightness, saturation, contrast, translation, cutout) has its own fixed fold
of the seed, whatever the other policies named.

Deliberate deviations from the reference:

* Stateless random ops (reference: stateful ``tf.random.uniform``).
* Translation is a product with one-hot shift matrices and cutout a product with
  a comparison mask (reference: ``gather_nd`` on a padded image and
  ``scatter_nd``): the same values (exact: each output is one input times 1.0 plus
  zeros), gradients without gather/scatter, deterministic on every device and
  compiled by XLA.
* Images are channels-last ``[B, H, W, C]`` only (the reference transposes for
  channels-first); non-square images take each axis's own ``S``.
"""
from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from sagan_tf.config import DIFFAUG_POLICIES

# The fold of the seed for each draw (fixed, whatever policies are named).
_BRIGHTNESS, _SATURATION, _CONTRAST, _TRANSLATION, _CUTOUT = range(5)


def _seed(seed, draw):
  return tf.random.experimental.stateless_fold_in(tf.cast(seed, tf.int64), draw)


def _per_example(x, seed, draw, low, high):
  """``[B, 1, 1, 1]`` uniform in [low, high), in the dtype of ``x``."""
  u = tf.random.stateless_uniform([tf.shape(x)[0], 1, 1, 1], seed=_seed(seed, draw),
                                  minval=low, maxval=high)
  return tf.cast(u, x.dtype)


def brightness(x, seed):
  return x + _per_example(x, seed, _BRIGHTNESS, -0.5, 0.5)


def saturation(x, seed):
  mean = tf.reduce_mean(x, axis=3, keepdims=True)
  return (x - mean) * _per_example(x, seed, _SATURATION, 0.0, 2.0) + mean


def contrast(x, seed):
  mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
  return (x - mean) * _per_example(x, seed, _CONTRAST, 0.5, 1.5) + mean


def translation_shifts(seed, batch, height: int, width: int):
  """``[batch, 2]`` int32 ``(dy, dx)``, uniform over ``[-S // 8, S // 8]``."""
  dy, dx = height // 8, width // 8
  u = tf.random.stateless_uniform([batch, 2], seed=_seed(seed, _TRANSLATION))
  # Each axis from its own uniform column: floor(u * (2s + 1)) - s, s = S // 8.
  spans = tf.constant([2 * dy + 1, 2 * dx + 1], tf.float32)
  shifts = tf.minimum(tf.floor(u * spans), spans - 1.0) - tf.constant([dy, dx],
                                                                       tf.float32)
  return tf.cast(shifts, tf.int32)


def _shift_matrix(shift, n: int, dtype):
  """``[B, n, n]`` with ``M[b, i, k] = 1`` iff ``k == i - shift[b]``."""
  source = tf.range(n)[None, :] - shift[:, None]  # [B, n]; out of range: no 1
  return tf.one_hot(source, n, dtype=dtype)


def translate(x, shifts):
  """``out[b, i, j] = x[b, i - dy_b, j - dx_b]`` (zero outside); ``shifts`` [B, 2]."""
  h, w = x.shape[1], x.shape[2]
  x = tf.einsum("bik,bkwc->biwc", _shift_matrix(shifts[:, 0], h, x.dtype), x)
  return tf.einsum("bjk,bhkc->bhjc", _shift_matrix(shifts[:, 1], w, x.dtype), x)


def translation(x, seed):
  return translate(x, translation_shifts(seed, tf.shape(x)[0], x.shape[1],
                                         x.shape[2]))


def cutout_corners(seed, batch, height: int, width: int):
  """``[batch, 2]`` int32 top-left ``(row, col)`` of the cutout square (may be
  negative: the square is clipped at the image border)."""
  sides = (height // 2, width // 2)
  # Centres uniform over 0 .. S - side % 2 (S + 1 - side % 2 values).
  counts = tf.constant([height + 1 - sides[0] % 2, width + 1 - sides[1] % 2],
                       tf.float32)
  u = tf.random.stateless_uniform([batch, 2], seed=_seed(seed, _CUTOUT))
  centres = tf.minimum(tf.floor(u * counts), counts - 1.0)
  return tf.cast(centres, tf.int32) - tf.constant([sides[0] // 2, sides[1] // 2])


def cut(x, corners):
  """``x`` with the square of side ``S // 2`` at ``corners`` [B, 2] zeroed."""
  h, w = x.shape[1], x.shape[2]
  rows = tf.range(h)[None, :] - corners[:, :1]  # [B, H]: row within the square
  cols = tf.range(w)[None, :] - corners[:, 1:]
  in_rows = (rows >= 0) & (rows < h // 2)
  in_cols = (cols >= 0) & (cols < w // 2)
  inside = in_rows[:, :, None] & in_cols[:, None, :]  # [B, H, W]
  return x * tf.cast(~inside, x.dtype)[..., None]


def cutout(x, seed):
  return cut(x, cutout_corners(seed, tf.shape(x)[0], x.shape[1], x.shape[2]))


_STEPS = {"color": (brightness, saturation, contrast),
          "translation": (translation,),
          "cutout": (cutout,)}
assert tuple(_STEPS) == DIFFAUG_POLICIES


def augment(images, policies: Sequence[str], seed):
  """DiffAugment of a batch.

  Args:
    images: ``[B, H, W, C]`` float images (in [-1, 1] for SAGAN; any float dtype).
    policies: names from ``DIFFAUG_POLICIES`` in the order to apply them
      (``sagan_tf.config.parse_diffaug``); empty returns ``images`` unchanged.
    seed: ``[2]`` integer stateless seed; the same seed gives the same batch.

  Returns:
    ``[B, H, W, C]``, same dtype, differentiable with respect to ``images``.
  """
  x = images
  for name in policies:
    for step in _STEPS[name]:
      x = step(x, seed)
  return x
