"""The sagan_tf run directory: ``config.json`` plus ``checkpoints/`` (TF2 checkpoints).

A workdir holds::

    WORKDIR/config.json           the Config of the run (``Config.save``)
    WORKDIR/checkpoints/ckpt-N.*  tf.train.Checkpoint written by a CheckpointManager

and each checkpoint object tracks these attributes (any may be absent):
``step`` (int64 global step), ``generator``, ``discriminator``, ``g_optimizer``,
``d_optimizer``, ``ema_generator`` and whatever else the trainer adds. Every command
line (train, eval, sample, export, convert) reads and writes this one layout.
"""
from __future__ import annotations

import os
from typing import Optional

import tensorflow as tf

from sagan_tf.config import Config
from sagan_tf.models import build_models

CHECKPOINT_SUBDIR = "checkpoints"


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINT_SUBDIR)


def load_config(workdir: str) -> Config:
  path = os.path.join(workdir, "config.json")
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"No config.json in {workdir!r}: not a sagan_tf workdir. Train with "
        f"launch.train or convert an official checkpoint with launch.convert.")
  with tf.io.gfile.GFile(path) as f:
    return Config.from_json(f.read())


def latest_checkpoint(workdir: str) -> Optional[str]:
  return tf.train.latest_checkpoint(checkpoint_dir(workdir))


def save_models(workdir: str, config: Config, generator, discriminator,
                step: int = 0, ema_generator=None) -> str:
  """Writes config.json and a checkpoint holding the models; returns its path."""
  config.save(workdir)
  objects = dict(step=tf.Variable(step, dtype=tf.int64), generator=generator,
                 discriminator=discriminator)
  if ema_generator is not None:
    objects["ema_generator"] = ema_generator
  ckpt = tf.train.Checkpoint(**objects)
  manager = tf.train.CheckpointManager(ckpt, checkpoint_dir(workdir), max_to_keep=5)
  return manager.save(checkpoint_number=step)


def has_ema(path: str) -> bool:
  """Whether the checkpoint at ``path`` holds an EMA generator."""
  # The reader itself: tf.train.list_variables asks gfile whether the path is a
  # directory first, which ram:// (and so possibly other file systems) answers
  # yes for a checkpoint prefix.
  names = tf.compat.v1.train.NewCheckpointReader(path).get_variable_to_shape_map()
  return any(n.startswith("ema_generator/") for n in names)


def load_models(workdir: str, checkpoint: Optional[str] = None, use_ema=True):
  """Rebuilds the models of a workdir and restores them.

  Args:
    workdir: a sagan_tf workdir.
    checkpoint: a checkpoint path; default the latest in the workdir.
    use_ema: return the EMA generator as the generator when the checkpoint has one.

  Returns:
    (config, generator, discriminator, step).
  """
  config = load_config(workdir)
  path = checkpoint or latest_checkpoint(workdir)
  if path is None:
    raise FileNotFoundError(f"No checkpoint under {checkpoint_dir(workdir)!r}.")
  generator, discriminator = build_models(config)
  step = tf.Variable(0, dtype=tf.int64)
  objects = dict(step=step, discriminator=discriminator)
  if use_ema and has_ema(path):
    objects["ema_generator"] = generator
  else:
    objects["generator"] = generator
  tf.train.Checkpoint(**objects).restore(path).expect_partial().assert_existing_objects_matched()
  return config, generator, discriminator, int(step.numpy())
