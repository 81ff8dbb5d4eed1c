"""Image helpers shared by training, sampling and evaluation: uint8 conversion,
square grids and PNG files."""
from __future__ import annotations

import io
import math
import os

import numpy as np


def to_uint8(images) -> np.ndarray:
  """[-1, 1] floats -> uint8 in [0, 255] (same rounding as the official code)."""
  x = np.asarray(images, dtype=np.float32)
  return np.clip(np.floor((x + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)


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
