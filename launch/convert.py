r"""Converts a TF1 SAGAN checkpoint into a sagan_tf workdir.

    python -m launch.convert --source=/ckpts/sagan/model.ckpt-1000000 \
        --layout=official --output=/runs/sagan_official

``--layout=official`` reads brain-research/self-attention-gan checkpoints,
``--layout=tfgan_estimator`` TF-GAN's self_attention_estimator ones, written by
``GANEstimator``/``TPUGANEstimator`` (``Generator/generator/...``) or by its network
functions called directly (``generator/...``): the scopes are found in the
checkpoint. Model sizes (classes, widths, z, image size) are inferred from the
checkpoint unless given. The workdir (config.json + checkpoints/ckpt-N, N the
checkpoint's ``global_step``, 0 without one) is read back by
``sagan_tf.run.state.load_models``, so launch.sample / launch.eval / launch.train
take it as --workdir. The logic lives in ``sagan_tf.interop.convert``.
"""
from absl import app
from absl import flags
from absl import logging

_SOURCE = flags.DEFINE_string("source", None,
                              "TF1 checkpoint prefix (or its directory).")
_LAYOUT = flags.DEFINE_enum("layout", "official", ["official", "tfgan_estimator"],
                            "Which code wrote the checkpoint.")
_OUTPUT = flags.DEFINE_string("output", None, "sagan_tf workdir to write.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", None,
                                    "Number of classes (default: inferred).")
_GF_DIM = flags.DEFINE_integer("gf_dim", None,
                               "Generator width (default: inferred).")
_DF_DIM = flags.DEFINE_integer("df_dim", None,
                               "Discriminator width (default: inferred).")
_Z_DIM = flags.DEFINE_integer("z_dim", None, "Noise size (default: inferred).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None,
                                   "32, 64 or 128 (default: inferred).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False,
                               "Write into an existing workdir.")
flags.mark_flags_as_required(["source", "output"])


def sagan_tf_workdir_of(source: str):
  """The workdir if ``source`` (a workdir, its checkpoints/ folder or a
  ``ckpt-N`` prefix there) is a sagan_tf TF2 checkpoint, else None."""
  import os  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from sagan_tf.run import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  candidates = [source, os.path.dirname(source),
                os.path.dirname(os.path.dirname(source.rstrip("/")))]
  for workdir in candidates:
    if workdir and workdir_lib.has_config(workdir) and tf.io.gfile.glob(
        os.path.join(workdir_lib.checkpoint_dir(workdir), "ckpt-*.index")):
      return workdir
  return None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  workdir = sagan_tf_workdir_of(_SOURCE.value)
  if workdir is not None:
    raise app.UsageError(
        f"--source={_SOURCE.value} is a sagan_tf TF2 checkpoint: {workdir!r} is "
        f"already a sagan_tf workdir and needs no conversion; pass "
        f"--workdir={workdir} to launch.train, launch.sample, launch.eval or "
        f"launch.export.")
  from sagan_tf.interop import convert  # after flag parsing: --help stays fast

  try:
    config, path, step = convert.convert_to_workdir(
        _SOURCE.value, _LAYOUT.value, _OUTPUT.value, overwrite=_OVERWRITE.value,
        num_classes=_NUM_CLASSES.value, gf_dim=_GF_DIM.value, df_dim=_DF_DIM.value,
        z_dim=_Z_DIM.value, image_size=_IMAGE_SIZE.value)
  except (FileNotFoundError, FileExistsError, ValueError) as e:
    raise app.UsageError(str(e)) from None
  logging.info("Wrote %s (step %d, image_size=%d, num_classes=%d, gf=%d, df=%d, "
               "z=%d, attention G %s D %s, variant %s).", path, step,
               config.image_size,
               config.num_classes, config.gf_dim, config.df_dim, config.z_dim,
               config.g_attention, config.d_attention, config.variant)


def run():
  """Console-script entry point (``sagan-convert``, see pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
