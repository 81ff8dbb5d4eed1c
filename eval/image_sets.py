"""Two image sets compared directly: ``launch.eval --images_a=A.npz --images_b=B.npz``.

Each set is an .npz with uint8 ``images`` `[N, H, W, 3]` and optional int ``labels``
`[N]`. Set b is measured against set a in the classifier's features: FID, KID,
precision/recall and density/coverage (``eval.manifold.all_metrics``), the IS of
each set, and the intra-FID when both sets carry labels (running per-class moments,
``eval.manifold.ClassMoments``). No generator, no cache: both sets are read whole.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from eval import features
from eval import manifold
from eval import metrics


class ImageSetError(ValueError):
  """An .npz image set that cannot be used; the message is one line: what is
  wrong and how to fix it."""


def load_image_set(path: str, where: Optional[str] = None):
  """Reads an image set: uint8 ``images`` `[N, H, W, 3]` and optional int ``labels``
  `[N]` of the .npz at ``path`` (local or any ``tf.io.gfile`` URL).

  Args:
    path: the .npz file.
    where: how to name the file in errors (e.g. ``--images_a=PATH``).

  Returns:
    (images, labels or None).

  Raises:
    ImageSetError: a missing or unreadable file, no ``images`` array, images that
      are not uint8 ``[N, H, W, 3]``, or ``labels`` that are not ints ``[N]``.
  """
  import zipfile  # pylint: disable=g-import-not-at-top
  where = where or path
  how = f"save the images with np.savez({path!r}, images=<uint8 [N, H, W, 3]>)"
  if not tf.io.gfile.exists(path):
    raise ImageSetError(f"{where}: no such file.")
  labels = None
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      data = np.load(f, allow_pickle=False)
      if not isinstance(data, np.lib.npyio.NpzFile):
        raise ImageSetError(f"{where} is a single .npy array, not an .npz; {how}.")
      if "images" not in data.files:
        raise ImageSetError(f"{where} has no 'images' array (it has "
                            f"{sorted(data.files)}); {how}.")
      images = data["images"]
      if "labels" in data.files:
        labels = data["labels"]
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    if isinstance(e, ImageSetError):
      raise
    raise ImageSetError(f"{where} is not an .npz file ({e}); {how}.") from None
  if images.ndim == 3:
    raise ImageSetError(
        f"{where}: images {images.shape} have no channel axis; add one, e.g. "
        f"np.repeat(images[..., None], 3, axis=-1) for grayscale.")
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ImageSetError(f"{where}: images must be [N, H, W, 3], got shape "
                        f"{images.shape}.")
  if np.issubdtype(images.dtype, np.floating):
    raise ImageSetError(
        f"{where}: images are {images.dtype} (range {float(images.min()):g} to "
        f"{float(images.max()):g}), not uint8; convert them, e.g. for [-1, 1]: "
        f"((x + 1) * 127.5).round().clip(0, 255).astype(np.uint8).")
  if images.dtype != np.uint8:
    raise ImageSetError(f"{where}: images are {images.dtype}; they must be "
                        f"uint8 in 0..255 (x.astype(np.uint8)).")
  if labels is not None and (labels.shape != (len(images),)
                             or not np.issubdtype(labels.dtype, np.integer)):
    raise ImageSetError(f"{where}: labels must be ints [{len(images)}] (one per "
                        f"image), got {labels.dtype} {labels.shape}; drop them or "
                        f"fix them.")
  return images, labels


def _batches_of(images: np.ndarray, batch_size: int):
  for i in range(0, len(images), batch_size):
    yield images[i:i + batch_size].astype(np.float32) / 127.5 - 1.0


def compare_image_sets(images_a: np.ndarray, images_b: np.ndarray, classifier, *,
                       labels_a: Optional[np.ndarray] = None,
                       labels_b: Optional[np.ndarray] = None,
                       strategy=None, batch_size: int = 100, is_splits: int = 1,
                       kid_max_samples: int = metrics.DEFAULT_KID_MAX_SAMPLES,
                       log_every: int = 50,
                       intra_fid_classes: Optional[int] = None) -> Dict[str, float]:
  """FID, KID, precision/recall and density/coverage of set b against set a, the
  IS of each, and the intra-FID when both sets have labels.

  ``intra_fid_classes`` k: the intra-FID over classes 0..k-1 only (0: none; None:
  every class). Memory: 2 k D^2 float64 of per-class moments (670 MB for k = 10
  at D = 2048; every class of ImageNet would be 67 GB).

  Returns:
    dict(fid, kid, is_a, is_b, precision, recall, density, coverage[, intra_fid,
    intra_fid_classes]).
  """
  with_labels = (labels_a is not None and labels_b is not None
                 and intra_fid_classes != 0)
  kept = None if intra_fid_classes is None else range(int(intra_fid_classes))
  stats = []
  for name, images, labels in (("images_a", images_a, labels_a),
                               ("images_b", images_b, labels_b)):
    batches = _batches_of(images, batch_size)
    if with_labels:
      batches = zip(batches, (labels[i:i + batch_size]
                              for i in range(0, len(images), batch_size)))
    stats.append(features.image_set_stats(
        batches, classifier, strategy=strategy,
        batch_size=batch_size, expected_count=len(images), is_splits=is_splits,
        kid_max_samples=kid_max_samples, seed=0, what=name, log_every=log_every,
        class_moments=manifold.ClassMoments(kept) if with_labels else None))
  values = manifold.all_metrics(stats[0], stats[1])
  out = dict(fid=values["FID"], kid=values["KID"],
             is_a=stats[0].inception_score, is_b=stats[1].inception_score,
             **{n: values[n] for n in manifold.PRDC_NAMES})
  if with_labels:
    intra = manifold.intra_fid(stats[0].per_class, stats[1].per_class)
    out.update(intra_fid=intra["intra_fid"], intra_fid_classes=intra["classes"])
  return out
