r"""Trains SAGAN (or resumes a run) in a workdir.

  python -m launch.train --preset=digits32 --workdir=runs/digits32
  python -m launch.train --preset=tiny --workdir=/tmp/w --steps=6 \
      --strategy=mirrored --cpu_replicas=2 --deterministic
  python -m launch.train --preset=imagenet128 --workdir=gs://b/run \
      --strategy=tpu --tpu=my-tpu --set=batch_size=1024 --set=ema_decay=0.9999

Config: ``--preset`` (or, without it, the workdir's own config.json), then the
dedicated flags below, then ``--set field=value`` (repeatable; any Config field,
e.g. ``--set=g_lr=2e-4 --set=g_attention=16,32``). Starting again on the same
workdir resumes from its newest readable checkpoint; SIGTERM/SIGINT saves and
exits.

Exit codes: 0 the run reached --steps; 1 an error (one line on stderr: bad
config, workdir in use, unreadable checkpoints, NaN, disk full); 42
(``PREEMPTED_EXIT_CODE``) stopped by SIGTERM/SIGINT or a coordinated multi-worker
preemption after saving a checkpoint: run the same command again to resume (a
scheduler that restarts failed jobs restarts it). 42 is also the code TensorFlow's
PreemptionCheckpointHandler exits with by default.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

import tensorflow as tf  # noqa: E402

from launch.jit_flag import jit_compile_flag  # noqa: E402
from launch.overrides import config_usage_error  # noqa: E402
from launch.overrides import parse_sets  # noqa: E402
from sagan_tf import config as config_lib  # noqa: E402
from sagan_tf.run import workdir as workdir_lib  # noqa: E402

_DEFINED = False


def define_flags():
  """Defines this launcher's flags in absl's FLAGS (once); ``python -m
  launch.train`` calls it before parsing. Not at import: the launchers share flag
  names (--preset, --set, --strategy, ...) with other defaults and choices, so
  importing two of them in one process (the tests do) would clash."""
  global _DEFINED, _PRESET, _WORKDIR, _STEPS, _STRATEGY, _TPU
  global _CPU_REPLICAS, _CHECKPOINT_EVERY, _DETERMINISTIC, _JIT, _DATASET
  global _DATA_DIR, _DOWNLOAD, _EVAL_CLASSIFIER, _EVAL_NUM_SAMPLES
  global _TAKE_OVER_LOCK, _SET, _EVAL_INTRA_FID_CLASSES
  if _DEFINED:
    return
  _DEFINED = True
  _PRESET = flags.DEFINE_enum("preset", None, sorted(config_lib.PRESETS),
                              "Config preset; default: the workdir's config.json.")
  _WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (created/resumed).",
                                 required=True)
  _STEPS = flags.DEFINE_integer("steps", None, "Train until this global step "
                                "(default: the config's train_steps).")
  _STRATEGY = flags.DEFINE_enum("strategy", "default",
                                ["default", "mirrored", "multiworker", "tpu"],
                                "tf.distribute strategy.")
  _TPU = flags.DEFINE_string("tpu", None, "TPU name or address (--strategy=tpu).")
  _CPU_REPLICAS = flags.DEFINE_integer(
      "cpu_replicas", 0, "With --strategy=mirrored: mirror over this many logical "
      "CPU devices (0: the GPUs, or the CPU).")
  _CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", None,
                                           "Checkpoint every N steps.")
  _DETERMINISTIC = flags.DEFINE_bool(
      "deterministic", False, "TF op determinism: resumed runs match uninterrupted "
      "ones bit for bit (slower; not with --jit_compile).")
  _JIT = flags.DEFINE_flag(jit_compile_flag(
      "XLA-compile the train step: true, false or auto (default: the config's; "
      "auto: on where measured faster, see sagan_tf/training/jit_choice.py)."))
  _DATASET = flags.DEFINE_string("dataset", None,
                                 "'digits', 'glyphs' (offline), 'tfrecord' or a "
                                 "prepared TFDS name.")
  _DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir.")
  _DOWNLOAD = flags.DEFINE_bool(
      "download", True, "Download and prepare a TFDS dataset that is not yet "
      "prepared in --data_dir (needs internet; --nodownload to only read).")
  _EVAL_CLASSIFIER = flags.DEFINE_enum(
      "eval_classifier", None, ["digits", "glyphs", "inception"],
      "With --set=eval_every=N: the feature network (default: the digit "
      "classifier of the digits or glyphs dataset, else inception).")
  _EVAL_NUM_SAMPLES = flags.DEFINE_integer(
      "eval_num_samples", 5000, "With --set=eval_every=N: generated samples per "
      "evaluation.")
  _EVAL_INTRA_FID_CLASSES = flags.DEFINE_integer(
      "eval_intra_fid_classes", 10, "With --set=eval_every=N: intra-FID over "
      "classes 0..N-1 (0: off). Memory 2 N D^2 float64 of per-class moments: "
      "670 MB for 10 classes of 2048-d Inception features.")
  _TAKE_OVER_LOCK = flags.DEFINE_bool(
      "take_over_lock", False, "Take WORKDIR/lock.json even if the trainer named "
      "in it looks alive (it is taken over anyway once its process is gone or its "
      "heartbeat is 10 minutes old).")
  _SET = flags.DEFINE_multi_string("set", [], "field=value override of any Config "
                                   "field (repeatable).")


PREEMPTED_EXIT_CODE = 42


def _fail(message: str):
  """One line on stderr, exit code 1, no traceback."""
  logging.error("%s", message)
  sys.exit(1)


def build_config(workdir, preset=None, steps=None, checkpoint_every=None,
                 jit_compile=None, dataset=None, data_dir=None, sets=()):
  """The run's Config from a preset or the workdir, then the overrides."""
  if preset is not None:
    config = config_lib.from_preset(preset)
  elif workdir_lib.has_config(workdir):
    try:
      config = workdir_lib.load_config(workdir)
    except workdir_lib.ConfigFileError as e:
      raise app.UsageError(str(e)) from None
  else:
    raise app.UsageError(f"--preset is required: {workdir!r} has no config.json "
                         f"to resume from.")
  overrides = parse_sets(sets)
  for key, value in (("train_steps", steps), ("checkpoint_every", checkpoint_every),
                     ("jit_compile", jit_compile), ("dataset", dataset),
                     ("data_dir", data_dir)):
    if value is not None:
      overrides[key] = value
  try:
    return config_lib.override(config, overrides)
  except ValueError as e:
    raise config_usage_error(e) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # Before anything initialises TensorFlow's devices (cpu_replicas splits the CPU).
  import logging as py_logging  # pylint: disable=g-import-not-at-top
  from sagan_tf import strategy as strategy_lib  # pylint: disable=g-import-not-at-top
  # tf.distribute logs every all-reduce it builds at INFO.
  py_logging.getLogger("tensorflow").setLevel(py_logging.WARNING)
  strategy = strategy_lib.make_strategy(_STRATEGY.value, tpu=_TPU.value,
                                        cpu_replicas=_CPU_REPLICAS.value)
  workdir = _WORKDIR.value
  config = build_config(workdir, _PRESET.value, _STEPS.value,
                        _CHECKPOINT_EVERY.value, _JIT.value, _DATASET.value,
                        _DATA_DIR.value, _SET.value)
  # pylint: disable=g-import-not-at-top
  from sagan_tf.run import checkpoint as ckpt_lib
  from sagan_tf.data import pipeline as data
  from sagan_tf.run import lock as workdir_lock
  # pylint: enable=g-import-not-at-top
  if _DOWNLOAD.value:
    try:
      data.prepare_if_tfds(config)
    except data.DataError as e:  # one line, no traceback
      _fail(str(e))
  from sagan_tf.run import safe_checkpoints as safe  # pylint: disable=g-import-not-at-top
  from sagan_tf.training import loop as train_lib  # pylint: disable=g-import-not-at-top
  logging.info("Strategy: %s", strategy_lib.describe(strategy))
  from sagan_tf.run import state as state_lib  # pylint: disable=g-import-not-at-top
  try:  # process-wide: the model-initialisation seed and op determinism
    state_lib.set_process_switches(config, deterministic=_DETERMINISTIC.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  try:
    on_eval = _train_evaluator(config, workdir, strategy)
    trainer = train_lib.Trainer(config, workdir, strategy,
                                on_log=lambda p: logging.info("%s", p.line()),
                                on_eval=on_eval,
                                take_over_lock=_TAKE_OVER_LOCK.value)
  except (workdir_lib.ConfigMismatchError, ckpt_lib.CheckpointMismatchError,
          data.DataError, strategy_lib.BatchSizeError, workdir_lib.ConfigFileError,
          workdir_lock.WorkdirLockedError,
          train_lib.UnreadableCheckpointsError) as e:
    _fail(str(e))
  start = int(trainer.step.numpy())
  if trainer.restored:
    logging.info("Resumed from %s (step %d).", trainer.restored, start)
    for field, had, want in trainer.changed_learning_rates:
      logging.info("%s is %g from here on (config.json); the checkpoint's run "
                   "trained at %g.", field, want, had)
  else:
    logging.info("New run in %s.", workdir)
  logging.info("Training to step %d: checkpoints in %s, TensorBoard logs in %s, "
               "sample grids in %s.", config.train_steps,
               workdir_lib.checkpoint_dir(workdir), workdir,
               os.path.dirname(workdir_lib.sample_path(workdir, 0)))
  try:
    result = trainer.run(config.train_steps)
  except (safe.NonFiniteLossError, train_lib.CheckpointWriteError) as e:
    _fail(str(e))
  except tf.errors.OpError as e:  # a bad record or file met while training
    line = data.runtime_error_line(e, config)
    if line is None:
      raise
    _fail(line)
  finally:
    trainer.close()
  if result.stopped:
    logging.info("%s at step %d; saved %s. Run the same command to resume "
                 "(exit code %d).", "Preempted (all workers saved)"
                 if result.preempted else "Stopped by a signal", result.step,
                 result.checkpoint, PREEMPTED_EXIT_CODE)
    sys.exit(PREEMPTED_EXIT_CODE)
  else:
    logging.info("Done at step %d: checkpoint %s, samples %s.", result.step,
                 result.checkpoint, result.sample_png)
  if trainer.last_eval is not None:
    values = trainer.last_eval["metrics"]
    logging.info("Evaluation at step %d (%s): %s", trainer.last_eval["step"],
                 trainer.last_eval.get("path", ""), ", ".join(
                     f"{k} {v:.4f}" for k, v in sorted(values.items())
                     if v is not None))


def _train_evaluator(config, workdir, strategy):
  """The in-training evaluator of --set=eval_every=N (None when 0)."""
  if not config.eval_every:
    return None
  # pylint: disable=g-import-not-at-top
  from eval import evaluate
  from eval import train_eval
  name = _EVAL_CLASSIFIER.value or train_eval.default_classifier_name(config)
  try:
    train_eval.check_classifier(name, config)
  except ValueError as e:
    raise app.UsageError(f"--eval_classifier={name}: {e}") from None
  try:
    classifier = train_eval.load_named_classifier(name, strategy)
    return train_eval.make_train_evaluator(
        config, workdir, strategy, classifier=classifier,
        protocol=evaluate.Protocol(
            num_samples=_EVAL_NUM_SAMPLES.value,
            intra_fid_classes=_EVAL_INTRA_FID_CLASSES.value))
  except (ValueError, RuntimeError, OSError) as e:  # no Inception offline, TPU
    raise app.UsageError(f"eval_every={config.eval_every}: {e}") from None


def run():
  """Console-script entry point (``sagan-train``, see pyproject.toml)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
