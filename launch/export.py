r"""Exports the generator of a sagan_tf workdir as a TensorFlow SavedModel.

    python -m launch.export --workdir=/runs/sagan --output=/export/sagan_g

Signature ``serving_default``: z float32 [None, z_dim], labels int32 [None] ->
{"images": uint8 [None, S, S, 3]}; load with ``tf.saved_model.load`` (no sagan_tf
needed). ``--use_ema`` (default) exports the EMA generator when the checkpoint has
one; ``--nouse_ema`` the live generator. ``--bn_stats`` picks the BN statistics
frozen into the model: ``standing`` (default, recomputed from the checkpoint's
weights), ``moving`` (the checkpoint's moving averages, official inference) or
``batch`` (each request's own batch moments); OUTPUT/sagan_tf_export.json records
it. The logic lives in ``sagan_tf.inference.export``.
"""
from absl import app
from absl import flags
from absl import logging

from launch import bn_flags

_WORKDIR = flags.DEFINE_string("workdir", None,
                               "sagan_tf workdir (config.json + checkpoints/).")
_OUTPUT = flags.DEFINE_string("output", None,
                              "SavedModel directory to write (new or empty).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "Checkpoint path (default: the latest).")
_USE_EMA = flags.DEFINE_bool(
    "use_ema", True, "Export the EMA generator when the checkpoint has one.")
_BN = bn_flags.define(with_seed=True)
flags.mark_flags_as_required(["workdir", "output"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  # After flag parsing: --help stays fast.
  from sagan_tf.inference import export  # pylint: disable=g-import-not-at-top

  try:
    path, config, step, used_ema = export.export_workdir(
        _WORKDIR.value, _OUTPUT.value, checkpoint=_CHECKPOINT.value,
        use_ema=_USE_EMA.value, bn_stats=_BN.stats())
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  logging.info("Exported the %s generator of step %d (%dx%d, %d classes, z %d, "
               "%s BN statistics) to %s.", "EMA" if used_ema else "live", step,
               config.image_size, config.image_size, config.num_classes,
               config.z_dim, _BN.mode.value, path)


def run():
  """Console-script entry point (``sagan-export``, see pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
