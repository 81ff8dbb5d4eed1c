"""``glyphs``: printed digits 0-9 in varied poses, a second offline class-conditional set.

The quick-start ``digits`` set (scikit-learn's 1797 handwritten 8x8 digits, upscaled)
holds little detail and one kind of variation; a recipe tuned on it alone need not
carry over. ``glyphs`` is built here, offline, from PIL's bundled scalable font
(Aileron Regular, ``ImageFont.load_default(size)``, Pillow >= 10.1 with FreeType):
each image is one digit drawn at four times the output size with a random

* size (digit height 40-80 % of the image), stroke width (regular to bold: an
  outline of 0-6 % of the font size added around the strokes) and horizontal
  stretch (0.8-1.2);
* rotation (-25 to 25 degrees) and shear (-0.3 to 0.3, slanted either way);
* position (anywhere the whole glyph stays inside a 1-pixel margin);

then box-filtered down to ``image_size`` (exact area averages, so strokes are
antialiased rather than upscaled from 8x8), dark ink on white, grey in 3 channels
as ``digits``. Labels are balanced (each class ``count / 10`` times), shuffled.

Splits (``Config.split``): ``"train"`` (``TRAIN_COUNT`` images) and ``"test"``
(``TEST_COUNT``, held out for evaluation) draw their poses from two independent
random streams of ``SEED``, so no image is in both. The set depends only on
(``SEED``, split, image_size, ``VERSION``), never on ``Config.seed``: runs over
several training seeds see the same images. ``VERSION`` keys caches built from
these images (the glyph classifier of ``eval.digits_classifier``): bump it when the
rendering changes.
"""
from __future__ import annotations

import functools
from typing import Tuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sagan_tf.data import sources

VERSION = 1
SEED = 0
CLASSES = 10
TRAIN_COUNT = 3000
TEST_COUNT = 1000
SPLITS = {"train": (0, TRAIN_COUNT), "test": (1, TEST_COUNT)}  # stream, count
OVERSAMPLE = 4  # drawn at 4x the output size, then box-filtered down
MARGIN = 1  # output pixels kept free around the glyph
DIGIT_HEIGHT = 0.72  # Aileron's digit height per font size (measured: 0.71-0.74)


def _poses(rng: np.random.Generator, n: int) -> dict:
  """The random parameters of n glyphs (see ``render``)."""
  return dict(height=rng.uniform(0.40, 0.80, n), stroke=rng.uniform(0, 0.06, n),
              stretch=rng.uniform(0.8, 1.2, n), angle=rng.uniform(-25, 25, n),
              shear=rng.uniform(-0.3, 0.3, n), place=rng.uniform(0, 1, (n, 2)))


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont:
  return ImageFont.load_default(size=size)


def render(digit: int, image_size: int, *, height: float, stroke: float,
           stretch: float, angle: float, shear: float, place) -> np.ndarray:
  """One glyph as uint8 [S, S]: ink 0 on paper 255 (see the module docstring).

  Args:
    digit: 0-9.
    image_size: output side S.
    height: digit height as a fraction of S (before rotation and shear).
    stroke: outline width added around the strokes, as a fraction of the font
      size.
    stretch: horizontal scale; angle: rotation in degrees (counter-clockwise);
    shear: horizontal shear (x += shear * y).
    place: two numbers in [0, 1]: where the glyph sits in the room left
      around it (0: left/top, 1: right/bottom).
  """
  canvas = image_size * OVERSAMPLE
  size = max(4, int(round(height * canvas / DIGIT_HEIGHT)))
  ink = Image.new("L", (canvas, canvas), 0)
  ImageDraw.Draw(ink).text((canvas / 2, canvas / 2), str(digit), fill=255,
                           font=_font(size), anchor="mm",
                           stroke_width=int(round(stroke * size)),
                           stroke_fill=255)
  # Output pixel (x, y) reads input A^-1 (x - c) + c, A = rotate @ shear @ stretch.
  t = np.deg2rad(angle)
  a = (np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
       @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([stretch, 1.0]))
  inv = np.linalg.inv(a)
  c = np.array([canvas / 2, canvas / 2])
  offset = c - inv @ c
  ink = ink.transform(ink.size, Image.Transform.AFFINE,
                      (inv[0, 0], inv[0, 1], offset[0], inv[1, 0], inv[1, 1],
                       offset[1]), resample=Image.Resampling.BICUBIC)
  box = ink.getbbox()
  if box is None:  # nothing drawn (cannot happen for 0-9 at these sizes)
    raise ValueError(f"glyph {digit} rendered empty at size {image_size}.")
  glyph = ink.crop(box)
  room = canvas - 2 * MARGIN * OVERSAMPLE
  if glyph.width > room or glyph.height > room:  # a wide rotated glyph: fit it
    scale = room / max(glyph.width, glyph.height)
    glyph = glyph.resize((max(1, int(glyph.width * scale)),
                          max(1, int(glyph.height * scale))),
                         Image.Resampling.BICUBIC)
  left = MARGIN * OVERSAMPLE + int(place[0] * (room - glyph.width))
  top = MARGIN * OVERSAMPLE + int(place[1] * (room - glyph.height))
  placed = Image.new("L", (canvas, canvas), 0)
  placed.paste(glyph, (left, top))
  small = placed.resize((image_size, image_size), Image.Resampling.BOX)
  return 255 - np.asarray(small, np.uint8)


@functools.lru_cache(maxsize=8)
def load_glyph_images(image_size: int, split: str = "train", seed: int = SEED
                      ) -> Tuple[np.ndarray, np.ndarray]:
  """The ``glyphs`` images of one split (offline, deterministic, cached).

  Args:
    image_size: output side S.
    split: "train" or "test" (held out).
    seed: the dataset's seed (default ``SEED``; not the training seed).
  Returns:
    (images uint8 [N, S, S, 3], labels int64 [N] in [0, 10), each class N / 10
    times); read-only. N is ``TRAIN_COUNT`` or ``TEST_COUNT``.
  Raises:
    DataError: an unknown split.
  """
  if split not in SPLITS:
    raise sources.DataError(f"dataset='glyphs' has splits {sorted(SPLITS)}; got "
                            f"split={split!r} (Config.split).")
  stream, count = SPLITS[split]
  rng = np.random.default_rng([seed, stream])
  labels = rng.permutation(np.arange(count) % CLASSES).astype(np.int64)
  poses = _poses(rng, count)
  images = np.stack([
      render(int(d), image_size, **{k: v[i] for k, v in poses.items()})
      for i, d in enumerate(labels)])
  images = np.repeat(images[..., None], 3, axis=-1)
  images.setflags(write=False)
  labels.setflags(write=False)
  return images, labels


def glyphs_source(config, split: str) -> sources.Source:
  """The split's glyphs as one in-memory unit of (image uint8, label) elements."""
  return sources.in_memory_source(
      config, "glyphs", *load_glyph_images(config.image_size, split), CLASSES)
