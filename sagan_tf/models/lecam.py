"""LeCam regularisation of the discriminator (Tseng et al. 2021).

"Regularizing Generative Adversarial Networks under Limited Data" (Tseng, Jiang,
Liu, Yang, Yang; CVPR 2021) anchors D's outputs to moving averages of its own
outputs: ``alpha_R`` and ``alpha_F``, exponential moving averages of the mean D
output on real and on generated images. The D loss gains::

    lecam_weight * (mean_i relu(D(x_i) - alpha_F)^2 + mean_i relu(alpha_R - D(G(z_i)))^2)

This is the official code's term (google/lecam-gan, ``lecam_reg`` in
``biggan_cifar/losses.py``), with the ``relu``: the paper's equation (3) writes
``||D(x) - alpha_F||^2 + ||D(G(z)) - alpha_R||^2`` without it, and the official code
penalises only real outputs above ``alpha_F`` and fake outputs below ``alpha_R``.
``D`` is the logit D returns (the output the hinge loss takes), the means are over
the global batch, and the averages carry no gradient.

Schedule, as the official BigGAN training (``losses.loss_hinge_dis`` and
``train_fns``; ``ema_losses(start_itr=1000)``, decay 0.99), once per D step, at
global step ``t`` (0-based, the step being trained):

1. ``alpha_R = d * alpha_R + (1 - d) * mean(D(x))`` and the same for ``alpha_F``
   with ``mean(D(G(z)))``, where ``d = 0`` while ``t < lecam_start`` (the averages
   then hold the latest batch's means) and ``d = lecam_decay`` afterwards;
2. the term, with the averages just updated, is added to the D loss only when
   ``t > lecam_start`` (off while ``lecam_weight`` is 0).

``alpha_R`` and ``alpha_F`` are two float32 scalar variables of ``LeCam``, which is
checkpointed as the run state's ``lecam`` item (``sagan_tf.run.state``); it lives
beside ``ema.py`` because the run state builds it and ``training/`` imports
``run/``, not the reverse. Under a strategy they are mirrored (create ``LeCam``
inside ``strategy.scope()``): ``update`` runs in the replica context, takes the
means over the global batch with one all-reduce, so every replica computes the
same value, and writes replica 0's (``ONLY_FIRST_REPLICA``).

Deliberate deviations from the official code:

* The averages start at 0 (official: 1000). Nothing reads the start value when
  ``lecam_start > 0``, since the first update copies the batch means.
* With ``d_steps > 1`` both codes update once per D step; the official code has no
  replicas (one ``torch.mean`` over the batch), here the mean is over the global
  batch across replicas, which is the same number.
"""
from __future__ import annotations

import tensorflow as tf


class LeCam(tf.Module):
  """The two moving averages of D's outputs and the LeCam term.

  Args:
    weight: ``lambda`` (``Config.lecam_weight``); 0 computes no term.
    decay: the averages' decay (``Config.lecam_decay``).
    start_step: ``Config.lecam_start`` (see the module docstring).

  Attributes:
    real_mean, fake_mean: float32 scalar variables ``alpha_R``, ``alpha_F``.
  """

  def __init__(self, weight: float, decay: float, start_step: int = 0):
    super().__init__(name="lecam")
    if weight < 0 or not 0.0 <= decay < 1.0 or start_step < 0:
      raise ValueError(f"LeCam needs weight >= 0, decay in [0, 1) and start_step "
                       f">= 0; got {weight!r}, {decay!r}, {start_step!r}.")
    self.weight = float(weight)
    self.decay = float(decay)
    self.start_step = int(start_step)
    agg = tf.VariableAggregation.ONLY_FIRST_REPLICA
    self.real_mean = tf.Variable(0.0, trainable=False, name="real_mean",
                                 aggregation=agg)
    self.fake_mean = tf.Variable(0.0, trainable=False, name="fake_mean",
                                 aggregation=agg)

  def update(self, real_logits, fake_logits, step, global_batch: int):
    """Moves the averages towards this D step's global-batch means.

    Args:
      real_logits, fake_logits: this replica's D outputs ``[N]`` (any float dtype).
      step: the global step being trained (int64 scalar).
      global_batch: the examples per D pass over all replicas.

    Returns:
      ``(alpha_R, alpha_F)``, the updated values as float32 tensors (the same on
      every replica).
    """
    sums = tf.stack([tf.reduce_sum(tf.cast(real_logits, tf.float32)),
                     tf.reduce_sum(tf.cast(fake_logits, tf.float32))])
    sums = tf.stop_gradient(sums)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None:  # the replica step; None in a cross-replica context
      sums = ctx.all_reduce(tf.distribute.ReduceOp.SUM, sums)
    means = sums / float(global_batch)
    d = tf.where(tf.cast(step, tf.int64) < self.start_step, 0.0, self.decay)
    real = d * self.real_mean + (1.0 - d) * means[0]
    fake = d * self.fake_mean + (1.0 - d) * means[1]
    self.real_mean.assign(real)
    self.fake_mean.assign(fake)
    return real, fake

  def active(self, step):
    """Whether the term is added at ``step`` (a bool tensor)."""
    return tf.logical_and(self.weight > 0,
                          tf.cast(step, tf.int64) > self.start_step)

  def penalty(self, real_logits, fake_logits, alpha_r, alpha_f):
    """``weight * (relu(D(x) - alpha_F)^2 + relu(alpha_R - D(G(z)))^2)`` per
    example ``[N]`` float32 (the global-batch average of it is the term)."""
    real = tf.cast(real_logits, tf.float32)
    fake = tf.cast(fake_logits, tf.float32)
    return self.weight * (tf.square(tf.nn.relu(real - alpha_f))
                          + tf.square(tf.nn.relu(alpha_r - fake)))

  def term(self, real_logits, fake_logits, step, global_batch: int):
    """Updates the averages, then returns the per-example term ``[N]`` float32,
    zero where ``active(step)`` is False (see the module docstring)."""
    alpha_r, alpha_f = self.update(real_logits, fake_logits, step, global_batch)
    on = tf.cast(self.active(step), tf.float32)
    return on * self.penalty(real_logits, fake_logits, alpha_r, alpha_f)
