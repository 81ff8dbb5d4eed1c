"""Real-image statistics, computed once per protocol and cached in an .npz file.

The statistics (``metrics.SetStats``: pool_3 mean and covariance, a KID subset of
activations, the real images' IS) depend on the dataset, its split, the image
resolution, the number of images and the Inception network. Those, with the KID
subset size and a format version, make the cache key; the file is
``CACHE_DIR/real_stats_<sha1 of the key>.npz`` and stores the key too, which is
checked on load. Changing any of them computes (and caches) new statistics.

Real images come from ``sagan_tf.data.pipeline.make_dataset(config, batch_size, split=...,
shuffle=False, repeat=False)``: the first ``num_real`` images of the split in file
order, as the official eval read the first 50,000 training images
(``utils_ori.get_real_activations``; its shuffle buffer of 5,000 is not reproduced,
so the set is deterministic). A split with fewer images gives all of them, with a
warning; the count used is stored with the statistics.

Per-class statistics for intra-FID (``intra_fid_classes`` k > 0: classes 0..k-1,
each class's count, pool_3 mean and unbiased covariance over the same images,
grouped by their dataset labels) are cached beside them in
``CACHE_DIR/real_class_stats_<sha1 of the key + k>.npz``: k x (D^2 + D) float64,
335 MB for 10 classes of 2048-d Inception features. They are computed in the same
pass as the global statistics; asking them when only the global ones are cached
runs that pass again.

The default cache folder is ``$SAGAN_TF_CACHE_DIR`` or ``~/.cache/sagan_tf``.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Callable, Optional, Tuple

import numpy as np
from absl import logging

from eval import features
from eval import manifold
from eval import metrics
from sagan_tf.data.pipeline import make_dataset

FORMAT_VERSION = 1
REAL_KID_SEED = 0  # fixed: the real subset must not change with the sample seed


def default_cache_dir() -> str:
  return os.environ.get("SAGAN_TF_CACHE_DIR",
                        os.path.join(os.path.expanduser("~"), ".cache", "sagan_tf"))


def cache_key(config, split: str, num_real: int, inception_identity: str,
              kid_max_samples: int) -> dict:
  """Everything the real statistics depend on."""
  return dict(version=FORMAT_VERSION, dataset=config.dataset,
              tfrecord_pattern=config.tfrecord_pattern or None, split=split,
              image_size=config.image_size, num_real=int(num_real),
              inception=inception_identity, kid_max_samples=int(kid_max_samples))


def cache_path(cache_dir: str, key: dict) -> str:
  digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
  return os.path.join(cache_dir, f"real_stats_{digest}.npz")


def class_cache_path(cache_dir: str, key: dict, classes: int) -> str:
  return cache_path(cache_dir, dict(key, intra_fid_classes=int(classes))).replace(
      "real_stats_", "real_class_stats_")


def _load(path: str, key: dict, from_arrays: Callable):
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as f:
      if json.loads(str(f["key"])) != key:
        logging.warning("Real statistics %s hold another protocol; recomputing.", path)
        return None
      return from_arrays(f)
  except (OSError, ValueError, KeyError) as e:
    logging.warning("Unreadable real statistics %s (%s); recomputing.", path, e)
    return None


def _save(path: str, key: dict, arrays: dict):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npz"
  np.savez(tmp, key=np.array(json.dumps(key, sort_keys=True)), **arrays)
  os.replace(tmp, path)  # atomic: concurrent evaluators never read half a file


def _default_dataset_fn(config, batch_size: int, split: str):
  return make_dataset(config, batch_size, split=split, shuffle=False, repeat=False)


def _first_images(dataset, num: int):
  """Yields (images, labels) numpy batches from the dataset's (images, labels)
  batches (labels None when it has none), num images in all."""
  seen = 0
  for batch in dataset:
    images, labels = batch if isinstance(batch, (tuple, list)) else (batch, None)
    images = np.asarray(images)[:num - seen]
    if labels is not None:
      labels = np.asarray(labels).reshape(-1)[:len(images)]
    seen += len(images)
    yield images, labels
    if seen >= num:
      return


def real_stats(config, classifier, *, num_real: int, split: Optional[str] = None,
               cache_dir: Optional[str] = None, strategy=None,
               batch_size: int = 100,
               kid_max_samples: int = metrics.DEFAULT_KID_MAX_SAMPLES,
               dataset_fn: Optional[Callable] = None,
               log_every: int = 50,
               intra_fid_classes: int = 0) -> Tuple[metrics.SetStats, dict]:
  """Returns (statistics of the real images, info), from the cache when it can.

  Args:
    config: the run's Config (dataset, tfrecord_pattern, data_dir, image_size, split).
    classifier: an ``eval.inception.Classifier`` (its ``identity`` keys the cache).
    num_real: number of real images.
    split: dataset split; default ``config.split``.
    cache_dir: folder of the cache files; default ``default_cache_dir()``.
    strategy: tf.distribute strategy running the classifier.
    batch_size: images per classifier call.
    kid_max_samples: size of the KID subset kept.
    dataset_fn: ``(config, batch_size, split) -> iterable of (images, labels)``
      batches; default ``sagan_tf.data.pipeline.make_dataset`` without shuffling or repeat.
    intra_fid_classes: k > 0: also the per-class statistics of classes 0..k-1
      (``SetStats.per_class``; classes with fewer than 2 images are left out).

  Returns:
    (SetStats, info) where info holds the cache ``key``, its ``path``, ``cached``
    (whether it was read from the cache), ``count`` (real images used) and, with
    ``intra_fid_classes``, ``class_path``.
  """
  split = split or config.split
  cache_dir = cache_dir or default_cache_dir()
  key = cache_key(config, split, num_real, classifier.identity, kid_max_samples)
  path = cache_path(cache_dir, key)
  class_path = (class_cache_path(cache_dir, key, intra_fid_classes)
                if intra_fid_classes > 0 else None)
  stats = _load(path, key, metrics.SetStats.from_arrays)
  per_class = class_path and _load(class_path, dict(key, intra_fid_classes=int(
      intra_fid_classes)), manifold.class_stats_from_arrays)
  cached = stats is not None and (class_path is None or per_class is not None)
  if not cached:
    logging.info("Computing real statistics (%s) into %s", key, path)
    dataset = (dataset_fn or _default_dataset_fn)(config, batch_size, split)
    batches = _first_images(dataset, num_real)
    moments = None
    if class_path:
      moments = manifold.ClassMoments(range(intra_fid_classes))
      batches = _with_labels(batches, config.dataset)
    else:
      batches = (images for images, _ in batches)
    stats = features.image_set_stats(
        batches, classifier, strategy=strategy, batch_size=batch_size,
        expected_count=num_real, kid_max_samples=kid_max_samples,
        seed=REAL_KID_SEED, what="real", log_every=log_every,
        class_moments=moments)
    if stats.count < num_real:
      logging.warning("Split %r of %r has only %d images (asked %d): the real "
                      "statistics use all of them.", split, config.dataset,
                      stats.count, num_real)
    _save(path, key, stats.to_arrays())
    if class_path:
      per_class = stats.per_class
      _save(class_path, dict(key, intra_fid_classes=int(intra_fid_classes)),
            manifold.class_stats_to_arrays(per_class))
  stats.per_class = per_class or None
  info = dict(key=key, path=path, cached=cached, count=stats.count)
  if class_path:
    info["class_path"] = class_path
  return stats, info


def _with_labels(batches, dataset: str):
  for images, labels in batches:
    if labels is None:
      raise ValueError(f"Intra-FID needs the real images' labels, but the "
                       f"{dataset!r} batches have none; set intra_fid_classes=0.")
    yield images, labels
