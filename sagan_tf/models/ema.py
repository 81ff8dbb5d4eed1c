"""Exponential moving average (EMA) of the generator weights, BigGAN-style.

The official SAGAN code keeps no EMA; BigGAN (Brock et al. 2019) samples from an
EMA generator (decay 0.9999, averaging from iteration 20,000) and later SAGAN/BigGAN
ports do the same. ``EMA`` keeps a second ``Generator`` with the same constructor
arguments, initialised with a copy of the live generator's weights::

    ema = EMA(generator, decay=0.9999, start_step=20000)  # inside strategy.scope()
    ...after each G step...
    ema.update(generator, step)
    tf.train.Checkpoint(..., ema_generator=ema.generator)

Update rule, per weight:

* trainable weights: ``ema = w`` while ``step < start_step``, afterwards
  ``ema = decay * ema + (1 - decay) * w``;
* non-trainable weights (spectral-norm ``u``, BN moving mean and variance): copied
  from the live generator at every update.

The train step calls ``update(G, t)`` after the G update of global step ``t``
(1-based: the step count once it is done), as BigGAN-PyTorch's ``ema.update(itr)``.
So the EMA is the live generator through step ``start_step - 1`` and the average
starts from that copy, not from the weights of step 0: a short run (e.g. 1500
steps with ``start_step=1000``) averages only its later weights.

Deliberate deviations (there is no official counterpart; these differ from
BigGAN-PyTorch's ``utils.ema``):

* BigGAN-PyTorch averages every ``state_dict`` entry, buffers included (SN ``u``
  and BN running statistics), and relies on "standing statistics" re-estimated for
  the EMA generator before sampling. Here ``u`` is copied (it is the live power
  iteration's estimate, a good start for the averaged weights, which move slowly)
  and so are the BN moving statistics: they describe the live generator's
  activations, not the EMA generator's, which is the usual approximation when no
  standing statistics are computed.

The EMA generator has the live generator's BN group size (``Config.bn_group_size``).
It changes nothing its moving or standing statistics give (moving statistics are
copied; standing passes normalise each pass as one group), but a batch-statistics
forward (the trainer's sample grids, ``bn_stats="batch"``) normalises per group:
with the whole batch as one group (the former build, ``bn_group_size`` 0) the
trainer's EMA grids differed from those of the same checkpoint sampled later
(``state.load_models`` builds the generator with the run's group size).

Distribution: build the ``EMA`` inside ``strategy.scope()`` when training under a
strategy, so that its variables are mirrored like the generator's. ``update`` works
in cross-replica context and in a replica context (inside ``strategy.run``): there it
enters cross-replica context with ``merge_call`` and writes each EMA variable with
``strategy.extended.update`` from the same replica's copy of the live weight (the
weights are identical on every replica, so every replica computes the same average).
It works inside ``tf.function``; ``step`` may be a Python int or a scalar tensor.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from sagan_tf.models import builder as models
from sagan_tf.models.generator import Generator


def _tf_variable(v):
  """The underlying tf.Variable of a Keras variable (tf.distribute needs it)."""
  return getattr(v, "value", v) if not isinstance(v, tf.Variable) else v


class EMA:
  """An exponential moving average of a generator's weights.

  Args:
    generator: the live ``Generator`` (built, or buildable with a dummy forward).
    decay: EMA decay in [0, 1), e.g. 0.9999.
    start_step: before this step the EMA weights are a copy of the live ones.

  Attributes:
    generator: the EMA ``Generator`` (same config, own variables); checkpoint it as
      ``ema_generator``.
  """

  def __init__(self, generator: Generator, decay: float, start_step: int = 0):
    if not 0.0 <= float(decay) < 1.0:
      raise ValueError(f"EMA decay must be in [0, 1), got {decay!r}.")
    self.decay = float(decay)
    self.start_step = int(start_step)
    generator.build_variables()
    # Same dtype policy as the live generator (its layers took the global policy
    # in force when it was built, e.g. mixed_bfloat16), and the same BN group
    # size (tower BN): it never trains, but batch-statistics forwards (the
    # trainer's sample grids, bn_stats="batch") normalise per group, as
    # load_models' generator does for the same checkpoint.
    config = dataclasses.replace(models.config_of(generator),
                                 bn_group_size=generator.g_bn.group_size)
    with models.dtype_policy(generator.dtype_policy.name):
      self.generator = models.build_generator(config, name="ema_generator")
    self._check_matches(generator)
    for e, w in zip(self.generator.weights, generator.weights):
      e.assign(w)

  def _check_matches(self, generator):
    ours, theirs = self.generator.weights, generator.weights
    if len(ours) != len(theirs):
      raise ValueError(f"EMA generator has {len(ours)} weights, the generator "
                       f"{len(theirs)}: configurations differ.")
    for e, w in zip(ours, theirs):
      if tuple(e.shape) != tuple(w.shape) or e.trainable != w.trainable:
        raise ValueError(f"EMA weight {e.path} {tuple(e.shape)} does not match "
                         f"generator weight {w.path} {tuple(w.shape)}.")

  def decay_at(self, step):
    """The decay applied at ``step``: 0 before ``start_step`` (a float32 tensor)."""
    step = tf.cast(step, tf.int64)
    return tf.where(step < self.start_step, tf.constant(0.0),
                    tf.constant(self.decay))

  def update(self, generator: Generator, step):
    """Moves the EMA weights towards ``generator``'s weights (see module doc).

    Args:
      generator: the live generator this EMA was made from.
      step: the current training step (int or scalar tensor).
    """
    decay = self.decay_at(step)
    pairs = [(_tf_variable(e), _tf_variable(w), bool(w.trainable))
             for e, w in zip(self.generator.weights, generator.weights)]
    if tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context():
      tf.distribute.get_replica_context().merge_call(
          _apply_all, args=(pairs, decay))
    else:
      _apply_all(tf.distribute.get_strategy(), pairs, decay)


def _average(ema_var, w, decay):
  w = tf.cast(w, ema_var.dtype)
  d = tf.cast(decay, ema_var.dtype)
  return ema_var.assign(d * ema_var + (1.0 - d) * w)


def _copy(ema_var, w):
  return ema_var.assign(tf.cast(w, ema_var.dtype))


def _apply_all(strategy, pairs, decay):
  """Cross-replica update of every (ema, live, trainable) triple."""
  for ema_var, w, trainable in pairs:
    if trainable:
      strategy.extended.update(ema_var, _average, args=(w, decay), group=False)
    else:
      strategy.extended.update(ema_var, _copy, args=(w,), group=False)
