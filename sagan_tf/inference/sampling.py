"""Class-conditional samples from a generator, reproducible from one seed.

Noise z ~ N(0, I) (the official ``utils_ori.make_z_normal``) and the class labels are
drawn on the host with numpy, from two streams spawned from the seed and consumed in
order, batch after batch. A sample set thus depends on the seed alone, not on the
batch size or on the number of replicas that run the generator.

Labels are uniform over all classes (the official eval draws them with
``tf.multinomial`` over zero logits) or, for pictures, taken from a given list of
classes in runs (``--classes=1,2,3``: the first third of the images are class 1...).
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf


def parse_classes(text: Optional[str]) -> Optional[Tuple[int, ...]]:
  """"1,2,3" -> (1, 2, 3); "" or None -> None (uniform classes)."""
  if text is None or not str(text).strip():
    return None
  return tuple(int(p) for p in str(text).replace(" ", "").split(",") if p)


def class_runs(num: int, classes: Sequence[int]) -> np.ndarray:
  """`[num]` int32 labels: the classes in order, each repeated over a run."""
  per = -(-num // len(classes))  # ceil
  return np.repeat(np.asarray(classes, np.int32), per)[:num]


class NoiseAndLabels:
  """Streams (z `[B, z_dim]` float32, labels `[B]` int32) batches from a seed.

  Args:
    z_dim: noise size.
    num_classes: classes of the generator.
    seed: the one seed of the sample set.
    classes: None for uniform labels; else a list of classes (see ``class_runs``,
      which then needs ``num``).
    num: total number of samples (needed with ``classes``).
  """

  def __init__(self, z_dim: int, num_classes: int, seed: int = 0,
               classes: Optional[Sequence[int]] = None, num: Optional[int] = None):
    z_seq, label_seq = np.random.SeedSequence(seed).spawn(2)
    self.z_rng = np.random.default_rng(z_seq)
    self.label_rng = np.random.default_rng(label_seq)
    self.z_dim = int(z_dim)
    self.num_classes = int(num_classes)
    if classes is not None:
      bad = [c for c in classes if not 0 <= c < num_classes]
      if bad:
        raise ValueError(f"classes {bad} are outside [0, {num_classes}).")
      if num is None:
        raise ValueError("classes need num.")
      self._fixed = class_runs(num, classes)
    else:
      self._fixed = None
    self._taken = 0

  def take(self, n: int):
    z = self.z_rng.standard_normal((n, self.z_dim), dtype=np.float32)
    if self._fixed is None:
      labels = self.label_rng.integers(0, self.num_classes, n).astype(np.int32)
    else:
      labels = self._fixed[self._taken:self._taken + n]
      if len(labels) < n:
        raise ValueError(f"Asked beyond the {len(self._fixed)} planned samples.")
    self._taken += n
    return z, labels

  def batches(self, num: int, batch_size: int) -> Iterator[tuple]:
    """Yields batches of at most batch_size until num samples are given."""
    done = 0
    while done < num:
      n = min(batch_size, num - done)
      yield self.take(n)
      done += n


def generate(generator, num: int, seed: int = 0,
             classes: Optional[Sequence[int]] = None, batch_size: int = 64,
             update_u=False, training: bool = False):
  """Samples ``num`` images from ``generator`` at inference (``training=False``).

  The BN statistics are those the generator holds (``sagan_tf.inference.bn_stats.prepare``
  sets standing ones); ``training=True`` normalises each batch with its own
  moments instead (``bn_stats`` mode "batch": the images then depend on
  ``batch_size``).

  Args:
    generator: a sagan_tf Generator (attributes z_dim, num_classes).
    num: number of images.
    seed: seed of noise and labels.
    classes: None for uniform classes, else the classes to draw (in runs).
    batch_size: images per generator call.
    update_u: passed to the generator. False (default): every batch starts from
      the checkpoint's spectral-norm ``u``, so the images do not depend on the
      batch size. None: the variant's rule (the official generator writes ``u``
      back at inference too; in memory only, nothing is saved here).

  Returns:
    (images `[num, S, S, 3]` float32 in [-1, 1], labels `[num]` int32).
  """
  stream = NoiseAndLabels(generator.z_dim, generator.num_classes, seed, classes,
                          num)

  @tf.function(reduce_retracing=True)
  def run(z, labels):
    return generator(z, labels, training=training, update_u=update_u)

  images, labels = [], []
  for z, y in stream.batches(num, batch_size):
    images.append(run(tf.constant(z), tf.constant(y)).numpy())
    labels.append(y)
  return np.concatenate(images), np.concatenate(labels)
