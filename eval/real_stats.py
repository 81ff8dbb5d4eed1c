"""Real-image statistics, computed once per protocol and cached in an .npz file.

The statistics (``metrics.SetStats``: pool_3 mean and covariance, a KID subset of
activations, the real images' IS) depend on the dataset, its split, the image
resolution, the number of images and the Inception network. Those, with the KID
subset size and a format version, make the cache key; the file is
``CACHE_DIR/real_stats_<sha1 of the key>.npz`` and stores the key too, which is
checked on load. Changing any of them computes (and caches) new statistics.

Real images come from ``sagan_tf.data.make_dataset(config, batch_size, split=...,
shuffle=False, repeat=False)``: the first ``num_real`` images of the split in file
order, as the official eval read the first 50,000 training images
(``utils_ori.get_real_activations``; its shuffle buffer of 5,000 is not reproduced,
so the set is deterministic). A split with fewer images gives all of them, with a
warning; the count used is stored with the statistics.

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
from eval import metrics

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


def _load(path: str, key: dict) -> Optional[metrics.SetStats]:
  if not os.path.exists(path):
    return None
  try:
    with np.load(path) as f:
      if json.loads(str(f["key"])) != key:
        logging.warning("Real statistics %s hold another protocol; recomputing.", path)
        return None
      return metrics.SetStats.from_arrays(f)
  except (OSError, ValueError, KeyError) as e:
    logging.warning("Unreadable real statistics %s (%s); recomputing.", path, e)
    return None


def _save(path: str, key: dict, stats: metrics.SetStats):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}.npz"
  np.savez(tmp, key=np.array(json.dumps(key, sort_keys=True)), **stats.to_arrays())
  os.replace(tmp, path)  # atomic: concurrent evaluators never read half a file


def _default_dataset_fn(config, batch_size: int, split: str):
  from sagan_tf.data import make_dataset  # pylint: disable=g-import-not-at-top
  return make_dataset(config, batch_size, split=split, shuffle=False, repeat=False)


def _first_images(dataset, num: int):
  """Yields image batches (numpy) from (images, labels) batches, num images in all."""
  seen = 0
  for batch in dataset:
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    images = np.asarray(images)[:num - seen]
    seen += len(images)
    yield images
    if seen >= num:
      return


def real_stats(config, classifier, *, num_real: int, split: Optional[str] = None,
               cache_dir: Optional[str] = None, strategy=None,
               batch_size: int = 100,
               kid_max_samples: int = metrics.DEFAULT_KID_MAX_SAMPLES,
               dataset_fn: Optional[Callable] = None,
               log_every: int = 50) -> Tuple[metrics.SetStats, dict]:
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
      batches; default ``sagan_tf.data.make_dataset`` without shuffling or repeat.

  Returns:
    (SetStats, info) where info holds the cache ``key``, its ``path``, ``cached``
    (whether it was read from the cache) and ``count`` (real images used).
  """
  split = split or config.split
  key = cache_key(config, split, num_real, classifier.identity, kid_max_samples)
  path = cache_path(cache_dir or default_cache_dir(), key)
  stats = _load(path, key)
  cached = stats is not None
  if not cached:
    logging.info("Computing real statistics (%s) into %s", key, path)
    dataset = (dataset_fn or _default_dataset_fn)(config, batch_size, split)
    stats = features.image_set_stats(
        _first_images(dataset, num_real), classifier, strategy=strategy,
        batch_size=batch_size, expected_count=num_real,
        kid_max_samples=kid_max_samples, seed=REAL_KID_SEED, what="real",
        log_every=log_every)
    if stats.count < num_real:
      logging.warning("Split %r of %r has only %d images (asked %d): the real "
                      "statistics use all of them.", split, config.dataset,
                      stats.count, num_real)
    _save(path, key, stats)
  return stats, dict(key=key, path=path, cached=cached, count=stats.count)
