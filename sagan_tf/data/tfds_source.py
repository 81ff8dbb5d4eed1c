"""TensorFlow Datasets as a ``sagan_tf.data.pipeline`` source (``Config.dataset`` naming a
TFDS dataset with 'image' and 'label' features), and its one-time preparation.

Reading is offline, from the prepared TFRecord files in ``Config.data_dir`` (one
unit per file instruction of the split; see ``sagan_tf.data.sources`` for units and
errors); only ``prepare_tfds_dataset`` downloads.

Deliberate deviation: TFDS images (not in the official code) are centre-cropped to
a square and resized with antialiased bilinear, then rounded; improved-gan's
converter, which made the official 128x128 records, centre-cropped, resized with
scipy's imresize and truncated to uint8.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl import logging

from sagan_tf.data.sources import (IN_MEMORY_DATASETS, DataError, Source,
                                   runtime_check)

# tf.data functions here have no Python control flow (see data_sources).
_graph_fn = tf.autograph.experimental.do_not_convert
_TFDS_FIX = ("Prepare it once with `tfds build {name} --data_dir=DIR` (or "
             "`sagan_tf.data.pipeline.prepare_tfds_dataset(config)` while online; ImageNet "
             "needs its archives placed in DIR/downloads/manual first), then pass "
             "--data_dir=DIR (Config.data_dir) pointing at the prepared copy.")


def _tfds_builder(config):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  name, data_dir = config.dataset, config.data_dir
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(
        f"Config.dataset={name!r} is neither 'digits', 'glyphs', 'tfrecord' nor a TFDS "
        "dataset name (see tfds.list_builders()).") from None
  features = builder.info.features
  missing = [k for k in ("image", "label") if k not in features]
  if missing:
    raise DataError(f"TFDS dataset {name!r} has no {missing} feature(s) (it has "
                    f"{sorted(features)}); sagan_tf needs 'image' and 'label'.")
  n = getattr(features["label"], "num_classes", None)
  if n is not None and n > config.num_classes:
    raise DataError(f"TFDS dataset {name!r} has {n} classes but "
                    f"Config.num_classes={config.num_classes}; set num_classes={n}.")
  return builder


def is_tfds_dataset(config) -> bool:
  """Whether ``config.dataset`` names a TFDS dataset (not digits, glyphs or
  tfrecord)."""
  return config.dataset not in IN_MEMORY_DATASETS + ("tfrecord",)


def prepare_tfds_dataset(config) -> bool:
  """Downloads and prepares ``config.dataset`` into ``config.data_dir`` (online).

  Returns False, touching nothing, when the dataset is already prepared there (so
  launchers can call it on every start); True after a download and preparation.
  """
  builder = _tfds_builder(config)
  if builder.is_prepared():
    return False
  try:
    builder.download_and_prepare()
  except Exception as e:  # pylint: disable=broad-except
    first = (str(e).strip().splitlines() or [""])[0]
    raise DataError(
        f"Could not download/prepare TFDS dataset {config.dataset!r} into "
        f"data_dir={config.data_dir!r}: {type(e).__name__}: {first}. "
        + _TFDS_FIX.format(name=config.dataset)) from None
  return True


def prepare_if_tfds(config) -> bool:
  """``prepare_tfds_dataset`` if ``config.dataset`` names a TFDS dataset (the one
  call launch.train and launch.eval make on every start, before reading it);
  False for digits, glyphs and tfrecord. Raises ``DataError`` as prepare_tfds_dataset."""
  if not is_tfds_dataset(config):
    return False
  logging.info("Checking TFDS dataset %r in data_dir=%s (downloads if missing).",
               config.dataset, config.data_dir)
  return prepare_tfds_dataset(config)


def _square_and_resize(image: tf.Tensor, size: int) -> tf.Tensor:
  """uint8 [H, W, 3] -> float32 [size, size, 3] in [0, 255], integer valued.

  Non-square images are centre-cropped to their short side; images of another size
  are resized with antialiased bilinear interpolation (a triangle filter as wide
  as the shrink factor, so no aliasing when shrinking ImageNet) and rounded, so values stay on the uint8 grid of the official data.
  """
  shape = tf.shape(image)
  h, w = shape[0], shape[1]
  side = tf.minimum(h, w)
  image = tf.image.crop_to_bounding_box(image, (h - side) // 2, (w - side) // 2,
                                        side, side)
  image = tf.cast(image, tf.float32)

  def resize():
    out = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    return tf.round(tf.clip_by_value(out, 0.0, 255.0))
  image = tf.cond(tf.equal(side, size), lambda: image, resize)
  return tf.ensure_shape(image, [size, size, 3])


def tfds_source(config, split: str) -> Source:
  """A prepared TFDS dataset with 'image' and 'label' features, read offline from
  its TFRecord files (one unit per file instruction of ``split``); raw elements are
  (serialized example, file path)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  builder = _tfds_builder(config)
  name, size, num_classes = config.dataset, config.image_size, config.num_classes
  if not builder.is_prepared():
    raise DataError(
        f"TFDS dataset {name!r} (split {split!r}) is not prepared in "
        f"data_dir={config.data_dir!r}. " + _TFDS_FIX.format(name=name))
  try:
    instructions = builder.info.splits[split].file_instructions
  except (KeyError, ValueError, AssertionError) as e:  # e.g. an unknown split
    first = (str(e).strip().splitlines() or [""])[0]
    raise DataError(f"TFDS dataset {name!r}: cannot read split {split!r}: "
                    f"{first}. Set Config.split (e.g. 'train').") from None
  file_format = str(getattr(builder.info, "file_format", "tfrecord")).lower()
  if "tfrecord" not in file_format:
    raise DataError(f"TFDS dataset {name!r} is stored as {file_format}; prepare it "
                    "with file_format='tfrecord' (`tfds build ... "
                    "--file_format=tfrecord`).")
  files = [str(fi.filename) for fi in instructions]
  skips = [int(fi.skip) for fi in instructions]
  counts = np.array([fi.take if fi.take >= 0 else fi.examples_in_shard - fi.skip
                     for fi in instructions], np.int64)
  paths, skip_t, take_t = (tf.constant(files), tf.constant(skips, tf.int64),
                           tf.constant(counts, tf.int64))

  @_graph_fn
  def read(unit):
    path = tf.gather(paths, unit)
    ds = tf.data.TFRecordDataset(path).skip(tf.gather(skip_t, unit))
    return ds.take(tf.gather(take_t, unit)).map(_graph_fn(lambda r: (r, path)))

  features = builder.info.features

  @_graph_fn
  def decode(record, path):
    ex = features.deserialize_example(
        record, decoders={"image": tfds.decode.SkipDecoding()})
    image = tf.io.decode_image(ex["image"], channels=3, expand_animations=False)
    image = _square_and_resize(image, size)
    label = ex["label"]
    check = runtime_check(
        (label >= 0) & (label < num_classes), path, ": a record has label ", label,
        f" outside [0, num_classes={num_classes}); set Config.num_classes to "
        "cover the labels.")
    with tf.control_dependencies([check]):
      label = tf.cast(label, tf.int32)
    return image * (2.0 / 255.0) - 1.0, label
  return Source(len(files), read, lambda: counts, decode, files)
