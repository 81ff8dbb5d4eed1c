r"""Images from a sagan_tf checkpoint: a PNG grid and/or an .npz, no dataset needed.

    python -m launch.sample --workdir=/runs/sagan --num=64 --png=samples.png
    python -m launch.sample --workdir=/runs/sagan --classes=1,2,3 --num=30 \
        --seed=7 --png=classes.png --npz=classes.npz
    python -m launch.sample --workdir=/runs/sagan --grid=class_interp \
        --interp_classes='3,7;1,2' --interp_steps=8 --png=class_interp.png

The workdir may be one written by launch.train or converted from an official
checkpoint by launch.convert (same layout). The EMA generator is used when the
checkpoint has one (``--nouse_ema`` for the live one). ``--classes`` lists the
classes to draw, in runs (the first images are the first class...); without it the
classes are uniform. The .npz holds ``images`` (uint8 [N, S, S, 3]) and ``labels``
(int32 [N]); the PNG is a square grid (sagan_tf.images). Noise and labels come
from --seed (sagan_tf.inference.sampling), so a command gives the same images every time. The
logic lives in ``sagan_tf.inference.sample_files``.

``--grid=latent_interp`` (rows: pairs of noises, one class each, from ``--classes``
or uniform; columns: ``--interp_steps`` points from z_a to z_b) and
``--grid=class_interp`` (rows: ``--interp_classes='3,7;1,2'`` pairs, one noise
each; columns: the two classes' CBN parameters mixed from a to b) write an
interpolation grid instead of the samples; ``--truncation=0.5`` applies the
truncation trick to the noise of any grid (sagan_tf.inference.grids).

``--bn_stats`` picks the generator's batch-norm statistics (sagan_tf.inference.bn_stats):
``standing`` (default: recomputed in memory from the checkpoint's weights over
--standing_passes seeded passes), ``moving`` (the checkpoint's moving averages, the
official inference path) or ``batch`` (each batch's own moments, as the training
grids; the images then depend on --batch_size). The .npz records the choice
(``bn_stats``, a JSON string) and the checkpoint ``step``.

``--attention_maps=attn.png`` draws, for the first min(--num, 4) of these samples,
where each generator attention block looks from the ``--queries`` pixels
("y,x;y,x" in output-image coordinates; default one per quadrant centre): the
image with the queries marked, then one heat map per query (sagan_tf.inference.attention_maps).
"""
from absl import app
from absl import flags

from launch import bn_flags

_WORKDIR = flags.DEFINE_string("workdir", None,
                               "sagan_tf workdir (config.json + checkpoints/).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "Checkpoint path (default: the latest).")
_NUM = flags.DEFINE_integer("num", 64, "Number of images.")
_CLASSES = flags.DEFINE_string("classes", None, "Comma-separated classes, e.g. "
                               "1,2,3 (default: uniform over all classes).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of noise and labels.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per generator call.")
_PNG = flags.DEFINE_string("png", None, "Write a grid of the images to this PNG.")
_NPZ = flags.DEFINE_string("npz", None,
                           "Write images (uint8) and labels to this .npz.")
_USE_EMA = flags.DEFINE_bool("use_ema", True,
                             "Use the EMA generator when present.")
_BN = bn_flags.define(with_seed=True)
_ATTENTION_MAPS = flags.DEFINE_string(
    "attention_maps", None,
    "Write the attention-map figure of the first samples here.")
_QUERIES = flags.DEFINE_string("queries", None, "Attention query pixels "
                               "'y,x;y,x' (default: the four quadrant centres).")
_GRID = flags.DEFINE_enum(
    "grid", "samples", ["samples", "latent_interp", "class_interp"],
    "What --png/--npz show: plain samples, latent interpolation rows or class "
    "interpolation rows (sagan_tf.inference.grids).")
_TRUNCATION = flags.DEFINE_float("truncation", None, "Truncation trick: redraw "
                                 "noise entries with |z| > this (unset or 0 = "
                                 "off).")
_INTERP_STEPS = flags.DEFINE_integer("interp_steps", 8,
                                     "Images per interpolation row (t = 0..1).")
_INTERP_ROWS = flags.DEFINE_integer("interp_rows", 4,
                                    "Rows (noise pairs) of --grid=latent_interp.")
_INTERP_CLASSES = flags.DEFINE_string(
    "interp_classes", None,
    "Class pairs of --grid=class_interp, one row each: 'a,b;c,d'.")
flags.mark_flags_as_required(["workdir"])


def _request(classes):
  """The ``sagan_tf.inference.sample_files.SampleRequest`` of the flags (UsageError if bad)."""
  # pylint: disable=g-import-not-at-top
  from sagan_tf.inference import grids
  from sagan_tf.inference import sample_files
  from sagan_tf.inference import attention_maps
  # pylint: enable=g-import-not-at-top
  pairs = queries = None
  if _GRID.value == "class_interp" and (_PNG.value or _NPZ.value):
    try:
      pairs = grids.parse_pairs(_INTERP_CLASSES.value)
    except ValueError as e:
      raise app.UsageError(
          f"--interp_classes={_INTERP_CLASSES.value!r}: {e}") from None
  if _ATTENTION_MAPS.value:
    try:
      queries = attention_maps.parse_queries(_QUERIES.value)
    except ValueError as e:
      raise app.UsageError(str(e)) from None
  return sample_files.SampleRequest(
      num=_NUM.value, classes=classes, seed=_SEED.value,
      batch_size=_BATCH_SIZE.value, png=_PNG.value, npz=_NPZ.value,
      attention_maps=_ATTENTION_MAPS.value, queries=queries, grid=_GRID.value,
      truncation=_TRUNCATION.value, interp_steps=_INTERP_STEPS.value,
      interp_rows=_INTERP_ROWS.value, interp_pairs=pairs)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not (_PNG.value or _NPZ.value or _ATTENTION_MAPS.value):
    raise app.UsageError("Give --png, --npz and/or --attention_maps.")
  # After flag parsing: --help stays fast.
  from sagan_tf.inference import sample_files  # pylint: disable=g-import-not-at-top
  from sagan_tf.inference import sampling  # pylint: disable=g-import-not-at-top

  try:
    classes = sampling.parse_classes(_CLASSES.value)
  except ValueError as e:
    raise app.UsageError(f"--classes={_CLASSES.value!r}: {e}") from None
  bn_stats = _BN.stats()
  request = _request(classes)
  try:
    sample_files.write_samples(_WORKDIR.value, request,
                               checkpoint=_CHECKPOINT.value,
                               use_ema=_USE_EMA.value, bn_stats=bn_stats)
  # No workdir or checkpoint, an unreadable config.json, classes outside the
  # generator's, bad queries, no attention layer, a bad grid: one line.
  except (FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from None


def run():
  """Console-script entry point (``sagan-sample``, see pyproject.toml)."""
  app.run(main)


if __name__ == "__main__":
  run()
