"""eval.manifold against brute-force numpy/scipy computations on small random features."""
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from eval import manifold, metrics


def _brute_radii(x, k):
  d = cdist(x, x)
  np.fill_diagonal(d, np.inf)  # the k-th nearest *other* point
  return np.sort(d, axis=1)[:, k - 1]


def _brute(real, fake):
  d = cdist(real, fake)  # [N, M]
  r3, f3, r5 = _brute_radii(real, 3), _brute_radii(fake, 3), _brute_radii(real, 5)
  in3 = d <= r3[:, None]
  return dict(
      precision=np.mean([in3[:, j].any() for j in range(fake.shape[0])]),
      recall=np.mean([(d[i] <= f3).any() for i in range(real.shape[0])]),
      density=(d <= r5[:, None]).sum() / (5 * fake.shape[0]),
      coverage=np.mean([(d[i] <= r5[i]).any() for i in range(real.shape[0])]))


@pytest.mark.parametrize("shift", [0.0, 0.7, 3.0])
def test_prdc_matches_brute_force(shift):
  rng = np.random.default_rng(3)
  real = rng.normal(size=(70, 6))
  fake = rng.normal(size=(55, 6)) * 1.3 + shift
  got = manifold.prdc(real, fake)
  want = _brute(real, fake)
  for name in want:
    assert got[name] == pytest.approx(want[name], abs=1e-12), name
  if shift == 0.7:  # a case where all four lie strictly inside (0, 1)
    assert all(0 < got[n] < 1 for n in ("precision", "recall", "coverage"))


def test_prdc_blocks_do_not_change_the_result():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(40, 5)), rng.normal(size=(33, 5)) + 0.5
  radii = manifold.knn_radii(real, 3)
  np.testing.assert_allclose(manifold.knn_radii(real, 3, block=7), radii)
  np.testing.assert_allclose(radii, _brute_radii(real, 3), rtol=1e-12)
  # pylint: disable=protected-access
  np.testing.assert_array_equal(manifold._coverage_counts(real, radii, fake, block=6),
                                manifold._coverage_counts(real, radii, fake))


def test_identical_and_disjoint_sets():
  rng = np.random.default_rng(1)
  real = rng.normal(size=(30, 4))
  same = manifold.prdc(real, real)
  assert same["precision"] == same["recall"] == same["coverage"] == 1.0
  far = manifold.prdc(real, real + 100.0)
  assert far == dict(precision=0.0, recall=0.0, density=0.0, coverage=0.0)


def test_knn_radii_needs_more_points_than_k():
  with pytest.raises(ValueError, match="more than 3"):
    manifold.knn_radii(np.zeros((3, 2)), 3)


@pytest.mark.parametrize("flush_rows", [512, 4])  # one merge; many small ones
def test_intra_fid_is_the_mean_of_per_class_fids(flush_rows):
  rng = np.random.default_rng(2)
  d = 4
  real_x = rng.normal(size=(90, d))
  real_y = np.repeat(np.arange(3), 30)
  fake_x = rng.normal(size=(60, d)) + real_y[:60, None] * 0.5
  fake_y = real_y[:60].copy()
  fake_y[40:] = 2  # class 2 gets 20 fakes; class 1 gets 10; class 0 gets 30
  real_m = manifold.ClassMoments(flush_rows=flush_rows)
  fake_m = manifold.ClassMoments(flush_rows=flush_rows)
  for s in range(0, 90, 17):  # uneven batches
    real_m.update(real_x[s:s + 17], real_y[s:s + 17])
  fake_m.update(fake_x, fake_y)
  got = manifold.intra_fid(real_m.stats(), fake_m.stats())
  want = np.mean([metrics.frechet_distance_from_activations(
      real_x[real_y == c], fake_x[fake_y == c]) for c in range(3)])
  assert got["classes"] == 3
  assert got["intra_fid"] == pytest.approx(want, rel=1e-9)
  # Against plain numpy/scipy for one class, independent of TF-GAN.
  from scipy import linalg  # pylint: disable=g-import-not-at-top
  a, b = real_x[real_y == 1], fake_x[fake_y == 1]
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  fid1 = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(ca + cb)
          - 2 * np.real(np.trace(linalg.sqrtm(ca @ cb))))
  s = real_m.stats()[1], fake_m.stats()[1]
  assert metrics.frechet_distance(s[0][1], s[0][2], s[1][1], s[1][2]) == (
      pytest.approx(fid1, rel=1e-6))


def test_class_moments_subset_and_errors():
  m = manifold.ClassMoments(classes=[1])
  m.update(np.ones((4, 2)), np.array([0, 1, 1, 0]))
  assert list(m.stats()) == [1]
  with pytest.raises(ValueError, match="labels"):
    m.update(np.ones((3, 2)), np.array([0, 1]))
  with pytest.raises(ValueError, match="no class"):
    manifold.intra_fid(m.stats(), {})
