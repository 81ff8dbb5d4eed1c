"""eval.metrics / eval.tfgan_compat: IS, FID and KID against TF-GAN and numpy/scipy."""
import sys

import numpy as np
import pytest
import scipy.linalg
from scipy.special import logsumexp

from eval import metrics
from eval import tfgan_compat
from eval.tfgan_compat import classifier_metrics


# Independent reference implementations (numpy/scipy only).
def np_inception_score(logits):
  log_p = logits - logsumexp(logits, axis=1, keepdims=True)
  p = np.exp(log_p)
  log_q = np.log(p.mean(axis=0))
  return float(np.exp(np.mean(np.sum(p * (log_p - log_q), axis=1))))


def np_fid(a, b):
  mu_a, mu_b = a.mean(0), b.mean(0)
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  covmean = scipy.linalg.sqrtm(ca @ cb).real
  return float(np.sum((mu_a - mu_b) ** 2) + np.trace(ca + cb - 2 * covmean))


def np_kid(a, b):
  """Unbiased MMD^2, cubic polynomial kernel (one block: sets under 1024)."""
  d = a.shape[1]
  k = lambda x, y: (x @ y.T / d + 1) ** 3
  m, n = len(a), len(b)
  kaa, kbb = k(a, a), k(b, b)
  return float((kaa.sum() - np.trace(kaa)) / (m * (m - 1))
               + (kbb.sum() - np.trace(kbb)) / (n * (n - 1)) - 2 * k(a, b).mean())


@pytest.fixture
def acts():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) + 1.0
  b = rng.normal(size=(200, 8)) * 1.3 + 0.5
  logits = rng.normal(size=(300, 10)) * 3
  return a, b, logits


def stats_of(acts, logits, batch=37, **kw):
  acc = metrics.StatsAccumulator(len(acts), **kw)
  for i in range(0, len(acts), batch):
    acc.update(logits[i:i + batch], acts[i:i + batch])
  return acc.result()


def test_compat_loads_without_touching_sys_modules():
  before = dict(sys.modules)
  loaded = tfgan_compat._load()  # pylint: disable=protected-access
  assert dict(sys.modules) == before
  assert loaded["classifier_metrics"].eval_utils is loaded["eval_utils"]
  assert classifier_metrics.__name__ == "tensorflow_gan.python.eval.classifier_metrics"


def test_identical_sets_fid_zero_and_uniform_logits_is_one(acts):
  a, _, _ = acts
  assert abs(metrics.frechet_distance_from_activations(a, a)) < 1e-6
  s = stats_of(a, np.zeros((len(a), 10)))
  assert abs(metrics.frechet_distance(s.mean, s.cov, s.mean, s.cov)) < 1e-6
  assert s.inception_score == pytest.approx(1.0, abs=1e-12)
  assert metrics.inception_score(np.zeros((5, 1008))) == pytest.approx(1.0)


def test_tfgan_functions_match_numpy(acts):
  a, b, logits = acts
  assert metrics.inception_score(logits) == pytest.approx(
      np_inception_score(logits), rel=1e-9)
  assert metrics.frechet_distance_from_activations(a, b) == pytest.approx(
      np_fid(a, b), rel=1e-6)
  kid, _ = metrics.kernel_distance(a, b)
  assert kid == pytest.approx(np_kid(a, b), rel=1e-9)


def test_streamed_stats_match_full_arrays(acts):
  a, b, logits = acts
  sa = stats_of(a, logits, batch=37)
  sb = stats_of(b, logits[:200], batch=64)
  np.testing.assert_allclose(sa.mean, a.mean(0), rtol=1e-12)
  np.testing.assert_allclose(sa.cov, np.cov(a, rowvar=False), rtol=1e-10)
  assert sa.count == 300 and sa.inception_score_std == 0.0
  assert sa.inception_score == pytest.approx(metrics.inception_score(logits),
                                             rel=1e-10)
  values = metrics.compare(sa, sb)
  assert values["FID"] == pytest.approx(
      metrics.frechet_distance_from_activations(a, b), rel=1e-8)
  assert values["FID"] == pytest.approx(np_fid(a, b), rel=1e-6)
  # Sets under kid_max_samples are kept whole (shuffled): the same KID.
  assert sorted(map(tuple, sa.kid_features)) == sorted(
      map(tuple, a.astype(np.float32)))
  assert values["KID"] == pytest.approx(np_kid(sa.kid_features.astype(np.float64),
                                               sb.kid_features.astype(np.float64)),
                                        rel=1e-9)
  assert values["KID"] == pytest.approx(np_kid(a, b), rel=1e-4)  # float32 copy


def test_is_splits_and_kid_reservoir(acts):
  a, _, logits = acts
  s = stats_of(a, logits, batch=40, is_splits=3)
  parts = [np_inception_score(logits[i:i + 100]) for i in (0, 100, 200)]
  assert s.inception_score == pytest.approx(np.mean(parts), rel=1e-10)
  assert s.inception_score_std == pytest.approx(np.std(parts), rel=1e-8)
  small = stats_of(a, logits, kid_max_samples=50, seed=3)
  again = stats_of(a, logits, batch=7, kid_max_samples=50, seed=3)
  assert small.kid_features.shape == (50, 8)
  np.testing.assert_array_equal(small.kid_features, again.kid_features)
  rows = {tuple(r) for r in a.astype(np.float32)}
  assert all(tuple(r) in rows for r in small.kid_features)
