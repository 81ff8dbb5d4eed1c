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

from sagan_tf.models.discriminator import Discriminator
from sagan_tf.models.generator import Generator
from sagan_tf.layers.bn_moments import batch_moments

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
  initial = [w.numpy() for w in g.weights + d.weights]
  z, labels, real = _inputs()
  g(z, labels, training=True, update_u=True)
  g32(z, labels, training=True, update_u=True)
  d(real, labels, training=True, update_u=True)
  d32(real, labels, training=True, update_u=True)
  moving = 0
  for w, w32, w0 in zip(g.weights + d.weights, g32.weights + d32.weights, initial):
    if w.name == "u":
      # u' depends only on the float32 kernel and u: identical iff the
      # iteration ran in float32 (a bf16 iteration errs by ~1e-3).
      assert w.dtype == "float32"
      np.testing.assert_allclose(w.numpy(), w32.numpy(), rtol=1e-6, atol=1e-7)
    elif w.name.startswith("moving_"):
      # Statistics of bf16 activations, accumulated in float32. One update moves
      # them by only (1 - decay) * (batch moment - old), ~1e-5..1e-3, so compare
      # the change with the float32 twin's: bf16 activations put it off by at
      # most 0.6% of the largest change (measured), a skipped update by 100%.
      assert w.dtype == "float32"
      change, change32 = w.numpy() - w0, w32.numpy() - w0
      scale = np.abs(change32).max()
      assert scale > 0, w.path
      np.testing.assert_allclose(change, change32, rtol=0, atol=0.03 * scale,
                                 err_msg=w.path)
      moving += 1
  assert moving == 14  # 6 conditional BNs x 2 + g_bn x 2 (D has no BN)
  layer = g.g_block1.snconv1
  assert layer.sigma().dtype == tf.float32
  np.testing.assert_allclose(layer.sigma().numpy(), g32.g_block1.snconv1.sigma(),
                             rtol=1e-6)
  # batch_moments promotes bf16 input to float32.
  mean, var = batch_moments(tf.cast(real, tf.bfloat16))
  assert mean.dtype == tf.float32 and var.dtype == tf.float32


def _open_gates_and_set_statistics(pairs, seed=3):
  """Gives model and twin the same open attention gates (fresh ones are 0, so the
  attention would add nothing) and the same non-trivial BN moving statistics."""
  rng = np.random.default_rng(seed)
  for model, twin in pairs:
    for w, w32 in zip(model.weights, twin.weights):
      if w.name == "sigma_ratio":
        value = 1.0
      elif w.name == "moving_mean":
        value = rng.normal(0.0, 0.5, w.shape)
      elif w.name == "moving_variance":
        value = rng.uniform(0.5, 2.0, w.shape)
      else:
        continue
      w.assign(value)
      w32.assign(value)


def test_softmax_and_outputs_float32(bf16_policy):
  keras.utils.set_random_seed(0)
  g, d, g32, d32 = _models_and_twins()
  _open_gates_and_set_statistics([(g, g32), (d, d32)])
  z, labels, real = _inputs()
  images, maps = g(z, labels, training=False, update_u=False,
                   return_attention=True)
  images32, maps32 = g32(z, labels, training=False, update_u=False,
                         return_attention=True)
  assert images.dtype == tf.float32
  # Limits: the bf16 error measured over 4 weight seeds, times ~2. Images: bf16
  # convs put them off by at most 0.0114 (an image range of ~0.7); the attention
  # (gates at 1) moves them by 0.076 to 0.18, so dropping or garbling it under
  # bf16 cannot pass. Maps: at most 2.4e-4 from the float32 twin's.
  err = np.abs(images.numpy() - images32.numpy()).max()
  assert err < 0.025, err
  attn = maps[16]
  assert attn.dtype == tf.float32
  np.testing.assert_allclose(attn.numpy(), maps32[16].numpy(), rtol=0, atol=1e-3)
  # A bf16 softmax would sum to 1 only within ~1e-2.
  np.testing.assert_allclose(tf.reduce_sum(attn, -1).numpy(), 1.0, atol=1e-5)
  logits, d_maps = d(real, labels, training=False, update_u=False,
                     return_attention=True)
  logits32 = d32(real, labels, training=False, update_u=False)
  assert logits.dtype == tf.float32 and d_maps[16].dtype == tf.float32
  # Logits: at most 0.96% of the largest |logit| off (measured); D's attention
  # moves them by 2.5 to 21 (several times their scale).
  scale = np.abs(logits32.numpy()).max()
  np.testing.assert_allclose(logits.numpy(), logits32.numpy(), rtol=0,
                             atol=0.02 * scale)


def test_trainer_steps_finite_with_ema(bf16_policy, tmp_path):
  # The real trainer (sagan_tf.training.loop) with config.mixed_precision and an EMA:
  # it sets the policy itself while building, so start from float32.
  keras.mixed_precision.set_global_policy("float32")
  from sagan_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  from sagan_tf.training import loop as train_lib  # pylint: disable=g-import-not-at-top
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
