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
from --seed (eval.sampling), so a command gives the same images every time.

``--grid=latent_interp`` (rows: pairs of noises, one class each, from ``--classes``
or uniform; columns: ``--interp_steps`` points from z_a to z_b) and
``--grid=class_interp`` (rows: ``--interp_classes='3,7;1,2'`` pairs, one noise
each; columns: the two classes' CBN parameters mixed from a to b) write an
interpolation grid instead of the samples; ``--truncation=0.5`` applies the
truncation trick to the noise of any grid (eval.grids).

``--bn_stats`` picks the generator's batch-norm statistics (sagan_tf.bn_stats):
``standing`` (default: recomputed in memory from the checkpoint's weights over
--standing_passes seeded passes), ``moving`` (the checkpoint's moving averages, the
official inference path) or ``batch`` (each batch's own moments, as the training
grids; the images then depend on --batch_size). The .npz records the choice
(``bn_stats``, a JSON string) and the checkpoint ``step``.

``--attention_maps=attn.png`` draws, for the first min(--num, 4) of these samples,
where each generator attention block looks from the ``--queries`` pixels
("y,x;y,x" in output-image coordinates; default one per quadrant centre): the
image with the queries marked, then one heat map per query (sagan_tf.attention_maps).
"""
import io
import json
import os

import numpy as np
from absl import app
from absl import flags
from absl import logging

from launch import bn_flags

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "sagan_tf workdir (config.json + checkpoints/).")
flags.DEFINE_string("checkpoint", None, "Checkpoint path (default: the latest).")
flags.DEFINE_integer("num", 64, "Number of images.")
flags.DEFINE_string("classes", None, "Comma-separated classes, e.g. 1,2,3 "
                    "(default: uniform over all classes).")
flags.DEFINE_integer("seed", 0, "Seed of noise and labels.")
flags.DEFINE_integer("batch_size", 64, "Images per generator call.")
flags.DEFINE_string("png", None, "Write a grid of the images to this PNG.")
flags.DEFINE_string("npz", None, "Write images (uint8) and labels to this .npz.")
flags.DEFINE_bool("use_ema", True, "Use the EMA generator when present.")
bn_flags.define(with_seed=True)
flags.DEFINE_string("attention_maps", None,
                    "Write the attention-map figure of the first samples here.")
flags.DEFINE_string("queries", None, "Attention query pixels 'y,x;y,x' "
                    "(default: the four quadrant centres).")
flags.DEFINE_enum("grid", "samples", ["samples", "latent_interp", "class_interp"],
                  "What --png/--npz show: plain samples, latent interpolation "
                  "rows or class interpolation rows (eval.grids).")
flags.DEFINE_float("truncation", None, "Truncation trick: redraw noise entries "
                   "with |z| > this (unset or 0 = off).")
flags.DEFINE_integer("interp_steps", 8, "Images per interpolation row (t = 0..1).")
flags.DEFINE_integer("interp_rows", 4, "Rows (noise pairs) of --grid=latent_interp.")
flags.DEFINE_string("interp_classes", None, "Class pairs of --grid=class_interp, "
                    "one row each: 'a,b;c,d'.")
flags.mark_flags_as_required(["workdir"])


def load_generator(workdir, checkpoint=None, use_ema=True):
  """(config, generator, step) of a workdir's checkpoint."""
  from sagan_tf import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  config, generator, _, step = checkpoint_lib.load_models(
      workdir, checkpoint=checkpoint, use_ema=use_ema)
  return config, generator, step


def sample(generator, num, classes=None, seed=0, batch_size=64, bn_stats=None):
  """(images uint8 [num, S, S, 3], labels int32 [num]).

  ``bn_stats``: a ``sagan_tf.bn_stats.BNStats`` already applied with
  ``bn_stats.prepare`` (None: the generator as it is, at inference).
  """
  from eval import sampling  # pylint: disable=g-import-not-at-top
  from sagan_tf import images as images_lib  # pylint: disable=g-import-not-at-top
  training = bool(bn_stats is not None and bn_stats.training)
  images, labels = sampling.generate(generator, num, seed=seed, classes=classes,
                                     batch_size=batch_size, training=training)
  return images_lib.to_uint8(images), labels


def write_outputs(images, labels, png=None, npz=None, extra=None):
  """Writes the PNG grid and/or the .npz (any tf.io.gfile path; ``extra``:
  more JSON-able entries stored as JSON strings); returns the paths written."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from sagan_tf import images as images_lib  # pylint: disable=g-import-not-at-top
  written = []
  if png:
    written.append(images_lib.save_png(png, images_lib.image_grid(images)))
  if npz:
    folder = os.path.dirname(npz)
    if folder:
      tf.io.gfile.makedirs(folder)
    buffer = io.BytesIO()  # np.savez seeks; a GFile being written cannot
    np.savez(buffer, images=images, labels=labels,
             **{k: np.array(json.dumps(v, sort_keys=True))
                for k, v in (extra or {}).items()})
    with tf.io.gfile.GFile(npz, "wb") as f:
      f.write(buffer.getvalue())
    written.append(npz)
  return written


def write_attention_maps(generator, path, queries=None, num=64, classes=None,
                         seed=0, shown=4):
  """Attention figure of the first ``shown`` of the ``num`` samples that ``sample``
  draws with the same arguments; returns its path."""
  from eval import sampling  # pylint: disable=g-import-not-at-top
  from sagan_tf import attention_maps  # pylint: disable=g-import-not-at-top
  queries = queries or attention_maps.default_queries(generator.image_size)
  stream = sampling.NoiseAndLabels(generator.z_dim, generator.num_classes, seed,
                                   classes, num)
  z, labels = stream.take(min(num, shown))
  images, maps = attention_maps.attention_maps(generator, z, labels, queries,
                                               return_images=True)
  attention_maps.render_attention_figure(images, maps, queries, path=path)
  return path


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not (FLAGS.png or FLAGS.npz or FLAGS.attention_maps):
    raise app.UsageError("Give --png, --npz and/or --attention_maps.")
  from eval import sampling  # pylint: disable=g-import-not-at-top

  try:
    classes = sampling.parse_classes(FLAGS.classes)
  except ValueError as e:
    raise app.UsageError(f"--classes={FLAGS.classes!r}: {e}") from None
  from sagan_tf import bn_stats as bn_stats_lib  # pylint: disable=g-import-not-at-top
  bn_stats = bn_flags.from_flags()
  from sagan_tf import checkpoint as checkpoint_lib  # pylint: disable=g-import-not-at-top
  try:
    config, generator, step = load_generator(FLAGS.workdir, FLAGS.checkpoint,
                                             FLAGS.use_ema)
  except (FileNotFoundError, checkpoint_lib.ConfigFileError) as e:
    raise app.UsageError(str(e)) from None
  bn_stats_lib.prepare(generator, bn_stats)
  plain = FLAGS.grid == "samples" and not FLAGS.truncation
  if (FLAGS.png or FLAGS.npz) and plain:
    try:
      images, labels = sample(generator, FLAGS.num, classes, FLAGS.seed,
                              FLAGS.batch_size, bn_stats)
    except ValueError as e:  # classes outside [0, num_classes)
      raise app.UsageError(str(e)) from None
    for path in write_outputs(images, labels, FLAGS.png, FLAGS.npz,
                              extra=dict(bn_stats=bn_stats.describe(), step=step)):
      logging.info("Wrote %s (%d images, step %d, %dx%d, %s BN statistics).",
                   path, len(images), step, config.image_size,
                   config.image_size, bn_stats.mode)
  if FLAGS.attention_maps:
    from sagan_tf import attention_maps  # pylint: disable=g-import-not-at-top
    try:
      queries = attention_maps.parse_queries(FLAGS.queries)
      path = write_attention_maps(generator, FLAGS.attention_maps, queries,
                                  FLAGS.num, classes, FLAGS.seed)
    except ValueError as e:  # bad queries, or a generator without attention
      raise app.UsageError(str(e)) from None
    logging.info("Wrote %s (attention maps, step %d).", path, step)
  if (FLAGS.png or FLAGS.npz) and not plain:
    for path in write_grid(generator, classes):
      logging.info("Wrote %s (%s grid, step %d).", path, FLAGS.grid, step)


def write_grid(generator, classes):
  """--grid / --truncation outputs (eval.grids); returns the paths written."""
  from eval import grids  # pylint: disable=g-import-not-at-top
  common = dict(seed=FLAGS.seed, truncation=FLAGS.truncation,
                batch_size=FLAGS.batch_size)
  try:
    grids.check_truncation(FLAGS.truncation)
    if FLAGS.grid == "samples":
      grid = grids.sample_grid(generator, FLAGS.num, classes=classes, **common)
    elif FLAGS.grid == "latent_interp":
      grid = grids.latent_interpolation(generator, FLAGS.interp_rows,
                                        FLAGS.interp_steps, classes=classes,
                                        **common)
    else:
      try:
        pairs = grids.parse_pairs(FLAGS.interp_classes)
      except ValueError as e:
        raise app.UsageError(
            f"--interp_classes={FLAGS.interp_classes!r}: {e}") from None
      grid = grids.class_interpolation(generator, pairs, FLAGS.interp_steps,
                                       **common)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  return grids.write_grid(grid, FLAGS.png, FLAGS.npz)


if __name__ == "__main__":
  app.run(main)
