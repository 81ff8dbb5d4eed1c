"""A tiny stand-in for the Inception network, for tests (no download, milliseconds).

``save_tiny_classifier(folder)`` writes a SavedModel with the TF-GAN Inception
module's call signature: images `[N, 299, 299, 3]` float32 in [-1, 1] ->
``{"logits": [N, num_classes], "pool_3": [N, 1, 1, dim]}``. It is loaded through
the same ``eval.inception.load_classifier(path)`` code path as a local copy of the
real network. It pools 23x23 blocks, then applies fixed random projections.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from eval.inception import INCEPTION_SIZE

_POOL = 23  # 299 = 13 * 23


class _TinyClassifier(tf.Module):

  def __init__(self, num_classes: int, dim: int, seed: int):
    super().__init__()
    rng = np.random.default_rng(seed)
    cells = (INCEPTION_SIZE // _POOL) ** 2 * 3
    self.w = tf.Variable((rng.normal(size=(cells, dim)) * 2.0 / np.sqrt(cells))
                         .astype(np.float32))
    self.v = tf.Variable((rng.normal(size=(dim, num_classes)) * 2.0)
                         .astype(np.float32))
    self.dim = dim

  @tf.function(input_signature=[
      tf.TensorSpec([None, INCEPTION_SIZE, INCEPTION_SIZE, 3], tf.float32)])
  def __call__(self, images):
    x = tf.nn.avg_pool2d(images, _POOL, _POOL, "VALID")
    h = tf.tanh(tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1]), self.w))
    return {"logits": tf.matmul(h, self.v),
            "pool_3": tf.reshape(h, [-1, 1, 1, self.dim])}


def save_tiny_classifier(folder: str, num_classes: int = 10, dim: int = 16,
                         seed: int = 0) -> str:
  """Writes the tiny classifier SavedModel into ``folder``; returns folder."""
  tf.saved_model.save(_TinyClassifier(num_classes, dim, seed), folder)
  return folder
