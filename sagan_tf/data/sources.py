"""Example sources for ``sagan_tf.data.pipeline``: scikit-learn digits and official-format
TFRecords (TensorFlow Datasets: ``sagan_tf.data.tfds_source``; the printed digits
``glyphs``: ``sagan_tf.data.glyphs``).

Each source returns a ``Source``: ``n`` units (files; one in-memory array for
digits), a ``read`` function giving one unit's raw elements (encoded bytes, plus
the file path), the units' record counts, and a ``decode`` function mapping a raw
element to ``(image float32 [S, S, 3] in [-1, 1], label int32)``. Decoding is kept
apart so that ``sagan_tf.data.pipeline`` can order, shard and skip cheap raw elements
before the expensive decode (``sagan_tf.data.order``).

Errors: bad inputs found while building the pipeline raise ``DataError`` naming
the file and the fix (no file, an unreadable or truncated file, a first record of
the wrong size or label); a bad record found later stops the input pipeline with
an error that ``error_line`` (through ``pipeline.runtime_error_line``, which
finds the files) turns into the same kind of one line.

Official format (brain-research/self-attention-gan ``dataset.py`` /
``utils_ori.py``): each record is a ``tf.train.Example`` with ``image_raw`` (bytes
of an ``S x S x 3`` uint8 image, row-major HWC; the official code fixes S = 128) and
``label`` (int64, used as is: the official ``label_offset`` defaults to 0; other
features such as ``height``/``width``/``depth`` are ignored). Pixels
map to ``x * 2 / 255 - 1``, as in the official reader.

Deliberate deviations from the official reader:
  * files come from a glob (``Config.tfrecord_pattern``) rather than
    ``data_dir/*.tfrecords``; the record image size is ``Config.image_size``;
  * every record's byte size and label are checked (the official code reshapes
    blindly and feeds any label into the class embedding).
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from sagan_tf.data import records as record_io

Decode = Callable[..., Tuple[tf.Tensor, tf.Tensor]]
# tf.data functions here have no Python control flow: AutoGraph has nothing to
# convert (and warns about closures it cannot parse).
_graph_fn = tf.autograph.experimental.do_not_convert
RUNTIME_TAG = "sagan_tf data: "

DIGITS_CLASSES = 10
# Datasets built in memory, offline (no files, no TFDS).
IN_MEMORY_DATASETS = ("digits", "glyphs")

class DataError(ValueError):
  """A bad data input; the message names the problem and what to do."""


@dataclasses.dataclass
class Source:
  """The examples of a dataset as units (see the module docstring).

  Attributes:
    n: number of units.
    read: unit index (int64 scalar tensor) -> ``tf.data.Dataset`` of raw elements.
    counts: () -> int64 [n], records per unit.
    decode: raw element (unpacked) -> (image float32 [S, S, 3], label int32).
    files: the units' files, for error messages (empty for in-memory data).
  """
  n: int
  read: Callable[[tf.Tensor], tf.data.Dataset]
  counts: Callable[[], np.ndarray]
  decode: Decode
  files: Sequence[str] = ()


def error_line(error: Exception, source_files: Sequence[str] = ()) -> Optional[str]:
  """One line for an error raised while iterating a ``sagan_tf.data.pipeline`` pipeline.

  A failed record check (wrong image size, label out of range) comes back as its
  message, which names the file; a reader error (``DataLossError``: a corrupted or
  truncated file) is traced to its file by reading ``source_files`` again. Returns
  None for any other error.
  """
  if not isinstance(error, tf.errors.OpError):
    return None
  message = error.message or ""
  found = re.search(re.escape(RUNTIME_TAG) + r"(.*?)\]", message, re.S)
  if found:
    return " ".join(found.group(1).replace("\\'", "'").split())
  if isinstance(error, tf.errors.DataLossError):
    culprit = record_io.find_unreadable(source_files) if source_files else None
    if culprit:
      return culprit
    first = message.splitlines()[0].split("}} ")[-1] if message else ""
    return (f"A data file is corrupted or truncated ({first}); check the files of "
            "the dataset.")
  return None


def to_unit_range(image_uint8_values: tf.Tensor) -> tf.Tensor:
  """[0, 255] values (any dtype) -> float32 in [-1, 1], as x * 2 / 255 - 1."""
  return tf.cast(image_uint8_values, tf.float32) * (2.0 / 255.0) - 1.0


# --------------------------------------------------------------------------- digits

@functools.lru_cache(maxsize=4)
def load_digits_images(image_size: int) -> Tuple[np.ndarray, np.ndarray]:
  """scikit-learn's bundled 8x8 digits (offline), upscaled for a GAN.

  The 8x8 images (values 0-16, strokes high) are scaled to [0, 255], inverted to
  dark ink on a white background (how handwriting looks on paper, and how
  scikit-learn plots them), upscaled with bicubic interpolation (smoother strokes
  than bilinear at 4x), clipped, rounded, and replicated to 3 channels.

  Args:
    image_size: output side S.
  Returns:
    (images uint8 [1797, S, S, 3], labels int64 [1797] in [0, 10)); read-only and
    cached per image_size.
  """
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  digits = load_digits()
  ink = digits.images.astype(np.float32) * (255.0 / 16.0)  # [N, 8, 8]
  paper = 255.0 - ink
  up = tf.image.resize(paper[..., None], [image_size, image_size],
                       method="bicubic").numpy()
  images = np.clip(np.round(up), 0, 255).astype(np.uint8)
  images = np.repeat(images, 3, axis=-1)
  labels = digits.target.astype(np.int64)
  images.setflags(write=False)
  labels.setflags(write=False)
  return images, labels


def in_memory_source(config, name: str, images: np.ndarray, labels: np.ndarray,
                     classes: int) -> Source:
  """Arrays (uint8 [N, S, S, 3], int labels [N] in [0, classes)) as one unit of
  (image uint8, label) elements; DataError when the config has too few classes."""
  if config.num_classes < classes:
    raise DataError(f"dataset={name!r} has {classes} classes but "
                    f"Config.num_classes={config.num_classes}; set "
                    f"num_classes={classes}.")

  @_graph_fn
  def read(unit):
    del unit  # one unit
    return tf.data.Dataset.from_tensor_slices((images, labels))

  @_graph_fn
  def decode(image, label):
    return to_unit_range(image), tf.cast(label, tf.int32)
  return Source(1, read, lambda: np.array([len(labels)], np.int64), decode)


def digits_source(config) -> Source:
  """The 1797 digits as one in-memory unit of (image uint8, label) elements."""
  return in_memory_source(config, "digits",
                          *load_digits_images(config.image_size), DIGITS_CLASSES)


# ------------------------------------------------------------------------- TFRecord

def _int64(value) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def write_official_tfrecord(path: str, images_uint8, labels) -> str:
  """Writes images in the official SAGAN TFRecord format; returns path.

  Args:
    path: output file (any tf.io.gfile path); the official reader globs
      ``*.tfrecords``.
    images_uint8: uint8 array [N, S, S, 3] (the official data has S = 128).
    labels: ints [N], stored as int64 ``label``.

  Like improved-gan's convert_imagenet_to_records.py (which made the official
  data, labels 0-999 from the sorted synsets), records also carry int64 ``height``,
  ``width`` and ``depth``; readers ignore them.
  """
  images = np.asarray(images_uint8)
  labels = np.asarray(labels)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
    raise DataError(f"write_official_tfrecord needs uint8 images [N, S, S, 3]; "
                    f"got {images.dtype} {images.shape}.")
  if labels.shape != (images.shape[0],):
    raise DataError(f"write_official_tfrecord needs one label per image; got "
                    f"labels {labels.shape} for {images.shape[0]} images.")
  with tf.io.TFRecordWriter(path) as writer:
    for image, label in zip(images, labels):
      example = tf.train.Example(features=tf.train.Features(feature={
          "height": _int64(image.shape[0]),
          "width": _int64(image.shape[1]),
          "depth": _int64(3),
          "image_raw": tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[image.tobytes()])),
          "label": _int64(label),
      }))
      writer.write(example.SerializeToString())
  return path


_FEATURES = {
    "image_raw": tf.io.FixedLenFeature([], tf.string),
    "label": tf.io.FixedLenFeature([], tf.int64),
}


def _check_first_record(path: str, size: int, num_classes: int) -> bool:
  """Fails early, as a DataError, on the commonest mistakes in the first record;
  False if the file is empty."""
  try:
    raw = next(iter(tf.data.TFRecordDataset(path).take(1)))
  except StopIteration:
    return False
  except tf.errors.DataLossError as e:
    reason = e.message.splitlines()[0].split("}} ")[-1].split(" [Op:")[0]
    raise DataError(
        f"{path}: unreadable TFRecord file ({reason}); copy or write the file "
        "again, or leave it out of the pattern.") from None
  try:
    example = tf.io.parse_single_example(raw, _FEATURES)
  except tf.errors.InvalidArgumentError as e:
    raise DataError(
        f"{path}: first record is not in the official SAGAN format (features "
        f"'image_raw' bytes and 'label' int64): {e.message.splitlines()[0]}. "
        "Write files with sagan_tf.data.pipeline.write_official_tfrecord.") from None
  got = int(tf.strings.length(example["image_raw"]))
  if got != size * size * 3:
    raise DataError(
        f"{path}: image_raw has {got} bytes, expected {size * size * 3} "
        f"(a {size}x{size}x3 uint8 image for Config.image_size={size}). Set "
        "image_size to the records' size or rewrite the records.")
  label = int(example["label"])
  if not 0 <= label < num_classes:
    raise DataError(f"{path}: label {label} outside [0, num_classes="
                    f"{num_classes}); set Config.num_classes or fix the labels.")
  return True


def runtime_check(ok: tf.Tensor, *parts) -> tf.Operation:
  """An assertion whose error text is RUNTIME_TAG + the joined parts (strings or
  tensors); ``error_line`` turns it back into one line."""
  text = tf.strings.join([RUNTIME_TAG] + [
      p if isinstance(p, str) else tf.strings.as_string(p) if p.dtype != tf.string
      else p for p in parts])
  return tf.debugging.Assert(ok, [text])


def tfrecord_source(config) -> Source:
  """Records of every file matching ``config.tfrecord_pattern`` (sorted); each
  file is one unit. Raw elements are (serialized record, file path)."""
  pattern = config.tfrecord_pattern
  files = sorted(tf.io.gfile.glob(pattern)) if pattern else []
  if not files:
    raise DataError(f"No TFRecord files match Config.tfrecord_pattern={pattern!r}; "
                    "pass --set=tfrecord_pattern='DIR/*.tfrecords' naming existing "
                    "files.")
  size, num_classes = config.image_size, config.num_classes

  @functools.lru_cache(maxsize=1)
  def counts():
    """Records per file; only a resume needs them (record_io.count_files)."""
    try:  # reads only the record headers; also finds truncated/foreign files
      found = record_io.count_files(files)
    except record_io.RecordFileError as e:
      raise DataError(str(e)) from None
    if not found.sum():
      raise DataError(f"The files matching Config.tfrecord_pattern={pattern!r} "
                      "hold no records; pass --set=tfrecord_pattern= naming the "
                      "data.")
    return found

  if not _check_first_record(files[0], size, num_classes):  # an empty first file
    _check_first_record(files[int(np.argmax(counts() > 0))], size, num_classes)
  paths = tf.constant(files)

  @_graph_fn
  def read(unit):
    path = tf.gather(paths, unit)
    return tf.data.TFRecordDataset(path).map(_graph_fn(lambda r: (r, path)))

  expected = size * size * 3

  @_graph_fn
  def decode(record, path):
    ex = tf.io.parse_single_example(record, _FEATURES)
    nbytes = tf.strings.length(ex["image_raw"])
    label = ex["label"]
    checks = [
        runtime_check(
            tf.equal(nbytes, expected), path, ": a record has an image_raw of ",
            nbytes,
            f" bytes, expected {expected} ({size}x{size}x3 uint8 for "
            f"Config.image_size={size}); rewrite the file or set image_size."),
        runtime_check(
            (label >= 0) & (label < num_classes), path, ": a record has label ",
            label, f" outside [0, num_classes={num_classes}); set "
            "Config.num_classes to cover the labels or fix the file.")]
    with tf.control_dependencies(checks):
      image = tf.io.decode_raw(ex["image_raw"], tf.uint8)
      label = tf.cast(label, tf.int32)
    image = tf.reshape(image, [size, size, 3])
    return to_unit_range(image), label
  return Source(len(files), read, counts, decode, files)
