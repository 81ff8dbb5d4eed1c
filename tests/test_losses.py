"""Losses against numpy versions of the official model.py formulas."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.training import losses

REAL = np.array([-2.0, -0.5, 0.0, 0.3, 1.0, 4.0], np.float32)
FAKE = np.array([3.0, 0.9, -1.0, -0.2, 0.0, -5.0], np.float32)


def _softplus(x):
  return np.log1p(np.exp(x))


def test_hinge_matches_numpy():
  loss = losses.get_loss("hinge")
  d, parts = loss.d(tf.constant(REAL), tf.constant(FAKE))
  real = np.maximum(0.0, 1.0 - REAL)
  fake = np.maximum(0.0, 1.0 + FAKE)
  np.testing.assert_allclose(parts["d_loss_real"], real, rtol=1e-6)
  np.testing.assert_allclose(parts["d_loss_fake"], fake, rtol=1e-6)
  np.testing.assert_allclose(d, real + fake, rtol=1e-6)
  np.testing.assert_allclose(loss.g(tf.constant(FAKE)), -FAKE, rtol=1e-6)


def test_kl_matches_numpy():
  loss = losses.get_loss("kl")
  d, parts = loss.d(tf.constant(REAL), tf.constant(FAKE))
  np.testing.assert_allclose(parts["d_loss_real"], _softplus(-REAL), rtol=1e-5)
  np.testing.assert_allclose(parts["d_loss_fake"], _softplus(FAKE), rtol=1e-5)
  np.testing.assert_allclose(d, _softplus(-REAL) + _softplus(FAKE), rtol=1e-5)
  # The official _get_g_loss_KL is mean(-logits), not softplus.
  np.testing.assert_allclose(loss.g(tf.constant(FAKE)), -FAKE, rtol=1e-6)


def test_global_average_is_official_mean_of_means():
  d, _ = losses.get_loss("hinge").d(tf.constant(REAL), tf.constant(FAKE))
  # Two replicas of 3 examples each, each scaled by the global batch of 6.
  halves = [tf.nn.compute_average_loss(d[i:i + 3], global_batch_size=6)
            for i in (0, 3)]
  official = (np.mean(np.maximum(0, 1 - REAL)) + np.mean(np.maximum(0, 1 + FAKE)))
  np.testing.assert_allclose(float(halves[0] + halves[1]), official, rtol=1e-6)


def test_float32_from_bfloat16_logits():
  d, parts = losses.get_loss("kl").d(tf.constant(REAL, tf.bfloat16),
                                     tf.constant(FAKE, tf.bfloat16))
  assert d.dtype == tf.float32 and parts["d_loss_real"].dtype == tf.float32


def test_unknown_loss_names_choices():
  with pytest.raises(ValueError, match="hinge"):
    losses.get_loss("wasserstein")
