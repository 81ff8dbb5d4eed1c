"""Exports a generator as a self-contained TensorFlow SavedModel.

The SavedModel has one signature, ``serving_default``::

    z       float32 [None, z_dim]
    labels  int32   [None]
    ->  {"images": uint8 [None, S, S, 3]}

and loads with plain ``tf.saved_model.load(path)`` (no ``sagan_tf`` needed)::

    model = tf.saved_model.load(path)
    images = model.signatures["serving_default"](z=z, labels=labels)["images"]

The serving function is ``generator(z, labels, training=False, update_u=False)``
followed by the uint8 conversion of ``sagan_tf.images.to_uint8`` (as TF ops:
``to_uint8_tensor``, ``clip(floor((x + 1) * 127.5 + 0.5), 0, 255)``).

Spectral-norm semantics at serve time: the official generator writes its ``u``
vectors on every forward pass, inference included, so calling it twice drifts
``u`` (by a tiny amount: one more power-iteration step). The exported model is
frozen: each call still runs one power iteration from the stored ``u`` and
normalises by the resulting sigma, but never writes ``u`` back. Every call thus
equals *one* official inference forward from the exported state, and the model is
a pure function of its inputs (thread-safe, reproducible).

Batch-norm statistics (``sagan_tf.inference.bn_stats``): ``export_workdir`` exports with
standing statistics by default (recomputed in memory from the checkpoint's weights
and frozen into the SavedModel); ``bn_stats="moving"`` keeps the checkpoint's moving
averages (official inference); ``"batch"`` serves with each request's own batch
moments (the moving statistics the forward pass would write are put back, so the
model stays pure; a request's images then depend on the whole batch). The choice is
recorded in ``OUTPUT/sagan_tf_export.json`` with the step and whether the EMA
generator was exported. Files are written through ``tf.io.gfile`` (gs:// works).

There is no official counterpart (the official code only wrote TF1 checkpoints).
"""
from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from sagan_tf import images as images_lib
from sagan_tf.inference import bn_stats as bn_stats_lib
from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import state as state_lib

SIGNATURE = "serving_default"


def serving_fn(generator, batch_statistics: bool = False):
  """The serving ``tf.function`` (z, labels) -> {"images": uint8} of a generator.

  ``batch_statistics``: normalise with each request's batch moments (leaving the
  moving statistics unchanged) instead of the stored statistics.
  """
  generator.build_variables()

  @tf.function(input_signature=[
      tf.TensorSpec([None, generator.z_dim], tf.float32, name="z"),
      tf.TensorSpec([None], tf.int32, name="labels")])
  def serve(z, labels):
    if batch_statistics:
      images = bn_stats_lib.batch_forward(generator, z, labels, update_u=False)
    else:
      images = generator(z, labels, training=False, update_u=False)
    return {"images": images_lib.to_uint8_tensor(images)}

  return serve


def export_generator(generator, output_dir: str,
                     batch_statistics: bool = False) -> str:
  """Writes ``generator`` as a SavedModel into ``output_dir``; returns the path.

  Args:
    generator: a ``sagan_tf.models.generator.Generator`` (the EMA one for EMA samples),
      its BN statistics as they should be served.
    output_dir: a new or empty directory (any tf.io.gfile path).
    batch_statistics: serve with each request's batch moments.

  Raises:
    FileExistsError: ``output_dir`` exists and is not empty.
  """
  if tf.io.gfile.isdir(output_dir) and tf.io.gfile.listdir(output_dir):
    raise FileExistsError(f"Export directory {output_dir!r} is not empty.")
  archive = keras.export.ExportArchive()
  archive.track(generator)
  archive.add_endpoint(SIGNATURE, serving_fn(generator, batch_statistics))
  archive.write_out(output_dir, verbose=False)
  return output_dir


INFO_FILE = "sagan_tf_export.json"


def export_workdir(workdir: str, output_dir: str, checkpoint=None,
                   use_ema: bool = True, bn_stats=None):
  """Exports the generator of a sagan_tf workdir's checkpoint.

  Args:
    workdir: a sagan_tf workdir (config.json + checkpoints/).
    output_dir: SavedModel directory to write (new or empty).
    checkpoint: a checkpoint path; default the latest.
    use_ema: export the EMA generator when the checkpoint has one.
    bn_stats: a ``sagan_tf.inference.bn_stats.BNStats`` (default: standing statistics).

  Returns:
    (output_dir, config, step, used_ema).
  """
  if tf.io.gfile.isdir(output_dir) and tf.io.gfile.listdir(output_dir):
    raise FileExistsError(f"Export directory {output_dir!r} is not empty.")
  path = checkpoint or ckpt_lib.latest_checkpoint(workdir)
  config, generator, _, step = state_lib.load_models(workdir, path, use_ema=use_ema)
  used_ema = bool(use_ema and path is not None and ckpt_lib.has_ema(path))
  bn = bn_stats_lib.prepare(generator, bn_stats)
  export_generator(generator, output_dir, batch_statistics=bn.training)
  with tf.io.gfile.GFile(os.path.join(output_dir, INFO_FILE), "w") as f:
    f.write(json.dumps(dict(step=step, checkpoint=path, ema=used_ema,
                            bn_stats=bn.describe()), indent=1, sort_keys=True))
  return output_dir, config, step, used_ema
