"""Tests for sagan_tf.training.cond_transition: the schedule, the Config checks, the
weight in the conditional batch norm and the projection discriminator, and the
train step passing it to every G and D call.

The layer tests compare one computation with the same computation written out
(float32, a few ops: equal within 1e-6) or with itself under another label
(exactly equal: the label must not enter at weight 0). The step test needs no
tolerance: at weight 0 the condition's parameters get exactly zero gradient, and
Adam with beta1 0 moves a parameter by exactly 0 for a zero gradient.
"""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf.layers.normalization import ConditionalBatchNorm
from sagan_tf.models.discriminator import Discriminator
from sagan_tf.run import state as state_lib
from sagan_tf.training import cond_transition
from sagan_tf.training import loop as train_lib
from sagan_tf.training import step as step_lib

TINY = config_lib.from_preset("tiny")


def test_weight_is_off_then_a_linear_ramp_clipped_to_0_and_1():
  assert cond_transition.weight(7, 0, 0) is None
  steps = [0, 499, 500, 750, 1000, 1499, 1500, 9000]
  got = [float(cond_transition.weight(tf.constant(t, tf.int64), 500, 1500))
         for t in steps]
  want = [min(max((t - 500) / 1000, 0.0), 1.0) for t in steps]
  np.testing.assert_allclose(got, want, atol=1e-7)
  assert got[0] == 0.0 and got[-1] == 1.0 and 0.0 < got[3] < 1.0
  # From step 0: the first step is unconditional, the condition then grows.
  assert float(cond_transition.weight(0, 0, 4)) == 0.0
  assert float(cond_transition.weight(2, 0, 4)) == 0.5


def test_config_off_by_default_and_checked():
  for preset in config_lib.PRESETS.values():
    assert (preset.cond_transition_start, preset.cond_transition_end) == (0, 0)
  ok = config_lib.override(TINY, {"cond_transition_start": "500",
                                  "cond_transition_end": "1500"})
  assert (ok.cond_transition_start, ok.cond_transition_end) == (500, 1500)
  for start, end, field in ((500, 500, "cond_transition_end"),
                            (900, 500, "cond_transition_end"),
                            (500, 0, "cond_transition_start"),
                            (-1, 5, "cond_transition_start")):
    with pytest.raises(ValueError, match=field):
      TINY.replace(cond_transition_start=start, cond_transition_end=end)


def _cbn():
  layer = ConditionalBatchNorm(3)
  x = tf.random.stateless_normal([6, 4, 4, 5], seed=[1, 2])
  labels = tf.constant([0, 1, 2, 0, 1, 2])
  layer(x, labels, training=False)
  rng = np.random.default_rng(0)
  layer.gamma.assign(rng.uniform(0.5, 1.5, (3, 5)).astype(np.float32))
  layer.beta.assign(rng.uniform(-1, 1, (3, 5)).astype(np.float32))
  layer.moving_mean.assign(rng.uniform(-0.2, 0.2, (1, 1, 1, 5)).astype(np.float32))
  layer.moving_variance.assign(rng.uniform(0.5, 2, (1, 1, 1, 5)).astype(np.float32))
  return layer, x, labels


def test_conditional_batch_norm_scales_gamma_and_beta():
  layer, x, labels = _cbn()
  plain = layer(x, labels).numpy()
  np.testing.assert_array_equal(layer(x, labels, cond_scale=1.0).numpy(), plain)
  # Weight 0: unit gain, zero offset, whatever the class.
  zero = layer(x, labels, cond_scale=0.0).numpy()
  np.testing.assert_array_equal(
      zero, layer(x, tf.constant([2, 0, 1, 1, 2, 0]), cond_scale=0.0).numpy())
  normalized = ((x - layer.moving_mean) /
                tf.sqrt(layer.moving_variance + layer.epsilon)).numpy()
  np.testing.assert_allclose(zero, normalized, atol=1e-6)
  # Weight s: gamma 1 + s (gamma_c - 1), beta s beta_c.
  s = 0.3
  gamma = tf.gather(layer.gamma, labels).numpy()[:, None, None, :]
  beta = tf.gather(layer.beta, labels).numpy()[:, None, None, :]
  want = normalized * (1 + s * (gamma - 1)) + s * beta
  np.testing.assert_allclose(layer(x, labels, cond_scale=s).numpy(), want,
                             atol=1e-6)


def test_discriminator_scales_the_projection_term():
  d = Discriminator(image_size=32, df_dim=4, num_classes=10).build_variables()
  images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[3, 4],
                                       minval=-1, maxval=1)
  a, b = tf.constant([0, 1, 2, 3]), tf.constant([9, 8, 7, 6])
  plain = d(images, a).numpy()
  np.testing.assert_array_equal(d(images, a, cond_scale=1.0).numpy(), plain)
  unconditional = d(images, a, cond_scale=0.0).numpy()
  np.testing.assert_array_equal(d(images, b, cond_scale=0.0).numpy(), unconditional)
  assert np.abs(plain - unconditional).max() > 1e-3  # the projection is not ~0
  half = d(images, a, cond_scale=0.5).numpy()
  np.testing.assert_allclose(half, (plain + unconditional) / 2, atol=1e-5)


def _condition_variables(run):
  g = [v for v in run.generator.trainable_variables
       if "/cbn_" in v.path and v.path.endswith(("gamma", "beta"))]
  d = [v for v in run.discriminator.trainable_variables if "d_embedding" in v.path]
  assert len(g) >= 4 and len(d) == 1
  return g, d


@pytest.mark.parametrize("reads", ["tf1", "resource"])
@pytest.mark.parametrize("transition", [(3, 8), (0, 0)])
def test_step_passes_the_weight_to_every_g_and_d_call(transition, reads):
  """Before the start the condition's parameters get zero gradients in the D and
  the G step (so they stay as initialised); with the transition off they move."""
  config = TINY.replace(cond_transition_start=transition[0],
                        cond_transition_end=transition[1])
  run = state_lib.RunState.create(config)
  step = step_lib.TrainStep(config, tf.distribute.get_strategy(), run.generator,
                            run.discriminator, run.g_optimizer, run.d_optimizer,
                            run.step, variable_reads=reads)
  g_cond, d_cond = _condition_variables(run)
  before = [v.numpy().copy() for v in g_cond + d_cond]
  others = [v for v in run.discriminator.trainable_variables
            if v.path != d_cond[0].path]
  others_before = [v.numpy().copy() for v in others]
  images = tf.random.stateless_uniform([4, 32, 32, 3], seed=[5, 6],
                                       minval=-1, maxval=1)
  t = tf.constant(1, tf.int64)
  step.d_step(images, tf.constant([0, 1, 2, 3]), t, 0)
  d_moved = [not np.array_equal(v.numpy(), b)
             for v, b in zip(d_cond, before[len(g_cond):])]
  step.g_step(t)
  g_moved = [not np.array_equal(v.numpy(), b) for v, b in zip(g_cond, before)]
  assert any(not np.array_equal(v.numpy(), b) for v, b in zip(others, others_before))
  if transition == (0, 0):
    assert all(d_moved) and all(g_moved)
  else:
    assert not any(d_moved) and not any(g_moved)


@pytest.mark.parametrize("reads", ["tf1", "resource"])
def test_every_g_and_d_call_of_a_step_gets_the_steps_weight(reads):
  config = TINY.replace(cond_transition_start=2, cond_transition_end=6, d_steps=2)
  run = state_lib.RunState.create(config)
  step = step_lib.TrainStep(config, tf.distribute.get_strategy(), run.generator,
                            run.discriminator, run.g_optimizer, run.d_optimizer,
                            run.step, variable_reads=reads)
  calls = []

  def spy(model, name):
    def call(*args, **kwargs):
      calls.append((name, kwargs.get("cond_scale")))
      return model(*args, **kwargs)
    call.trainable_variables = model.trainable_variables
    return call
  step.generator = spy(run.generator, "G")
  step.discriminator = spy(run.discriminator, "D")
  images = tf.zeros([4, 32, 32, 3])
  t = tf.constant(3, tf.int64)  # weight (3 - 2) / (6 - 2)
  step.d_step(images, tf.constant([0, 1, 2, 3]), t, 0)
  step.g_step(t)
  assert [name for name, _ in calls] == ["G", "D", "D", "G", "D"]
  assert all(scale is not None and float(scale) == 0.25 for _, scale in calls)


def test_trainer_logs_the_weight_of_the_step_just_trained(tmp_path):
  config = TINY.replace(cond_transition_start=0, cond_transition_end=4)
  trainer = train_lib.Trainer(config, str(tmp_path / "on"))
  try:
    trainer.step.assign(3)  # steps 0, 1, 2 trained: the last at weight 2 / 4
    assert trainer.extra_scalars()["cond/weight"] == 0.5
  finally:
    trainer.close()
  trainer = train_lib.Trainer(TINY, str(tmp_path / "off"))
  try:
    assert not any(k.startswith("cond/") for k in trainer.extra_scalars())
  finally:
    trainer.close()
