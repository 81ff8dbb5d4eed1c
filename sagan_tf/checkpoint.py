"""The sagan_tf run directory: ``config.json`` plus ``checkpoints/`` (TF2 checkpoints).

A workdir holds::

    WORKDIR/config.json           the Config of the run (``Config.save``)
    WORKDIR/checkpoints/ckpt-N.*  tf.train.Checkpoint written by a CheckpointManager

and each checkpoint object tracks these attributes (any may be absent):
``step`` (int64 global step), ``generator``, ``discriminator``, ``g_optimizer``,
``d_optimizer``, ``ema_generator`` and whatever else the trainer adds. Every command
line (train, eval, sample, export, convert) reads and writes this one layout.

Damaged checkpoints (a lost ``.index``, a truncated ``.data`` file after a crash
mid-write) are found by ``checkpoint_candidates`` (every ``ckpt-N`` that has any
file, newest first, whether or not the ``checkpoint`` state file lists it) and set
aside by ``quarantine``: moved into ``checkpoints/unreadable/``, never deleted, so
the ``CheckpointManager`` neither restores them nor overwrites them when it saves
the same step number again, and its ``max_to_keep`` clean-up never counts them.
"""
from __future__ import annotations

import os
import re
import time
from typing import List, Optional, Sequence, Tuple

import tensorflow as tf

from sagan_tf.config import Config
from sagan_tf.models import build_models

CHECKPOINT_SUBDIR = "checkpoints"
UNREADABLE_SUBDIR = "unreadable"  # under checkpoints/: damaged checkpoints set aside
_CKPT_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")


class ConfigFileError(ValueError):
  """A workdir's config.json cannot be read as a Config."""


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINT_SUBDIR)


def load_config(workdir: str) -> Config:
  path = os.path.join(workdir, "config.json")
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"No config.json in {workdir!r}: not a sagan_tf workdir. Train with "
        f"launch.train or convert an official checkpoint with launch.convert.")
  with tf.io.gfile.GFile(path) as f:
    text = f.read()
  try:
    return Config.from_json(text)
  except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
    raise ConfigFileError(
        f"{path} is not a valid sagan_tf config ({e}). Repair it (a JSON object "
        f"of sagan_tf.config.Config fields, as launch.train wrote it), or start a "
        f"new run in another --workdir.") from None


def latest_checkpoint(workdir: str) -> Optional[str]:
  return tf.train.latest_checkpoint(checkpoint_dir(workdir))


def checkpoint_candidates(workdir: str) -> List[Tuple[int, str]]:
  """``[(step, prefix)]`` of every checkpoint in ``workdir``, newest first.

  A checkpoint counts if any of its files (``ckpt-N.index``, ``ckpt-N.data-*``)
  exists or the ``checkpoint`` state file names it, so damaged ones are listed
  too: the caller finds out which are readable.
  """
  directory = checkpoint_dir(workdir)
  steps = set()
  if tf.io.gfile.isdir(directory):
    for name in tf.io.gfile.listdir(directory):
      m = _CKPT_FILE.match(name.rstrip("/"))
      if m:
        steps.add(int(m.group(1)))
  try:
    state = tf.train.get_checkpoint_state(directory)
  except (tf.errors.OpError, ValueError):  # a damaged state file: the files decide
    state = None
  if state is not None:
    for path in list(state.all_model_checkpoint_paths) + [
        state.model_checkpoint_path]:
      m = re.match(r"^ckpt-(\d+)$", os.path.basename(path))
      if m:
        steps.add(int(m.group(1)))
  return [(n, os.path.join(directory, f"ckpt-{n}"))
          for n in sorted(steps, reverse=True)]


def quarantine(prefixes: Sequence[str]) -> List[str]:
  """Moves every file of the checkpoints ``prefixes`` into
  ``checkpoints/unreadable/`` (replacing older copies there); returns the new
  paths. Nothing is deleted."""
  moved = []
  for prefix in prefixes:
    target = os.path.join(os.path.dirname(prefix), UNREADABLE_SUBDIR)
    tf.io.gfile.makedirs(target)
    for path in tf.io.gfile.glob(prefix + ".*"):
      dest = os.path.join(target, os.path.basename(path))
      tf.io.gfile.rename(path, dest, overwrite=True)
      moved.append(dest)
  return moved


def write_checkpoint_state(workdir: str, latest: str,
                           kept: Sequence[str]) -> None:
  """Rewrites ``checkpoints/checkpoint`` so that ``latest`` is the newest and
  ``kept`` (oldest first, ending with ``latest``) the list the next
  ``CheckpointManager`` keeps and rotates (``max_to_keep``).

  The save times of ``kept`` are carried over from the old state file (a
  checkpoint without one gets the current time): the manager only rotates
  checkpoints saved after ``last_preserved_timestamp``.
  """
  directory = checkpoint_dir(workdir)
  try:
    old = tf.train.get_checkpoint_state(directory)
  except (tf.errors.OpError, ValueError):
    old = None
  times = {}
  if old is not None:
    times = {os.path.basename(p): t for p, t in zip(
        old.all_model_checkpoint_paths, old.all_model_checkpoint_timestamps)}
  now = time.time()
  stamps = [min(times.get(os.path.basename(p), now), now) for p in kept]
  stamps = [max(stamps[:i + 1]) for i in range(len(stamps))]  # oldest first
  preserved = min(stamps) - 1.0 if stamps else now
  if old is not None and old.last_preserved_timestamp:
    preserved = min(preserved, old.last_preserved_timestamp)
  tf.compat.v1.train.update_checkpoint_state(
      directory, os.path.basename(latest),
      all_model_checkpoint_paths=[os.path.basename(p) for p in kept],
      all_model_checkpoint_timestamps=stamps,
      last_preserved_timestamp=preserved)


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
