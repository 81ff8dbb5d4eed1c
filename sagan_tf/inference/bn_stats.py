"""Which batch-norm statistics a generator uses at inference: moving, standing, batch.

The generator's batch norms (the conditional ``cbn_0``/``cbn_1`` of every block and
the final ``g_bn``) normalise with batch moments in training and with their moving
averages at inference. The official decays (0.999 and 0.9999) make those averages
lag the weights by thousands of steps, so a short run (the ``digits32`` quick
start: a digit classifier read 35% of moving-statistics samples as their class
against 88% with batch statistics) draws washed-out images from them. Three modes:

* ``"moving"``: the checkpoint's moving averages, untouched. The official
  inference path and the official eval protocol.
* ``"standing"`` (the default of ``launch.sample``, ``launch.eval``,
  ``launch.export``): "standing statistics" as BigGAN-PyTorch and StudioGAN offer
  them. Before drawing, every BN layer's moving mean and variance are replaced,
  in memory, by the average of its batch moments over ``passes`` forward passes
  of the current generator in training mode (batches of ``batch_size``, noise
  N(0, I) and classes uniform, drawn from ``seed`` alone). Each layer keeps the
  statistic it accumulates in training: the biased variance for the conditional
  BN, the Bessel-corrected one for ``g_bn`` (official). As in training, the
  statistics are per layer, not per class: CBN normalises with them and then
  applies its class's gamma and beta. The spectral-norm ``u`` is not written
  during the passes (``update_u=False``), and nothing is saved: the checkpoint is
  never written by sampling, evaluation or export.
* ``"batch"``: every generator call normalises with the moments of its own batch,
  as the training sample grids do. The images then depend on what else is in the
  batch (batch size, class mix); the moving statistics are put back after each
  call.

How the passes read the batch moments: each BN layer's ``decay`` is set to 0 for
the passes (its moving average is then the last batch's moment) and restored
afterwards; the layers are found by walking the generator's sub-layers. With
tower BN (``Config.bn_group_size``) each pass's batch is normalised as one group
(its ``group_size`` is set to 0 for the passes), so ``batch_size`` plays the
group's part: keep it equal to ``bn_group_size`` (both 64 in ``imagenet128``).
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import numpy as np
import tensorflow as tf

from sagan_tf import tf_compat
from sagan_tf.layers.normalization import BatchNorm, ConditionalBatchNorm

MODES = ("moving", "standing", "batch")
DEFAULT_MODE = "standing"
DEFAULT_PASSES = 16
DEFAULT_BATCH_SIZE = 64


@dataclasses.dataclass(frozen=True)
class BNStats:
  """How a generator's batch norms are set for inference; stored with results.

  Attributes:
    mode: "moving", "standing" or "batch" (see the module docstring).
    passes: standing statistics: forward passes averaged.
    batch_size: standing statistics: samples per pass.
    seed: standing statistics: seed of their noise and labels.
  """
  mode: str = DEFAULT_MODE
  passes: int = DEFAULT_PASSES
  batch_size: int = DEFAULT_BATCH_SIZE
  seed: int = 0

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"bn_stats={self.mode!r}: choose one of {list(MODES)}.")
    if self.passes <= 0 or self.batch_size <= 0:
      raise ValueError(f"Standing statistics need passes > 0 and batch_size > 0; "
                       f"got passes={self.passes}, batch_size={self.batch_size}.")

  @property
  def training(self) -> bool:
    """The generator's ``training`` argument when drawing in this mode."""
    return self.mode == "batch"

  def describe(self) -> dict:
    """The JSON record of this choice (standing fields only when they matter)."""
    if self.mode != "standing":
      return dict(mode=self.mode)
    return dataclasses.asdict(self)


def bn_layers(generator) -> List:
  """The generator's BN layers (conditional and plain), in tracking order."""
  return [layer for layer in tf_compat.sublayers(generator)
          if isinstance(layer, (ConditionalBatchNorm, BatchNorm))]


def standing_inputs(generator, passes: int, batch_size: int, seed: int):
  """Yields (z `[B, z_dim]` float32, labels `[B]` int32) for the standing passes.

  A stream of its own (not that of ``sagan_tf.inference.sampling`` with the same seed), so the
  statistics do not repeat the samples they are used for.
  """
  rng = np.random.default_rng([int(seed), 0x5374616E])  # "Stan"
  for _ in range(passes):
    z = rng.standard_normal((batch_size, generator.z_dim), dtype=np.float32)
    labels = rng.integers(0, generator.num_classes, batch_size).astype(np.int32)
    yield z, labels


def compute_standing_statistics(generator, passes: int = DEFAULT_PASSES,
                                batch_size: int = DEFAULT_BATCH_SIZE,
                                seed: int = 0) -> int:
  """Replaces every BN layer's moving mean and variance by standing statistics.

  In memory only. Call it in cross-replica context (under ``strategy.scope()``
  for a mirrored generator: the averages are assigned to every replica's copy).

  Args:
    generator: a built ``sagan_tf.models.generator.Generator`` (e.g. from
      ``state.load_models``).
    passes: forward passes whose batch moments are averaged.
    batch_size: samples per pass.
    seed: seed of the passes' noise and labels.

  Returns:
    The number of BN layers set.
  Raises:
    ValueError: the generator has no BN layer.
  """
  layers = bn_layers(generator)
  if not layers:
    raise ValueError(f"{generator.name} has no batch-norm layer to set.")
  saved = [(layer.decay, getattr(layer, "group_size", None)) for layer in layers]
  sums = [[np.zeros(layer.moving_mean.shape, np.float64),
           np.zeros(layer.moving_variance.shape, np.float64)] for layer in layers]
  try:
    for layer in layers:
      layer.decay = 0.0  # the moving average then holds the last batch's moments
      if getattr(layer, "group_size", None) is not None:
        layer.group_size = 0  # tower BN: the pass's batch is one group

    @tf.function
    def forward(z, labels):
      return generator(z, labels, training=True, update_u=False)

    for z, labels in standing_inputs(generator, passes, batch_size, seed):
      forward(tf.constant(z), tf.constant(labels))
      for layer, acc in zip(layers, sums):
        acc[0] += layer.moving_mean.numpy()
        acc[1] += layer.moving_variance.numpy()
  finally:
    for layer, (decay, group_size) in zip(layers, saved):
      layer.decay = decay
      if group_size is not None:
        layer.group_size = group_size
  for layer, (mean, var) in zip(layers, sums):
    layer.moving_mean.assign((mean / passes).astype(np.float32))
    layer.moving_variance.assign((var / passes).astype(np.float32))
  return len(layers)


def prepare(generator, bn_stats: Optional[BNStats] = None) -> BNStats:
  """Sets ``generator`` up for drawing with ``bn_stats``; returns it.

  "standing" computes the standing statistics (in memory); "moving" and "batch"
  change nothing here (with "batch", call the generator with
  ``training=bn_stats.training``, or through ``batch_forward``).
  """
  bn_stats = bn_stats or BNStats()
  if bn_stats.mode == "standing":
    compute_standing_statistics(generator, bn_stats.passes, bn_stats.batch_size,
                                bn_stats.seed)
  return bn_stats


def batch_forward(generator, z, labels, update_u=False):
  """``generator(z, labels, training=True)`` that leaves the moving statistics as
  they were (the forward pass's updates are put back): batch-statistics images
  from a generator that must not change, e.g. a served one."""
  moving = [w for layer in bn_layers(generator)
            for w in (layer.moving_mean, layer.moving_variance)]
  saved = [tf.identity(w) for w in moving]
  images = generator(z, labels, training=True, update_u=update_u)
  with tf.control_dependencies([images]):
    for w, value in zip(moving, saved):
      w.assign(value)
  return tf.identity(images)


def draw(generator, z, labels, bn_stats: BNStats, update_u=False):
  """One generator call in the given mode (after ``prepare``)."""
  if bn_stats.training:
    return batch_forward(generator, z, labels, update_u=update_u)
  return generator(z, labels, training=False, update_u=update_u)
