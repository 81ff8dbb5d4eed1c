"""Pieces of the train step that need no tracing: noise, optimizers, gates."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf import strategy as strategy_lib
from sagan_tf import train_step as step_lib
from sagan_tf.models import build_models

TINY = config_lib.from_preset("tiny")


def _noise(step, substep, replica, config=TINY, batch=6):
  z, c = step_lib.sample_noise(config, batch, step, substep, replica)
  return z.numpy(), c.numpy()


def test_noise_is_a_function_of_seed_step_substep_replica():
  z, c = _noise(7, 0, 1)
  assert z.shape == (6, TINY.z_dim) and z.dtype == np.float32
  assert c.shape == (6,) and c.dtype == np.int32
  assert c.min() >= 0 and c.max() < TINY.num_classes
  z2, c2 = _noise(tf.constant(7, tf.int64), tf.constant(0), tf.constant(1))
  np.testing.assert_array_equal(z, z2)
  np.testing.assert_array_equal(c, c2)
  for other in (_noise(8, 0, 1), _noise(7, 1, 1), _noise(7, 0, 0),
                _noise(7, 0, 1, TINY.replace(seed=1))):
    assert not np.array_equal(z, other[0])


def test_noise_statistics():
  z, c = _noise(0, 0, 0, batch=4000)
  assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02
  counts = np.bincount(c, minlength=TINY.num_classes)
  assert counts.min() > 300  # uniform: 400 expected per class


def test_noise_inside_tf_function():
  f = tf.function(lambda s: step_lib.sample_noise(TINY, 6, s, 0, 1)[0])
  np.testing.assert_array_equal(f(tf.constant(7, tf.int64)).numpy(), _noise(7, 0, 1)[0])


def test_optimizers_are_tf1_adam_and_built():
  config = TINY.replace(g_lr=1e-4, d_lr=4e-4, beta1=0.0, beta2=0.999)
  g, d = build_models(config)
  g_opt, d_opt = step_lib.make_optimizers(config, g, d)
  assert float(g_opt.learning_rate) == pytest.approx(1e-4)
  assert float(d_opt.learning_rate) == pytest.approx(4e-4)
  for opt in (g_opt, d_opt):
    assert opt.epsilon == 1e-8 and opt.beta_1 == 0.0 and opt.beta_2 == 0.999
    assert opt.built
  # Adam keeps two slots per trainable variable.
  assert len(g_opt.variables) >= 2 * len(g.trainable_variables)


def test_attention_gates_named_per_layer():
  g, d = build_models(TINY)
  gates = step_lib.attention_gates(g, d)
  assert set(gates) == {"g_non_local/sigma_ratio", "d_non_local/sigma_ratio"}
  assert all(float(v) == 0.0 for v in gates.values())


def test_jit_compile_refused_with_mirrored_strategy():
  strategy = strategy_lib.make_strategy("mirrored", cpu_replicas=2)
  config = TINY.replace(jit_compile=True)
  with strategy.scope():
    g, d = build_models(config)
    g_opt, d_opt = step_lib.make_optimizers(config, g, d)
    step = step_lib.make_step_variable()
  with pytest.raises(ValueError, match="jit_compile=True is supported with the "
                                       "default strategy"):
    step_lib.TrainStep(config, strategy, g, d, g_opt, d_opt, step)
