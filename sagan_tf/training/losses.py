"""GAN losses of the official SAGAN code (``model.py``), per example.

Two losses, chosen by name (``Config.loss``):

* ``"hinge"`` (official default ``hinge_loss``)::

      d_loss_real = relu(1 - D(x)),  d_loss_fake = relu(1 + D(G(z))),
      g_loss = -D(G(z))

* ``"kl"`` (official ``kl_loss``, the non-saturating loss written with softplus)::

      d_loss_real = softplus(-D(x)),  d_loss_fake = softplus(D(G(z))),
      g_loss = -D(G(z))

  (the official ``_get_g_loss_KL`` is ``-D(G(z))`` too, not ``softplus(-D(G(z)))``).

The D loss takes the logits of one D step (real batch and fakes from the same step);
the G loss takes the logits of the separate D pass on fresh fakes in the G step. So a
loss is a pair of functions rather than one ``(real, fake) -> (d, g)`` function::

    loss = get_loss("hinge")
    d_per_example, parts = loss.d(real_logits, fake_logits)
    g_per_example = loss.g(fake_logits)

Deliberate deviations from the official code:

* Losses are returned per example (`[N]`), not averaged, so that the train step can
  average over the *global* batch across replicas (``tf.nn.compute_average_loss``).
  With equal real and fake batch sizes, the mean of ``real + fake`` per example is
  the official ``mean(real) + mean(fake)``.
* Losses are computed in float32 whatever the logits' dtype.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Tuple

import tensorflow as tf

PerExample = tf.Tensor  # float32 [N]


def _f32(x):
  return tf.cast(x, tf.float32)


def hinge_d(real_logits, fake_logits) -> Tuple[PerExample, Dict[str, PerExample]]:
  """Hinge D loss: (relu(1 - real) + relu(1 + fake), parts), each `[N]`."""
  real = tf.nn.relu(1.0 - _f32(real_logits))
  fake = tf.nn.relu(1.0 + _f32(fake_logits))
  return real + fake, {"d_loss_real": real, "d_loss_fake": fake}


def kl_d(real_logits, fake_logits) -> Tuple[PerExample, Dict[str, PerExample]]:
  """KL (softplus) D loss: (softplus(-real) + softplus(fake), parts), each `[N]`."""
  real = tf.nn.softplus(-_f32(real_logits))
  fake = tf.nn.softplus(_f32(fake_logits))
  return real + fake, {"d_loss_real": real, "d_loss_fake": fake}


def negative_logit_g(fake_logits) -> PerExample:
  """G loss of both official losses: ``-D(G(z))``, `[N]`."""
  return -_f32(fake_logits)


class Loss(NamedTuple):
  """A GAN loss: ``d(real_logits, fake_logits) -> (per_example, parts)`` and
  ``g(fake_logits) -> per_example``; parts has ``d_loss_real`` and ``d_loss_fake``."""
  d: Callable[..., Tuple[PerExample, Dict[str, PerExample]]]
  g: Callable[..., PerExample]


LOSSES: Dict[str, Loss] = {
    "hinge": Loss(d=hinge_d, g=negative_logit_g),
    "kl": Loss(d=kl_d, g=negative_logit_g),
}


def get_loss(name: str) -> Loss:
  """The loss called ``name`` ("hinge" or "kl")."""
  if name not in LOSSES:
    raise ValueError(f"Unknown loss {name!r}; choose one of {sorted(LOSSES)}.")
  return LOSSES[name]
