"""Sample grids: the truncation trick, latent and class interpolation.

Not in the official SAGAN code; the peers' (BigGAN, Brock et al. 2019) ways of
looking at a class-conditional generator:

* Truncation trick (BigGAN 3.1): every entry of z with |z| > threshold is redrawn
  from N(0, 1) until it falls inside, so z follows a normal truncated to
  [-threshold, threshold]. Entries already inside are kept: a truncated set is the
  untruncated set of the same seed with only its outlying entries replaced.
* Latent interpolation: each row holds one pair of noises (z_a, z_b) and one class;
  column j is z = (1 - t_j) z_a + t_j z_b, t_j = j / (steps - 1). Linear, as in the
  BigGAN and SAGAN figures, rather than slerp: the endpoints are exactly the plain
  samples, and with truncation every point stays inside the truncation box (a
  convex set). The midpoint's norm is smaller (about 1/sqrt(2) of the endpoints'
  for independent noises); slerp would keep it but leaves the box.
* Class interpolation: each row holds one (class_a, class_b) pair and one z; column
  j mixes the two classes' conditional batch-norm parameters,
  gamma = (1 - t_j) gamma_a + t_j gamma_b (same for beta), through
  ``ConditionalBatchNorm``'s `[N, num_classes]` mixture labels.

Noise and labels come from ``sagan_tf.inference.sampling.NoiseAndLabels`` (the seed's noise and
label streams); the truncation redraws come from a third stream spawned from the
same seed. Every function takes a ready generator and the ``training`` and
``update_u`` arguments of ``sagan_tf.inference.sampling.generate`` (default: inference, stored
``u``), so a grid is made the same way as the plain samples.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

from sagan_tf.inference import sampling
from sagan_tf import images as images_lib

GRIDS = ("samples", "latent_interp", "class_interp")


class Grid(NamedTuple):
  """A grid of generated images, row by row.

  images: `[rows * cols, S, S, 3]` float32 in [-1, 1]; z: `[rows * cols, z_dim]`;
  labels: `[rows * cols]` int32 (None for class interpolation); class_weights:
  `[rows * cols, num_classes]` float32 mixture weights (class interpolation only).
  """
  images: np.ndarray
  rows: int
  cols: int
  z: np.ndarray
  labels: Optional[np.ndarray] = None
  class_weights: Optional[np.ndarray] = None


def parse_pairs(text: Optional[str]) -> Tuple[Tuple[int, int], ...]:
  """"3,7;1,2" -> ((3, 7), (1, 2))."""
  pairs = []
  for part in str(text or "").replace(" ", "").split(";"):
    if not part:
      continue
    items = part.split(",")
    if len(items) != 2:
      raise ValueError(f"{part!r} is not a class pair: write 'a,b;c,d', e.g. "
                       "'3,7;1,2'.")
    pairs.append((int(items[0]), int(items[1])))
  if not pairs:
    raise ValueError("no class pairs: write 'a,b;c,d', e.g. '3,7;1,2'.")
  return tuple(pairs)


def check_truncation(threshold):
  """None/0 -> None (off); a positive float -> itself; else ValueError."""
  if threshold is None or threshold == 0:
    return None
  if not threshold > 0:
    raise ValueError(f"truncation={threshold} must be > 0 (0 or unset = off).")
  return float(threshold)


def truncation_rng(seed: int) -> np.random.Generator:
  """The redraw stream of a seed: child 2 of its SeedSequence (children 0 and 1
  are sagan_tf.inference.sampling's noise and label streams)."""
  return np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])


def truncate(z, threshold, rng: np.random.Generator) -> np.ndarray:
  """Redraws the entries of z with |z| > threshold until all are inside.

  Args:
    z: `[..., z_dim]` float noise (not modified).
    threshold: > 0, or None/0 for no truncation (z returned as a copy).
    rng: source of the redraws (deterministic given its seed).

  Returns:
    float32 array like z, |entries| <= threshold; entries inside are unchanged.
  """
  z = np.array(z, np.float32)
  threshold = check_truncation(threshold)
  if threshold is None:
    return z
  outside = np.abs(z) > threshold
  while outside.any():
    z[outside] = rng.standard_normal(int(outside.sum()), dtype=np.float32)
    outside = np.abs(z) > threshold
  return z


def run_generator(generator, z, labels, batch_size=64, training=False,
                  update_u=False) -> np.ndarray:
  """generator(z, labels, training, update_u) in batches, as sagan_tf.inference.sampling.generate.

  Args:
    z: `[N, z_dim]` noise; labels: `[N]` int or `[N, num_classes]` float weights.

  Returns:
    `[N, S, S, 3]` float32 images.
  """
  label_dtype = tf.int32 if np.ndim(labels) == 1 else tf.float32

  @tf.function(reduce_retracing=True)
  def run(z, labels):
    return generator(z, labels, training=training, update_u=update_u)

  out = []
  for i in range(0, len(z), batch_size):
    out.append(run(tf.constant(z[i:i + batch_size], tf.float32),
                   tf.constant(labels[i:i + batch_size], label_dtype)).numpy())
  return np.concatenate(out)


def interpolation_weights(steps: int) -> np.ndarray:
  """`[steps]` t from 0 to 1 inclusive (exactly 0 and 1 at the ends)."""
  if steps < 2:
    raise ValueError(f"interp_steps={steps} must be >= 2 (the two endpoints).")
  return np.linspace(0.0, 1.0, steps).astype(np.float32)


def sample_grid(generator, num, seed=0, classes=None, truncation=None,
                batch_size=64, training=False, update_u=False) -> Grid:
  """``num`` plain samples (as sagan_tf.inference.sampling.generate draws them), optionally
  truncated; a square grid."""
  stream = sampling.NoiseAndLabels(generator.z_dim, generator.num_classes, seed,
                                   classes, num)
  z, labels = stream.take(num)
  z = truncate(z, truncation, truncation_rng(seed))
  images = run_generator(generator, z, labels, batch_size, training, update_u)
  rows, cols = images_lib.grid_shape(num)
  return Grid(images, rows, cols, z, labels)


def latent_interpolation(generator, rows, steps, seed=0, classes=None,
                         truncation=None, batch_size=64, training=False,
                         update_u=False) -> Grid:
  """Rows of linear interpolations between two noises, one class per row.

  Args:
    rows: number of (z_a, z_b) pairs.
    steps: images per row (t = 0 ... 1).
    classes: the rows' classes, cycled; None: uniform from the seed.
  """
  rows = int(rows)
  if rows < 1:
    raise ValueError(f"interp_rows={rows} must be >= 1.")
  t = interpolation_weights(steps)[None, :, None]  # [1, steps, 1]
  stream = sampling.NoiseAndLabels(generator.z_dim, generator.num_classes, seed)
  z, labels = stream.take(2 * rows)
  z = truncate(z, truncation, truncation_rng(seed))
  if classes is not None:
    bad = [c for c in classes if not 0 <= c < generator.num_classes]
    if bad:
      raise ValueError(f"classes {bad} are outside [0, {generator.num_classes}).")
    labels = np.resize(np.asarray(classes, np.int32), rows)
  else:
    labels = labels[0::2]
  z_a, z_b = z[0::2, None], z[1::2, None]  # [rows, 1, z_dim]
  z_grid = ((1.0 - t) * z_a + t * z_b).reshape(rows * steps, -1)
  labels = np.repeat(labels, steps).astype(np.int32)
  images = run_generator(generator, z_grid, labels, batch_size, training,
                         update_u)
  return Grid(images, rows, steps, z_grid, labels)


def class_interpolation(generator, pairs: Sequence[Tuple[int, int]], steps,
                        seed=0, truncation=None, batch_size=64, training=False,
                        update_u=False) -> Grid:
  """Rows mixing the CBN parameters of two classes, one noise per row.

  Args:
    pairs: (class_a, class_b) per row.
    steps: images per row (t = 0: class_a, t = 1: class_b).
  """
  n_cls = generator.num_classes
  bad = [c for pair in pairs for c in pair if not 0 <= c < n_cls]
  if bad:
    raise ValueError(f"interp_classes {bad} are outside [0, {n_cls}).")
  rows = len(pairs)
  t = interpolation_weights(steps)[None, :, None]  # [1, steps, 1]
  stream = sampling.NoiseAndLabels(generator.z_dim, n_cls, seed)
  z, _ = stream.take(rows)
  z = truncate(z, truncation, truncation_rng(seed))
  eye = np.eye(n_cls, dtype=np.float32)
  a, b = (eye[[p[i] for p in pairs]][:, None] for i in (0, 1))  # [rows, 1, C]
  weights = ((1.0 - t) * a + t * b).reshape(rows * steps, n_cls)
  z_grid = np.repeat(z, steps, axis=0)
  images = run_generator(generator, z_grid, weights, batch_size, training,
                         update_u)
  return Grid(images, rows, steps, z_grid, class_weights=weights)


def write_grid(grid: Grid, png=None, npz=None):
  """Writes the grid as a PNG (rows x cols) and/or an .npz (images uint8, z,
  labels or class_weights); any tf.io.gfile path. Returns the paths written."""
  images = images_lib.to_uint8(grid.images)
  written = []
  if png:
    written.append(images_lib.save_png(
        png, images_lib.image_grid(images, grid.rows, grid.cols)))
  if npz:
    arrays = dict(images=images, z=grid.z)
    if grid.labels is not None:
      arrays["labels"] = grid.labels
    if grid.class_weights is not None:
      arrays["class_weights"] = grid.class_weights
    written.append(images_lib.save_npz(npz, **arrays))
  return written
