"""bf16 mixed precision ("mixed_bfloat16"): which parts stay float32, and training.

The layers keep these in float32 by design: spectral-norm kernels, ``u`` and the
power iteration; BN statistics and normalisation; the attention softmax; the
discriminator head (``d_sn_linear``, ``d_embedding``) and so the logits and losses.
Each is checked against a float32 twin with the same weights.
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.discriminator import Discriminator
from sagan_tf.generator import Generator
from sagan_tf.normalization import batch_moments

_G = dict(image_size=32, gf_dim=2, num_classes=3, z_dim=8)
_D = dict(image_size=32, df_dim=2, num_classes=3)


@pytest.fixture
def bf16_policy():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy("float32")


def _models_and_twins():
  """bf16-policy G and D plus float32 twins holding the same weights."""
  g = Generator(**_G).build_variables()
  d = Discriminator(**_D).build_variables()
  keras.mixed_precision.set_global_policy("float32")
  g32 = Generator(**_G).build_variables()
  d32 = Discriminator(**_D).build_variables()
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  for a, b in zip(g32.weights + d32.weights, g.weights + d.weights):
    a.assign(b)
  return g, d, g32, d32


def _inputs(n=4, seed=0):
  z = tf.random.stateless_normal([n, _G["z_dim"]], seed=[seed, 1])
  labels = tf.constant([i % 3 for i in range(n)])
  real = tf.random.stateless_uniform([n, 32, 32, 3], seed=[seed, 2],
                                     minval=-1.0, maxval=1.0)
  return z, labels, real


def _state(model):
  return [w.numpy() for w in model.weights if not w.trainable]


def test_power_iteration_and_bn_statistics_float32(bf16_policy):
  g, d, g32, d32 = _models_and_twins()
  # The policy is active (the test is not vacuous) and variables stay float32.
  assert g.g_block1.compute_dtype == "bfloat16"
  assert d.d_block2.compute_dtype == "bfloat16"
  assert d.d_sn_linear.compute_dtype == "float32"
  assert d.d_embedding.compute_dtype == "float32"
  assert {w.dtype for w in g.weights + d.weights} == {"float32"}
  z, labels, real = _inputs()
  g(z, labels, training=True, update_u=True)
  g32(z, labels, training=True, update_u=True)
  d(real, labels, training=True, update_u=True)
  d32(real, labels, training=True, update_u=True)
  for model, twin in ((g, g32), (d, d32)):
    for w, w32 in zip(model.weights, twin.weights):
      if w.name == "u":
        # u' depends only on the float32 kernel and u: identical iff the
        # iteration ran in float32 (a bf16 iteration errs by ~1e-3).
        assert w.dtype == "float32"
        np.testing.assert_allclose(w.numpy(), w32.numpy(), rtol=1e-6, atol=1e-7)
      elif w.name.startswith("moving_"):
        # Statistics of bf16 activations, accumulated in float32.
        assert w.dtype == "float32"
        np.testing.assert_allclose(w.numpy(), w32.numpy(), rtol=0.05, atol=0.02)
  layer = g.g_block1.snconv1
  assert layer.sigma().dtype == tf.float32
  np.testing.assert_allclose(layer.sigma().numpy(), g32.g_block1.snconv1.sigma(),
                             rtol=1e-6)
  # batch_moments promotes bf16 input to float32.
  mean, var = batch_moments(tf.cast(real, tf.bfloat16))
  assert mean.dtype == tf.float32 and var.dtype == tf.float32


def test_softmax_and_outputs_float32(bf16_policy):
  g, d, g32, d32 = _models_and_twins()
  z, labels, real = _inputs()
  images, maps = g(z, labels, training=False, update_u=False,
                   return_attention=True)
  images32 = g32(z, labels, training=False, update_u=False)
  assert images.dtype == tf.float32
  assert np.abs(images.numpy() - images32.numpy()).max() < 0.1
  attn = maps[16]
  assert attn.dtype == tf.float32
  # A bf16 softmax would sum to 1 only within ~1e-2.
  np.testing.assert_allclose(tf.reduce_sum(attn, -1).numpy(), 1.0, atol=1e-5)
  logits, d_maps = d(real, labels, training=False, update_u=False,
                     return_attention=True)
  logits32 = d32(real, labels, training=False, update_u=False)
  assert logits.dtype == tf.float32 and d_maps[16].dtype == tf.float32
  np.testing.assert_allclose(logits.numpy(), logits32.numpy(), rtol=0.1, atol=0.05)


def test_trainer_steps_finite_with_ema(bf16_policy, tmp_path):
  # The real trainer (sagan_tf.train) with config.mixed_precision and an EMA:
  # it sets the policy itself while building, so start from float32.
  keras.mixed_precision.set_global_policy("float32")
  from sagan_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from sagan_tf import train as train_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.from_preset("tiny").replace(
      mixed_precision=True, ema_decay=0.5, log_every=1, sample_every=100,
      checkpoint_every=100)
  trainer = train_lib.Trainer(config, str(tmp_path / "run"))
  try:
    g, d, ema = trainer.generator, trainer.discriminator, trainer.ema.generator
    before = [w.numpy() for w in g.trainable_variables]
    ema_before = [w.numpy() for w in ema.trainable_variables]
    result = trainer.run(3)
  finally:
    trainer.close()
  assert keras.mixed_precision.global_policy().name == "float32"
  assert result.step == 3 and set(result.metrics) >= {"d_loss", "g_loss"}
  assert np.isfinite(list(result.metrics.values())).all()
  for model in (g, ema):
    assert model.g_block1.compute_dtype == "bfloat16"
  assert d.d_block2.compute_dtype == "bfloat16"
  assert d.d_sn_linear.compute_dtype == "float32"
  weights = g.weights + d.weights + ema.weights
  assert {w.dtype for w in weights} == {"float32"}
  assert all(np.isfinite(w.numpy()).all() for w in weights)
  for old, model in ((before, g), (ema_before, ema)):
    assert any(not np.array_equal(a, w.numpy())
               for a, w in zip(old, model.trainable_variables))


def test_models_built_after_policy_reset_keep_their_policy(bf16_policy):
  # Attention sub-layers are created at the first call; they must take the
  # model's policy even when the global one has changed since construction.
  g = Generator(**_G)
  d = Discriminator(**_D)
  keras.mixed_precision.set_global_policy("float32")
  g.build_variables()
  d.build_variables()
  for model in (g, d):
    for _, layer in model.attention_layers:
      assert layer.theta.compute_dtype == "bfloat16"
      assert layer.attn_conv.compute_dtype == "bfloat16"
  z, labels, real = _inputs(n=2)
  assert g(z, labels, update_u=False).dtype == tf.float32
  assert d(real, labels, update_u=False).dtype == tf.float32
