"""Classifier outputs of image sets, computed batch by batch across replicas.

Batches are prepared on the host (real images from a dataset, or noise and labels for
the generator), padded to the global batch size, split evenly over the replicas of a
``tf.distribute`` strategy and run by ``strategy.run`` inside one ``tf.function``
(generator and Inception together for generated images, so images never leave the
device). The per-replica outputs come back to the host, lose the padding and go into
a ``metrics.StatsAccumulator`` (and, for intra-FID, a ``manifold.ClassMoments``):
memory stays flat whatever the number of images.

Progress is logged (absl logging) every ``log_every`` batches with images/s.

One host: the outputs of its local replicas are gathered (default strategy or
``MirroredStrategy``); multi-worker evaluation is not supported.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from eval import manifold
from eval import metrics
from sagan_tf.inference.sampling import NoiseAndLabels


class ReplicaRunner:
  """Runs ``fn(*arrays) -> {"logits", "pool_3"}`` on host batches over replicas.

  Args:
    fn: a per-replica function of tensors with a leading batch dimension.
    strategy: a tf.distribute strategy (default: the current one).
    batch_size: the global batch size; raised to a multiple of the replica count.
    pad: fill a short (last) batch up to ``batch_size`` with copies of its last
      row, so every call has one shape (one trace). False: run it at its own size,
      its rows spread as evenly as the replicas allow (one more trace), for a
      function whose rows interact (batch-statistics BN: padding rows would enter
      the batch moments).
  """

  def __init__(self, fn: Callable, strategy=None, batch_size: int = 100,
               pad: bool = True):
    self.pad = pad
    self.strategy = strategy or tf.distribute.get_strategy()
    replicas = self.strategy.num_replicas_in_sync
    self.batch_size = -(-int(batch_size) // replicas) * replicas
    strategy = self.strategy

    @tf.function
    def step(args):
      out = strategy.run(fn, args=args)
      return tf.nest.map_structure(
          lambda v: tf.concat(strategy.experimental_local_results(v), 0), out)

    self._step = step

  def __call__(self, *arrays):
    """Runs one host batch (at most batch_size rows); returns numpy outputs."""
    n = len(arrays[0])
    if n > self.batch_size:
      raise ValueError(f"Batch of {n} exceeds the batch size {self.batch_size}.")
    if self.pad:
      arrays = tuple(
          np.concatenate([a, np.repeat(a[-1:], self.batch_size - n, axis=0)])
          if n < self.batch_size else np.asarray(a) for a in arrays)
    rows = len(arrays[0])
    replicas = self.strategy.num_replicas_in_sync
    cuts = [r * rows // replicas for r in range(replicas + 1)]  # even when padded
    args = self.strategy.experimental_distribute_values_from_function(
        lambda ctx: tuple(
            tf.constant(a[cuts[ctx.replica_id_in_sync_group]:
                          cuts[ctx.replica_id_in_sync_group + 1]]) for a in arrays))
    out = self._step(args)
    return {key: value.numpy()[:n] for key, value in out.items()}


def _accumulate(batches: Iterable[tuple], runner: ReplicaRunner,
                accumulator: metrics.StatsAccumulator, total: Optional[int],
                what: str, log_every: int, num_inputs: int,
                on_batch: Optional[Callable] = None,
                class_moments: Optional[manifold.ClassMoments] = None
                ) -> metrics.SetStats:
  """Runs ``runner`` on the first ``num_inputs`` arrays of each batch; with
  ``class_moments``, the batch's ``arrays[1]`` are the labels of its rows."""
  start = last_time = time.time()
  done = last_done = 0
  for i, arrays in enumerate(batches, start=1):
    out = runner(*arrays[:num_inputs])
    accumulator.update(out["logits"], out["pool_3"])
    if class_moments is not None:
      class_moments.update(out["pool_3"], arrays[1])
    if on_batch is not None:
      on_batch(arrays, out)
    done += len(arrays[0])
    if log_every and (i % log_every == 0):
      now = time.time()  # rate since the last report (the first includes tracing)
      rate = (done - last_done) / max(now - last_time, 1e-9)
      last_time, last_done = now, done
      logging.info("%s: %d%s images (%.1f images/s)", what, done,
                   f"/{total}" if total else "", rate)
  logging.info("%s: %d images in %.1f s", what, done, time.time() - start)
  stats = accumulator.result()
  if class_moments is not None:
    stats.per_class = class_moments.stats()
  return stats


def image_set_stats(batches: Iterable, classifier, *, strategy=None,
                    batch_size: int = 100, expected_count: Optional[int] = None,
                    is_splits: int = 1,
                    kid_max_samples: int = metrics.DEFAULT_KID_MAX_SAMPLES,
                    seed: int = 0, what: str = "images",
                    log_every: int = 50,
                    class_moments: Optional[manifold.ClassMoments] = None
                    ) -> metrics.SetStats:
  """Statistics of a stream of image batches `[b, H, W, 3]` float in [-1, 1].

  Batches may have any size; they are re-cut to ``batch_size`` (in order). With
  ``class_moments`` (for intra-FID) each batch is a pair (images, int labels
  `[b]`), and the result's ``per_class`` holds ``class_moments.stats()``.
  """
  runner = ReplicaRunner(lambda x: classifier(x), strategy, batch_size)
  size_of = runner.batch_size

  def rebatched():
    pending, size = [], 0
    for b in batches:
      b = tuple(b) if class_moments is not None else (b,)
      pending.append((np.asarray(b[0], np.float32),) + tuple(map(np.asarray, b[1:])))
      size += len(b[0])
      while size >= size_of:
        cat = [np.concatenate(parts) for parts in zip(*pending)]
        yield tuple(a[:size_of] for a in cat)
        pending, size = [tuple(a[size_of:] for a in cat)], size - size_of
    if size:
      yield tuple(np.concatenate(parts) for parts in zip(*pending))

  acc = metrics.StatsAccumulator(expected_count, is_splits, kid_max_samples, seed)
  return _accumulate(rebatched(), runner, acc, expected_count, what, log_every,
                     num_inputs=1, class_moments=class_moments)


def generated_stats(generator, classifier, num: int, *, seed: int = 0,
                    strategy=None, batch_size: int = 100, update_u=False,
                    is_splits: int = 1,
                    kid_max_samples: int = metrics.DEFAULT_KID_MAX_SAMPLES,
                    log_every: int = 50, training: bool = False,
                    class_moments: Optional[manifold.ClassMoments] = None
                    ) -> metrics.SetStats:
  """Statistics of ``num`` generated images, classes uniform.

  The generator runs at inference (``training=False``) with whatever BN statistics
  it holds (``sagan_tf.inference.bn_stats.prepare`` sets them); ``training=True`` normalises
  each batch with its own moments (``bn_stats`` mode "batch"; a short last batch
  then runs unpadded, so its moments are those of its own samples). When the classifier has
  ``labels_match_classes`` (``eval.digits_classifier``), the result's
  ``class_accuracy`` is the fraction of samples whose top logit is their class.

  Args:
    generator: a sagan_tf Generator (built under ``strategy``'s scope when it has
      several replicas).
    classifier: an ``eval.inception.Classifier`` (or any images -> dict callable).
    num: number of samples (official 50,000).
    seed: seed of noise and labels (see ``sagan_tf.inference.sampling``).
    update_u: passed to the generator. False (default): every batch starts from
      the checkpoint's spectral-norm ``u``. None: the variant's rule (the official
      generator writes ``u`` at inference too; in memory, never saved).
    class_moments: an ``eval.manifold.ClassMoments`` fed with each sample's
      features and the class it was drawn for (intra-FID); the result's
      ``per_class`` holds its ``stats()``.
  """

  def fn(z, labels):
    return classifier(generator(z, labels, training=training, update_u=update_u))

  runner = ReplicaRunner(fn, strategy, batch_size, pad=not training)
  stream = NoiseAndLabels(generator.z_dim, generator.num_classes, seed)
  acc = metrics.StatsAccumulator(num, is_splits, kid_max_samples, seed)
  counts = [0, 0]  # correct, seen

  def count_correct(arrays, out):
    labels = np.asarray(arrays[1])
    counts[0] += int(np.sum(np.argmax(out["logits"], axis=1) == labels))
    counts[1] += len(labels)

  with_accuracy = bool(getattr(classifier, "labels_match_classes", False))
  stats = _accumulate(stream.batches(num, runner.batch_size), runner, acc, num,
                      "generated", log_every, num_inputs=2,
                      on_batch=count_correct if with_accuracy else None,
                      class_moments=class_moments)
  if with_accuracy:
    stats.class_accuracy = counts[0] / max(counts[1], 1)
  return stats
