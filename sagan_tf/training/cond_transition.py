"""Transitional conditioning: from unconditional to class-conditional training.

Shahbazi, Danelljan, Paudel and Van Gool, "Collapse by Conditioning: Training
Class-conditional GANs with Limited Data" (ICLR 2022), found that a class-conditional
GAN trained on little data collapses within each class (one sample style per class)
where the same GAN trained without labels does not, and that starting unconditional
and bringing the condition in gradually avoids it. The digits32 runs show that
collapse: the class accuracy of the samples rises and, at the same steps, their
recall falls to near 0 (docs/training.md).

Here the condition enters through a weight ``lambda_t`` in [0, 1] of the global step
``t`` (0-based, the step being trained; the noise of a step is a function of ``t``
too, so a resumed run trains as an uninterrupted one)::

    lambda_t = clip((t - start) / (end - start), 0, 1)    # Config.cond_transition_*

and both networks take it at every forward of the train step (D and G steps):

* the generator's conditional batch norms use ``gamma = 1 + lambda_t (gamma_c - 1)``
  and ``beta = lambda_t beta_c`` (``sagan_tf.layers.normalization``): at 0 a batch
  norm with unit gain and zero offset for every class, at 1 the class's own;
* the projection discriminator's logit is ``psi(h) + lambda_t <embed(c), h>``
  (``sagan_tf.models.discriminator``): at 0 only its unconditional part.

``start = end = 0`` (the default, and every official preset) is off: the models are
called without the weight and compute exactly what they did before.

Deliberate deviations from the paper (whose models are StyleGAN2-ADA's): the
condition's place is SAGAN's (conditional batch norm in G, projection in D), so the
weight scales those; the paper's schedule is in images shown, this one in steps.
Sampling, evaluation and export always use the full condition (``lambda = 1``), which
is what training reaches at ``end``; an evaluation during training before ``end``
(``eval_every``) measures the fully conditional generator the run is heading to,
not the mixture it is trained with at that step.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf


def weight(step, start: int, end: int) -> Optional[tf.Tensor]:
  """``lambda_t``: float32 scalar for the global step ``step``; None when off
  (``end`` 0)."""
  if not end:
    return None
  t = tf.cast(step, tf.float32)
  return tf.clip_by_value((t - float(start)) / float(end - start), 0.0, 1.0)


def call_kwargs(config, step) -> dict:
  """Keyword arguments of every G and D call of the train step at ``step``:
  ``{"cond_scale": lambda_t}``, or ``{}`` (the official calls) when off."""
  scale = weight(step, config.cond_transition_start, config.cond_transition_end)
  return {} if scale is None else {"cond_scale": scale}


def scalars(config, trained_step) -> dict:
  """TensorBoard scalars: ``{"cond/weight": lambda}`` of the step just trained,
  or ``{}`` when off."""
  scale = weight(trained_step, config.cond_transition_start,
                 config.cond_transition_end)
  return {} if scale is None else {"cond/weight": float(scale)}
