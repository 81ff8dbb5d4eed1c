"""Inception score, FID and KID from classifier outputs, streamed in constant memory.

The metric formulas are TF-GAN's (loaded by ``eval.tfgan_compat``):

* IS  = exp(E_x KL(p(y|x) || p(y)))  -- ``classifier_score_from_logits``
* FID = |m1 - m2|^2 + Tr(C1 + C2 - 2 (C1 C2)^1/2), unbiased covariances,
  float64 -- ``frechet_classifier_distance_from_activations``; the trace term is
  TF-GAN's ``trace_sqrt_product``
* KID = TF-GAN's block MMD^2 estimator with the cubic polynomial kernel,
  blocks of at most 1024 -- ``kernel_classifier_distance_and_std_from_activations``

The official eval (``eval_imagenet.py``) concatenated all 50,000 logits and pool_3
activations in memory and called TF-GAN once. Here a ``StatsAccumulator`` takes
batches and keeps only running float64 sums, so memory does not grow with the
sample count:

* FID: count, mean and the centred second moment (Chan et al.'s pairwise merge),
  giving the same mean and unbiased covariance as TF-GAN computes from the full
  set; the Frechet distance is then TF-GAN's formula on (mean, covariance).
* IS: per split, the count, sum_x p(y|x) and sum_x sum_y p log p, so
  log IS = mean(sum_y p log p) - sum_y q log q with q the mean of p (the identity
  TF-GAN's own streaming variant uses). One split over all samples, as the official
  eval; ``is_splits`` > 1 gives the mean and standard deviation over contiguous
  splits, as in Salimans et al.
* KID: a seeded uniform reservoir of at most ``kid_max_samples`` activations per set
  (every sample when the set is smaller), shuffled before TF-GAN's block estimator,
  which assumes random order.

Tests check all three against TF-GAN called on the full arrays and against an
independent numpy/scipy computation.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional

import numpy as np
import tensorflow as tf

from eval.tfgan_compat import classifier_metrics as tfgan_metrics

KID_BLOCK_SIZE = 1024  # TF-GAN's default max_block_size
DEFAULT_KID_MAX_SAMPLES = 10_000


@dataclasses.dataclass
class SetStats:
  """Summary of one image set's classifier outputs.

  Attributes:
    count: number of images.
    mean: pool_3 mean `[D]` float64.
    cov: unbiased pool_3 covariance `[D, D]` float64.
    kid_features: uniform subset of pool_3 activations `[K, D]` float32, random order.
    inception_score: IS (mean over splits).
    inception_score_std: standard deviation over splits (0 for one split).
    class_accuracy: for conditional samples and a classifier of the same classes
      (``eval.digits_classifier``): the fraction whose top logit is the class they
      were drawn for; None otherwise (not stored in the real-statistics cache).
    per_class: for intra-FID, ``{class: (count, mean [D], covariance [D, D])}``
      (``eval.manifold.ClassMoments.stats``); None when not asked (cached apart,
      ``eval.real_stats``).
  """
  count: int
  mean: np.ndarray
  cov: np.ndarray
  kid_features: np.ndarray
  inception_score: float
  inception_score_std: float
  class_accuracy: Optional[float] = None
  per_class: Optional[Dict[int, tuple]] = None

  def to_arrays(self) -> Dict[str, np.ndarray]:
    return dict(count=np.int64(self.count), mean=self.mean, cov=self.cov,
                kid_features=self.kid_features,
                inception_score=np.float64(self.inception_score),
                inception_score_std=np.float64(self.inception_score_std))

  @classmethod
  def from_arrays(cls, arrays) -> "SetStats":
    return cls(count=int(arrays["count"]), mean=np.asarray(arrays["mean"]),
               cov=np.asarray(arrays["cov"]),
               kid_features=np.asarray(arrays["kid_features"]),
               inception_score=float(arrays["inception_score"]),
               inception_score_std=float(arrays["inception_score_std"]))


class _Moments:
  """Running count, mean and centred second moment of rows, float64."""

  def __init__(self):
    self.n = 0
    self.mean = None
    self.m2 = None

  def update(self, x: np.ndarray):
    x = np.asarray(x, np.float64)
    nb = x.shape[0]
    if nb == 0:
      return
    mb = x.mean(axis=0)
    xc = x - mb
    m2b = xc.T @ xc
    if self.n == 0:
      self.n, self.mean, self.m2 = nb, mb, m2b
      return
    n = self.n + nb
    delta = mb - self.mean
    # In place: at D = 2048 each temporary [D, D] costs 32 MB and a pass.
    self.m2 += m2b
    self.m2 += np.outer(delta, delta * (self.n * nb / n))
    self.mean = self.mean + delta * (nb / n)
    self.n = n

  def covariance(self) -> np.ndarray:
    if self.n < 2:
      raise ValueError(f"Need at least 2 samples for a covariance, got {self.n}.")
    return self.m2 / (self.n - 1)


class _Reservoir:
  """Uniform random subset of at most ``size`` rows (Vitter's algorithm R), seeded."""

  def __init__(self, size: int, seed: int):
    self.size = int(size)
    self.rng = np.random.default_rng(seed)
    self.seen = 0
    self.rows = []  # while filling
    self.buf = None  # once full

  def update(self, x: np.ndarray):
    x = np.asarray(x, np.float32)
    for row in x:
      if self.seen < self.size:
        self.rows.append(row)
        if len(self.rows) == self.size:
          self.buf = np.stack(self.rows)
          self.rows = []
      else:
        j = self.rng.integers(0, self.seen + 1)
        if j < self.size:
          self.buf[j] = row
      self.seen += 1

  def result(self) -> np.ndarray:
    data = self.buf if self.buf is not None else np.stack(self.rows)
    return data[self.rng.permutation(len(data))]


def _softmax_stats(logits: np.ndarray):
  """(sum of p over rows [C], sum over rows of sum_y p log p), float64."""
  z = np.asarray(logits, np.float64)
  z = z - z.max(axis=1, keepdims=True)
  log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
  p = np.exp(log_p)
  return p.sum(axis=0), float((p * log_p).sum())


class StatsAccumulator:
  """Takes classifier outputs batch by batch; ``result()`` gives a ``SetStats``.

  Args:
    expected_count: total number of samples, needed to cut IS splits (when
      ``is_splits`` > 1); a shorter stream just gives a shorter last split.
    is_splits: number of contiguous IS splits (official: 1).
    kid_max_samples: reservoir size for KID.
    seed: reservoir seed.
  """

  def __init__(self, expected_count: Optional[int] = None, is_splits: int = 1,
               kid_max_samples: int = DEFAULT_KID_MAX_SAMPLES, seed: int = 0):
    if is_splits > 1 and not expected_count:
      raise ValueError("is_splits > 1 needs expected_count.")
    self.is_splits = int(is_splits)
    self.split_size = (math.ceil(expected_count / is_splits) if is_splits > 1
                       else None)
    self.moments = _Moments()
    self.reservoir = _Reservoir(kid_max_samples, seed)
    self.p_sum = [None] * self.is_splits
    self.plogp_sum = [0.0] * self.is_splits
    self.split_count = [0] * self.is_splits
    self.count = 0

  def update(self, logits, pool_3):
    """Adds one batch: logits `[N, C]`, pool_3 activations `[N, D]`."""
    logits = np.asarray(logits)
    pool_3 = np.asarray(pool_3)
    if logits.shape[0] != pool_3.shape[0]:
      raise ValueError(f"logits {logits.shape} and pool_3 {pool_3.shape} differ in N.")
    self.moments.update(pool_3)
    self.reservoir.update(pool_3)
    start = 0
    while start < len(logits):  # route rows to their IS split
      k = (0 if self.split_size is None
           else min(self.count // self.split_size, self.is_splits - 1))
      room = (len(logits) - start if self.split_size is None or k == self.is_splits - 1
              else (k + 1) * self.split_size - self.count)
      part = logits[start:start + room]
      p_sum, plogp = _softmax_stats(part)
      self.p_sum[k] = p_sum if self.p_sum[k] is None else self.p_sum[k] + p_sum
      self.plogp_sum[k] += plogp
      self.split_count[k] += len(part)
      self.count += len(part)
      start += len(part)

  def result(self) -> SetStats:
    if self.count < 2:
      raise ValueError(f"Need at least 2 samples, got {self.count}.")
    scores = []
    for p_sum, plogp, n in zip(self.p_sum, self.plogp_sum, self.split_count):
      if n == 0:
        continue
      q = p_sum / n
      q_log_q = np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0)), 0.0))
      scores.append(math.exp(plogp / n - q_log_q))
    return SetStats(count=self.count, mean=self.moments.mean,
                    cov=self.moments.covariance(),
                    kid_features=self.reservoir.result(),
                    inception_score=float(np.mean(scores)),
                    inception_score_std=float(np.std(scores)))


def inception_score(logits) -> float:
  """TF-GAN's classifier score of a full array of logits `[N, C]` (one split)."""
  return float(tfgan_metrics.classifier_score_from_logits(
      tf.constant(np.asarray(logits, np.float64))))


def frechet_distance_from_activations(act1, act2) -> float:
  """TF-GAN's FID from two full activation arrays `[N, D]` (float64)."""
  return float(tfgan_metrics.frechet_classifier_distance_from_activations(
      tf.constant(np.asarray(act1, np.float64)),
      tf.constant(np.asarray(act2, np.float64))))


def frechet_distance(mean1, cov1, mean2, cov2) -> float:
  """FID from means and unbiased covariances, TF-GAN's formula in float64."""
  cov1 = tf.constant(np.asarray(cov1, np.float64))
  cov2 = tf.constant(np.asarray(cov2, np.float64))
  sqrt_trace = tfgan_metrics.trace_sqrt_product(cov1, cov2)
  trace = tf.linalg.trace(cov1 + cov2) - 2.0 * sqrt_trace
  mean = tf.reduce_sum(tf.math.squared_difference(
      tf.constant(np.asarray(mean1, np.float64)),
      tf.constant(np.asarray(mean2, np.float64))))
  return float(trace + mean)


def kernel_distance(act1, act2, max_block_size: int = KID_BLOCK_SIZE):
  """TF-GAN's KID and its standard error (nan for one block), float64."""
  kid, std = tfgan_metrics.kernel_classifier_distance_and_std_from_activations(
      tf.constant(np.asarray(act1, np.float64)),
      tf.constant(np.asarray(act2, np.float64)), max_block_size=max_block_size)
  return float(kid), float(std)


def compare(real: SetStats, fake: SetStats) -> Dict[str, Optional[float]]:
  """FID, KID (with its standard error) and IS of ``fake`` against ``real``.

  ``KID_std`` is None when the KID sets fit in one block (no error estimate);
  ``class_accuracy`` is there when ``fake`` has one.
  """
  kid, kid_std = kernel_distance(real.kid_features, fake.kid_features)
  out = dict(
      FID=frechet_distance(real.mean, real.cov, fake.mean, fake.cov),
      KID=kid, KID_std=kid_std if math.isfinite(kid_std) else None,
      IS=fake.inception_score, IS_std=fake.inception_score_std)
  if fake.class_accuracy is not None:
    out["class_accuracy"] = fake.class_accuracy
  return out
