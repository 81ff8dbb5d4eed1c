"""The state of a run, and the one place that names what a checkpoint holds.

Like flax's ``TrainState`` and Model Garden's ``checkpoint_items``::

    state = RunState.create(config, strategy)   # step, G, D, both Adams, EMA, LeCam
    state.items()        # {"step": ..., "generator": ..., "discriminator": ...,
                         #  "g_optimizer": ..., "d_optimizer": ...,
                         #  ["ema_generator": ...], ["lecam": ...]}: the
                         #  tf.train.Checkpoint's
    path, absent, skipped = state.restore_newest(workdir)

``checkpoint_items`` spells the item names (``ITEMS``) for every writer and reader:
the trainer, ``save_models`` (``launch.convert``'s workdirs: models and
step only) and ``load_models`` (sample, eval, export). The names are the
checkpoint keys' first path component and never change, so old workdirs restore.

``set_process_switches`` is for the launcher that owns the process: the global
seed (model initialisation) and TF op determinism are process-wide, so no library
class sets them.

No official counterpart: the official code kept its state in TF1 collections and a
``MonitoredTrainingSession``.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple

from absl import logging
import keras
import tensorflow as tf

from sagan_tf.config import Config
from sagan_tf.models import builder as models
from sagan_tf.models import ema as ema_lib
from sagan_tf.models import lecam as lecam_lib
from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import safe_checkpoints as safe
from sagan_tf.run import workdir as workdir_lib

# What a checkpoint may hold, by item name (= the first part of each key).
ITEMS = ("step", "generator", "discriminator", "g_optimizer", "d_optimizer",
         "ema_generator", "lecam")
# Items a training run may find absent and start fresh: the optimizers (a
# converted, models-only workdir), the EMA and LeCam's averages (switched on for
# an existing run).
OPTIONAL_ON_RESUME = ("g_optimizer", "d_optimizer", "ema_generator", "lecam")


def checkpoint_items(step=None, generator=None, discriminator=None,
                     g_optimizer=None, d_optimizer=None,
                     ema_generator=None, lecam=None) -> Dict[str, object]:
  """``{item name: object}`` for ``tf.train.Checkpoint(**items)``; None left out."""
  items = dict(zip(ITEMS, (step, generator, discriminator, g_optimizer,
                           d_optimizer, ema_generator, lecam)))
  return {k: v for k, v in items.items() if v is not None}


def make_step_variable(value: int = 0) -> tf.Variable:
  """The int64 global step (call inside ``strategy.scope()``)."""
  return tf.Variable(value, dtype=tf.int64, trainable=False, name="global_step",
                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)


def make_optimizers(config: Config, generator, discriminator):
  """Adam for G and D (official: TF1 ``AdamOptimizer``, epsilon 1e-8), built.

  Call inside ``strategy.scope()``: building creates the slot variables there, as
  MirroredStrategy needs before the first ``strategy.run``.
  """
  opts = []
  for lr, model, name in ((config.g_lr, generator, "g_adam"),
                          (config.d_lr, discriminator, "d_adam")):
    opt = keras.optimizers.Adam(learning_rate=lr, beta_1=config.beta1,
                                beta_2=config.beta2, epsilon=1e-8, name=name)
    opt.build(model.trainable_variables)
    opts.append(opt)
  return tuple(opts)


def set_learning_rates(config: Config, g_optimizer, d_optimizer
                       ) -> List[Tuple[str, float, float]]:
  """Sets both Adams' learning rates to ``config.g_lr`` and ``config.d_lr``.

  A checkpoint holds each Keras Adam's learning rate as a variable, so restoring
  one brings back the rate the run was started with, while a resume with
  ``--set=g_lr=...`` has already written the new rate into ``config.json``: the
  run would train at a rate its config does not name. The config is the truth;
  call this after a restore. Returns ``(field, restored, config)`` for each rate
  that changed (compared in float32, the variable's dtype).
  """
  changed = []
  for field, opt in (("g_lr", g_optimizer), ("d_lr", d_optimizer)):
    want = float(getattr(config, field))
    had = float(opt.learning_rate.numpy())
    if float(tf.constant(want, tf.float32).numpy()) != had:
      changed.append((field, had, want))
    opt.learning_rate = want
  return changed


def optional_ema(config: Config, generator) -> Optional[object]:
  """An ``EMA`` of the generator if ``config.ema_decay > 0`` (inside the scope)."""
  if config.ema_decay <= 0:
    return None
  return ema_lib.EMA(generator, decay=config.ema_decay, start_step=config.ema_start)


def optional_lecam(config: Config) -> Optional[lecam_lib.LeCam]:
  """LeCam's averages if ``config.lecam_weight > 0`` (inside the scope)."""
  if config.lecam_weight <= 0:
    return None
  return lecam_lib.LeCam(config.lecam_weight, config.lecam_decay,
                         config.lecam_start)


def set_process_switches(config: Config, deterministic: bool = False) -> None:
  """Seeds the process (model initialisation: ``config.seed``) and, if
  ``deterministic``, turns TF op determinism on, for the rest of the process.

  With op determinism a run stopped at step k and resumed to n ends with the same
  weights, bit for bit, as an uninterrupted run to n.

  Raises:
    ValueError: ``deterministic`` with ``config.jit_compile=True``.
  """
  if deterministic and config.jit_compile is True:  # "auto" picks off here
    raise ValueError(
        "deterministic=True cannot be combined with jit_compile=True: XLA has no "
        "deterministic kernel for the MaxPool gradient of the attention blocks.")
  if deterministic:
    tf.config.experimental.enable_op_determinism()
  keras.utils.set_random_seed(config.seed)


@dataclasses.dataclass(eq=False)
class RunState:
  """Step, generator, discriminator, optimizers and EMA of one run.

  Attributes:
    step: int64 scalar variable, the global step.
    generator, discriminator: built models.
    g_optimizer, d_optimizer: built Adams, or None (inference).
    ema: a ``sagan_tf.models.ema.EMA`` or None; checkpointed as ``ema_generator``.
    lecam: a ``sagan_tf.models.lecam.LeCam`` or None; checkpointed as ``lecam``.
    checkpoint: the ``tf.train.Checkpoint`` over ``items()``.
  """

  step: tf.Variable
  generator: object
  discriminator: object
  g_optimizer: Optional[object] = None
  d_optimizer: Optional[object] = None
  ema: Optional[object] = None
  lecam: Optional[object] = None

  def __post_init__(self):
    self.checkpoint = tf.train.Checkpoint(**self.items())

  @classmethod
  def create(cls, config: Config, strategy=None) -> "RunState":
    """Builds everything under ``strategy.scope()`` (default: the current
    strategy), the models and EMA under the config's dtype policy."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
      with models.dtype_policy(config.mixed_precision):
        generator, discriminator = models.build_models(config)
        ema = optional_ema(config, generator)
      g_optimizer, d_optimizer = make_optimizers(config, generator, discriminator)
      step = make_step_variable()
      lecam = optional_lecam(config)
    return cls(step, generator, discriminator, g_optimizer, d_optimizer, ema,
               lecam)

  @property
  def sample_generator(self):
    """The generator samples come from: the EMA one if kept."""
    return self.ema.generator if self.ema is not None else self.generator

  def items(self) -> Dict[str, object]:
    return checkpoint_items(
        self.step, self.generator, self.discriminator, self.g_optimizer,
        self.d_optimizer, self.ema.generator if self.ema is not None else None,
        self.lecam)

  def restore_newest(
      self, workdir: str, finite: safe.FiniteCheck, set_aside: bool = True
  ) -> Tuple[Optional[str], Tuple[str, ...], List[Tuple[str, str]]]:
    """Restores the newest readable, finite checkpoint of ``workdir``
    (``safe_checkpoints``); ``set_aside``: move the newer damaged ones into
    ``checkpoints/unreadable/`` (only the process owning the workdir may).

    Returns:
      (path restored or None, optional items absent from it, [(skipped, why)]).

    Raises:
      safe.UnreadableCheckpointsError, checkpoint.CheckpointMismatchError.
    """
    path, absent, skipped = safe.restore_newest_readable(
        self.checkpoint, self.items(), workdir, finite,
        optional=OPTIONAL_ON_RESUME)
    if "ema_generator" in absent:  # EMA switched on for an existing run
      for e, w in zip(self.ema.generator.weights, self.generator.weights):
        e.assign(w)
    for p, why in skipped:
      logging.warning("Skipping checkpoint %s (%s); resuming from %s instead.",
                      p, why, path)
    if skipped and set_aside:
      safe.set_aside(workdir, path, [p for p, _ in skipped])
    return path, absent, skipped


def restore_models(path: str, config: Config, use_ema: bool,
                   has_ema: bool) -> Tuple[object, object, int]:
  """(generator, discriminator, step) of ``config`` restored from ``path``; the
  generator holds the ``ema_generator`` item if ``use_ema`` and ``has_ema``."""
  generator, discriminator = models.build_models(config)
  step = make_step_variable()
  use = use_ema and has_ema
  items = checkpoint_items(step, None if use else generator, discriminator,
                           ema_generator=generator if use else None)
  tf.train.Checkpoint(**items).restore(path).expect_partial() \
      .assert_existing_objects_matched()
  return generator, discriminator, int(step.numpy())


def models_only(step: int, generator, discriminator,
                ema_generator=None) -> Dict[str, object]:
  """The items of a models-only checkpoint (a converted workdir)."""
  return checkpoint_items(make_step_variable(step), generator, discriminator,
                          ema_generator=ema_generator)


def save_models(workdir: str, config: Config, generator, discriminator,
                step: int = 0, ema_generator=None) -> str:
  """Writes config.json and a checkpoint holding the models; returns its path."""
  workdir_lib.save_config(workdir, config)
  ckpt = tf.train.Checkpoint(**models_only(step, generator, discriminator,
                                           ema_generator))
  manager = tf.train.CheckpointManager(ckpt, workdir_lib.checkpoint_dir(workdir),
                                       max_to_keep=5)
  return manager.save(checkpoint_number=step)


def load_models(workdir: str, checkpoint: Optional[str] = None, use_ema=True):
  """Rebuilds the models of a workdir and restores them.

  Args:
    workdir: a sagan_tf workdir.
    checkpoint: a checkpoint path; default the latest in the workdir.
    use_ema: return the EMA generator as the generator when the checkpoint has one.

  Returns:
    (config, generator, discriminator, step).
  """
  config = workdir_lib.load_config(workdir)
  path = checkpoint or ckpt_lib.latest_checkpoint(workdir)
  if path is None:
    raise FileNotFoundError(
        f"No checkpoint under {workdir_lib.checkpoint_dir(workdir)!r}.")
  generator, discriminator, step = restore_models(
      path, config, use_ema, use_ema and ckpt_lib.has_ema(path))
  return config, generator, discriminator, step
