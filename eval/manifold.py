"""Precision/recall, density/coverage and intra-FID from classifier features.

* Precision and recall (Kynkaanniemi et al., "Improved Precision and Recall Metric
  for Assessing Generative Models", NeurIPS 2019), k = 3: each real feature r gets
  the ball of radius ``NND_k(r)``, the distance to its k-th nearest *other* real
  feature; precision is the fraction of fake features inside at least one real
  ball. Recall swaps the roles (fake balls, fraction of real features covered).
* Density and coverage (Naeem et al., "Reliable Fidelity and Diversity Metrics for
  Generative Models", ICML 2020), k = 5, real balls only: density =
  ``sum_j #{i : f_j in B(r_i)} / (k M)`` (M fake features; can exceed 1), coverage =
  the fraction of real balls that hold at least one fake feature.
* Intra-FID (Miyato & Koyama 2018, reported by the SAGAN paper: 83.7 on ImageNet):
  the FID between the real and the generated images of each class, averaged over
  the classes, with TF-GAN's Frechet formula (``eval.metrics.frechet_distance``).

Balls are closed (``distance <= radius``), as in both papers' definitions.
Distances are Euclidean in float64, computed a block of rows at a time, so the
memory beyond the two feature sets is ``block x max(N, M)``.

Memory: the k-NN metrics need every feature of the sets they compare, so they are
not streamed: ``eval.metrics.StatsAccumulator`` keeps a seeded uniform subset of at
most ``kid_max_samples`` (10,000) features per set for KID, and the k-NN metrics run
on that same subset. Intra-FID keeps a running mean and covariance per class
(``ClassMoments``): flat in the number of images, but ``classes x D^2`` float64
(1000 classes of 2048-d pool_3 features would take 33 GB), so at ImageNet scale
it must be restricted to a subset of classes (``classes=``).
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional

import numpy as np

from eval import metrics

PRDC_NAMES = ("precision", "recall", "density", "coverage")
PR_K = 3  # Kynkaanniemi et al.
DC_K = 5  # Naeem et al.
_BLOCK = 1024


def _sq_norms(x: np.ndarray) -> np.ndarray:
  return np.einsum("ij,ij->i", x, x)


def _distance_blocks(a: np.ndarray, b: np.ndarray, block: int = _BLOCK):
  """Yields (start, distances [rows, len(b)]) for consecutive row blocks of ``a``."""
  b_sq = _sq_norms(b)
  for start in range(0, len(a), block):
    rows = a[start:start + block]
    sq = _sq_norms(rows)[:, None] + b_sq[None, :] - 2.0 * rows @ b.T
    yield start, np.sqrt(np.maximum(sq, 0.0))


def knn_radii(x: np.ndarray, k: int, block: int = _BLOCK) -> np.ndarray:
  """Distance of each row of ``x`` `[N, D]` to its k-th nearest other row, `[N]`."""
  x = np.asarray(x, np.float64)
  if len(x) <= k:
    raise ValueError(f"k-NN radii with k={k} need more than {k} features, got "
                     f"{len(x)}.")
  radii = np.empty(len(x))
  for start, d in _distance_blocks(x, x, block):
    # Each row's own zero distance is its smallest: the k-th other neighbour is
    # the (k+1)-th smallest value.
    radii[start:start + len(d)] = np.partition(d, k, axis=1)[:, k]
  return radii


def _coverage_counts(centres, radii, points, block: int = _BLOCK) -> np.ndarray:
  """For each row of ``points``, the number of balls (centres, radii) holding it."""
  counts = np.zeros(len(points), np.int64)
  for start, d in _distance_blocks(centres, points, block):
    counts += (d <= radii[start:start + len(d), None]).sum(axis=0)
  return counts


def precision_recall(real, fake, k: int = PR_K) -> Dict[str, float]:
  """Improved precision and recall of ``fake`` `[M, D]` against ``real`` `[N, D]`."""
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  precision = (_coverage_counts(real, knn_radii(real, k), fake) > 0).mean()
  recall = (_coverage_counts(fake, knn_radii(fake, k), real) > 0).mean()
  return dict(precision=float(precision), recall=float(recall))


def density_coverage(real, fake, k: int = DC_K) -> Dict[str, float]:
  """Density and coverage of ``fake`` `[M, D]` against ``real`` `[N, D]`."""
  real = np.asarray(real, np.float64)
  fake = np.asarray(fake, np.float64)
  radii = knn_radii(real, k)
  density = _coverage_counts(real, radii, fake).sum() / (k * len(fake))
  covered = np.zeros(len(real), bool)
  for start, d in _distance_blocks(real, fake):
    covered[start:start + len(d)] = (d <= radii[start:start + len(d), None]).any(1)
  return dict(density=float(density), coverage=float(covered.mean()))


def prdc(real, fake) -> Dict[str, float]:
  """Precision, recall (k=3), density and coverage (k=5) in one dict."""
  return {**precision_recall(real, fake), **density_coverage(real, fake)}


def all_metrics(real: metrics.SetStats, fake: metrics.SetStats) -> dict:
  """``metrics.compare`` plus precision, recall, density and coverage on the two
  sets' KID subsets (at most ``kid_max_samples`` uniform features each)."""
  values = metrics.compare(real, fake)
  values.update(prdc(real.kid_features, fake.kid_features))
  return values


class ClassMoments:
  """Running per-class mean and covariance of features, for intra-FID.

  Each class's rows wait in a buffer of at most ``flush_rows`` and are
  merged into its float64 sums ``flush_rows`` at a time: a merge costs a few
  passes over a `[D, D]` matrix whatever its row count, so merging every batch's
  few rows per class would cost classes x D^2 per batch. The buffers add
  ``classes x flush_rows x D`` float32 to the ``classes x D^2`` float64 sums (an
  eighth more at D = 2048).

  Args:
    classes: the classes to keep (others are ignored); None keeps every class seen.
    flush_rows: rows buffered per class before a merge.
  """

  def __init__(self, classes: Optional[Iterable[int]] = None,
               flush_rows: int = 512):
    self.classes = None if classes is None else {int(c) for c in classes}
    self.flush_rows = int(flush_rows)
    self.moments: Dict[int, metrics._Moments] = {}  # pylint: disable=protected-access
    self._pending: Dict[int, list] = {}

  def update(self, features, labels):
    """Adds features `[N, ...]` (flattened to `[N, D]`) with int labels `[N]`."""
    features = np.asarray(features)  # kept in their dtype (float32 from classifiers)
    features = features.reshape(len(features), -1)
    labels = np.asarray(labels).reshape(-1)
    if len(features) != len(labels):
      raise ValueError(f"{len(features)} features but {len(labels)} labels.")
    for c in np.unique(labels):
      c = int(c)
      if self.classes is not None and c not in self.classes:
        continue
      pending = self._pending.setdefault(c, [])
      pending.append(features[labels == c])
      if sum(len(p) for p in pending) >= self.flush_rows:
        self._flush(c)

  def _flush(self, c: int):
    pending = self._pending.pop(c, [])
    if pending:
      self.moments.setdefault(c, metrics._Moments()).update(  # pylint: disable=protected-access
          np.concatenate(pending))

  def stats(self) -> Dict[int, tuple]:
    """``{class: (count, mean [D], unbiased covariance [D, D])}`` (classes with >= 2)."""
    for c in list(self._pending):
      self._flush(c)
    return {c: (m.n, m.mean, m.covariance()) for c, m in sorted(self.moments.items())
            if m.n >= 2}


def class_stats_to_arrays(stats: Dict[int, tuple]) -> Dict[str, np.ndarray]:
  """``ClassMoments.stats()`` as arrays for an .npz: classes `[K]`, counts `[K]`,
  means `[K, D]`, covs `[K, D, D]` (float64)."""
  classes = sorted(stats)
  if not classes:
    return dict(classes=np.zeros([0], np.int64), counts=np.zeros([0], np.int64),
                means=np.zeros([0, 0]), covs=np.zeros([0, 0, 0]))
  return dict(classes=np.asarray(classes, np.int64),
              counts=np.asarray([stats[c][0] for c in classes], np.int64),
              means=np.stack([stats[c][1] for c in classes]),
              covs=np.stack([stats[c][2] for c in classes]))


def class_stats_from_arrays(arrays) -> Dict[int, tuple]:
  """The inverse of ``class_stats_to_arrays``."""
  return {int(c): (int(n), np.asarray(m), np.asarray(s)) for c, n, m, s in zip(
      arrays["classes"], arrays["counts"], arrays["means"], arrays["covs"])}


def intra_fid(real: Dict[int, tuple], fake: Dict[int, tuple]) -> Dict[str, object]:
  """Mean over classes of the per-class FID.

  Args:
    real, fake: ``ClassMoments.stats()`` of the real and the generated features.

  Returns:
    ``{"intra_fid": mean, "classes": number of classes averaged, "per_class":
    {class: FID}}``, over the classes with at least 2 features in both sets
    (a covariance needs 2); other classes are left out of the mean.

  Raises:
    ValueError: if no class is present in both.
  """
  common = sorted(set(real) & set(fake))
  if not common:
    raise ValueError("Intra-FID: no class has at least 2 features in both sets.")
  per_class = {c: metrics.frechet_distance(real[c][1], real[c][2], fake[c][1],
                                           fake[c][2]) for c in common}
  return {"intra_fid": float(np.mean(list(per_class.values()))),
          "classes": len(common), "per_class": per_class}
