"""The run directory: every path of a run, its config, and whether it can resume.

A workdir (any ``tf.io.gfile`` path: local, ``gs://``, ``ram://``) holds::

    WORKDIR/config.json                the run's Config (``save_config``)
    WORKDIR/checkpoints/ckpt-N.*       TF2 checkpoints (``sagan_tf.run.checkpoint``;
                                       what they hold: ``sagan_tf.run.state``)
    WORKDIR/checkpoints/unreadable/    damaged checkpoints set aside, never deleted
    WORKDIR/samples/step_XXXXXXX.png   sample grids (``sagan_tf.training.summaries``)
    WORKDIR/eval/                      evaluation results (``eval.evaluate``)
    WORKDIR/lock.json                  the trainer holding it (``workdir_lock``)
    WORKDIR/tmp_<worker>/checkpoints/  multi-worker: the non-chief workers' saves
    WORKDIR/events.out.tfevents.*      TensorBoard

Every command line (train, eval, sample, export, convert) finds these through the
functions here. Resuming (``checkpoint.check_resumable``) needs a ``config.json`` with the
same model shape (``MODEL_FIELDS``) as the requested config; whether the
checkpoint's variables fit the models is ``checkpoint.check_checkpoint_matches``.
"""
from __future__ import annotations

import os

import tensorflow as tf

from sagan_tf.config import Config

CONFIG_FILE = "config.json"
CHECKPOINT_SUBDIR = "checkpoints"
UNREADABLE_SUBDIR = "unreadable"  # under checkpoints/
SAMPLES_SUBDIR = "samples"
EVAL_SUBDIR = "eval"
LOCK_FILE = "lock.json"

# Config fields that change the variables of G or D (names or shapes).
MODEL_FIELDS = ("image_size", "num_classes", "z_dim", "gf_dim", "df_dim",
                "g_attention", "d_attention", "variant")


class ConfigFileError(ValueError):
  """A workdir's config.json cannot be read as a Config."""


class ConfigMismatchError(ValueError):
  """The workdir's config.json has a different model shape than requested."""


def config_path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG_FILE)


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(workdir, CHECKPOINT_SUBDIR)


def worker_checkpoint_dir(workdir: str, worker: str) -> str:
  """Where a non-chief worker writes its (discarded) copy of each save."""
  return os.path.join(workdir, "tmp_" + worker, CHECKPOINT_SUBDIR)


def unreadable_dir(workdir: str) -> str:
  return os.path.join(checkpoint_dir(workdir), UNREADABLE_SUBDIR)


def sample_path(workdir: str, step: int) -> str:
  return os.path.join(workdir, SAMPLES_SUBDIR, f"step_{step:07d}.png")


def eval_dir(workdir: str) -> str:
  return os.path.join(workdir, EVAL_SUBDIR)


def lock_path(workdir: str) -> str:
  return os.path.join(workdir, LOCK_FILE)


def has_config(workdir: str) -> bool:
  return tf.io.gfile.exists(config_path(workdir))


def save_config(workdir: str, config: Config) -> str:
  """Writes ``config.json`` (creating ``workdir``); returns its path."""
  tf.io.gfile.makedirs(workdir)
  path = config_path(workdir)
  with tf.io.gfile.GFile(path, "w") as f:
    f.write(config.to_json() + "\n")
  return path


def load_config(workdir: str) -> Config:
  """The workdir's Config.

  Raises:
    FileNotFoundError: no config.json (not a sagan_tf workdir).
    ConfigFileError: config.json is not a valid Config.
  """
  path = config_path(workdir)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(
        f"No {CONFIG_FILE} in {workdir!r}: not a sagan_tf workdir. Train with "
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


def check_config_compatible(saved: Config, requested: Config, workdir: str) -> None:
  """Raises ConfigMismatchError naming the model-shape fields that differ."""
  diffs = [f"{f}: workdir {getattr(saved, f)!r} vs requested "
           f"{getattr(requested, f)!r}"
           for f in MODEL_FIELDS if getattr(saved, f) != getattr(requested, f)]
  if diffs:
    raise ConfigMismatchError(
        f"Cannot resume {workdir!r}: its {CONFIG_FILE} has a different model shape "
        f"({'; '.join(diffs)}). Use a new --workdir, or the workdir's own settings.")
