"""Mode-seeking regularisation of the generator (Mao et al., CVPR 2019).

"Mode Seeking Generative Adversarial Networks for Diverse Image Synthesis" (Mao,
Lee, Tseng, Ma, Yang) answers the collapse of a conditional generator onto one
output per condition by rewarding it for mapping different noise of one condition
to different images. The G loss gains::

    ms_weight / (mean |G(z_1, c) - G(z_2, c)| / mean |z_1 - z_2| + 1e-5)

with the means over every pixel, channel and pair (the MSGAN code's ``lz`` ratio
and its ``1 / (lz + eps)``). The digits32 runs show that collapse: once the
samples are of their class, each class has nearly one style (docs/training.md).

Pairs: the G step's replica batch of ``2P`` examples is split in halves, and the
second half takes the first half's labels (``pair_labels``), so example ``i`` and
``i + P`` share their class and differ in their noise; the ratio is taken over the
``P`` pairs of the replica, on the generator's output before any DiffAugment. The
noise itself is unchanged (the step's seeded draw), so a resumed run draws the
same pairs. The D steps are untouched.

``ms_weight = 0`` (default, and every preset) is off: the G step draws and
computes exactly what it did before.

Deliberate deviations from the paper's code: the term is per replica and, like the
losses, divided by the number of replicas before the gradients are summed, so the
update is that of the replicas' mean term; an odd replica batch is refused (the
paper's pairs come from two batches).
"""
from __future__ import annotations

import tensorflow as tf

EPSILON = 1e-5


def pair_labels(labels: tf.Tensor) -> tf.Tensor:
  """``[2P]`` labels -> the first half repeated: ``[l_0 .. l_{P-1}, l_0 .. l_{P-1}]``."""
  half = labels.shape[0] // 2
  return tf.concat([labels[:half], labels[:half]], axis=0)


def term(images: tf.Tensor, z: tf.Tensor) -> tf.Tensor:
  """``1 / (mean |x_a - x_b| / mean |z_a - z_b| + eps)`` over the halves' pairs.

  Args:
    images: `[2P, H, W, C]` generator outputs, pair ``(i, i + P)``.
    z: `[2P, z_dim]` their noise.
  Returns:
    float32 scalar (without the weight).
  """
  half = images.shape[0] // 2
  images = tf.cast(images, tf.float32)
  image_gap = tf.reduce_mean(tf.abs(images[:half] - images[half:2 * half]))
  z_gap = tf.reduce_mean(tf.abs(z[:half] - z[half:2 * half]))
  return 1.0 / (image_gap / z_gap + EPSILON)


def check_replica_batch(global_batch: int, replica_batch: int) -> None:
  """ValueError unless each replica's batch splits into pairs."""
  if replica_batch % 2:
    raise ValueError(
        f"ms_weight pairs the examples of each replica's batch: the replica "
        f"batch is {replica_batch} (batch_size={global_batch} over "
        f"{global_batch // replica_batch} replicas); make it even.")
