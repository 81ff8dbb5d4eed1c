"""Image helpers shared by training, sampling and evaluation: uint8 conversion,
square grids, PNG and .npz files."""
from __future__ import annotations

import io
import math
import os

import numpy as np


def _uint8_levels(x, floor, clip):
  """The one definition of the rounding: [-1, 1] -> integer levels in [0, 255],
  ``clip(floor((x + 1) * 127.5 + 0.5), 0, 255)`` (the official code's), with the
  ``floor``/``clip`` of numpy or of TensorFlow."""
  return clip(floor((x + 1.0) * 127.5 + 0.5), 0.0, 255.0)


def to_uint8(images) -> np.ndarray:
  """[-1, 1] floats [..., 3] -> uint8 in [0, 255], on the host (numpy)."""
  x = np.asarray(images, dtype=np.float32)
  return _uint8_levels(x, np.floor, np.clip).astype(np.uint8)


def to_uint8_tensor(images):
  """``to_uint8`` as TensorFlow ops, for graphs that must not leave TF (the
  SavedModel of ``sagan_tf.inference.export`` serves uint8 without numpy)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = tf.cast(images, tf.float32)
  return tf.cast(_uint8_levels(x, tf.floor, tf.clip_by_value), tf.uint8)


def grid_shape(n: int):
  """(rows, cols) of the squarest grid holding n images."""
  cols = int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  return rows, cols


def image_grid(images, rows=None, cols=None, pad=1) -> np.ndarray:
  """Tiles uint8 images [N, H, W, C] into one [rows*(H+pad)-pad, ..., C] image."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    images = to_uint8(images)
  n, h, w, c = images.shape
  if rows is None or cols is None:
    rows, cols = grid_shape(n)
  grid = np.zeros((rows * (h + pad) - pad, cols * (w + pad) - pad, c), np.uint8)
  for i in range(min(n, rows * cols)):
    r, q = divmod(i, cols)
    grid[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = images[i]
  return grid


def save_png(path: str, image) -> str:
  """Writes one uint8 image [H, W, 3] (or [H, W, 1]) as PNG to path (any
  ``tf.io.gfile`` path, e.g. gs://); returns path."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  image = np.asarray(image)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  tf.io.gfile.makedirs(os.path.dirname(path) or ".")
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())
  return path


def save_npz(path: str, **arrays) -> str:
  """Writes ``arrays`` as an .npz to path (any ``tf.io.gfile`` path); returns
  path."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()  # np.savez seeks; a GFile being written cannot
  np.savez(buffer, **arrays)
  tf.io.gfile.makedirs(os.path.dirname(path) or ".")
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(buffer.getvalue())
  return path
