"""Pieces of the train step that need no tracing: noise, optimizers, gates."""
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.models import architecture
from sagan_tf import config as config_lib
from sagan_tf.run import state as state_lib
from sagan_tf import strategy as strategy_lib
from sagan_tf.training import summaries
from sagan_tf.training import noise as noise_lib
from sagan_tf.training import step as step_lib
from sagan_tf.models.builder import build_models

TINY = config_lib.from_preset("tiny")


def _noise(step, substep, replica, config=TINY, batch=6):
  z, c = noise_lib.sample_noise(config, batch, step, substep, replica)
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
  f = tf.function(lambda s: noise_lib.sample_noise(TINY, 6, s, 0, 1)[0])
  np.testing.assert_array_equal(f(tf.constant(7, tf.int64)).numpy(), _noise(7, 0, 1)[0])


def test_optimizers_are_tf1_adam_and_built():
  config = TINY.replace(g_lr=1e-4, d_lr=4e-4, beta1=0.0, beta2=0.999)
  g, d = build_models(config)
  g_opt, d_opt = state_lib.make_optimizers(config, g, d)
  assert float(g_opt.learning_rate) == pytest.approx(1e-4)
  assert float(d_opt.learning_rate) == pytest.approx(4e-4)
  for opt in (g_opt, d_opt):
    assert opt.epsilon == 1e-8 and opt.beta_1 == 0.0 and opt.beta_2 == 0.999
    assert opt.built
  # Adam keeps two slots per trainable variable.
  assert len(g_opt.variables) >= 2 * len(g.trainable_variables)


def test_attention_gates_named_per_layer():
  g, d = build_models(TINY)
  gates = summaries.attention_gates(g, d)
  assert set(gates) == {"g_non_local/sigma_ratio", "d_non_local/sigma_ratio"}
  assert all(float(v) == 0.0 for v in gates.values())


def test_jit_compile_refused_with_mirrored_strategy():
  strategy = strategy_lib.make_strategy("mirrored", cpu_replicas=2)
  config = TINY.replace(jit_compile=True)
  with strategy.scope():
    g, d = build_models(config)
    g_opt, d_opt = state_lib.make_optimizers(config, g, d)
    step = state_lib.make_step_variable()
  with pytest.raises(ValueError, match="jit_compile=True is supported with the "
                                       "default strategy"):
    step_lib.TrainStep(config, strategy, g, d, g_opt, d_opt, step)


def _train_step(config, **kwargs):
  """A TrainStep over stand-in models: construction and _noise read only the
  variants (building real models costs seconds each)."""
  model = types.SimpleNamespace(variant=architecture.variant(config.variant))
  return step_lib.TrainStep(config, tf.distribute.get_strategy(), model, model,
                            None, None, None, **kwargs)


def test_noise_fn_feeds_each_substep_and_is_checked():
  calls = []

  def noise_fn(batch, step, substep, replica_id):
    calls.append((batch, int(step), substep, int(replica_id)))
    z = tf.fill([batch, TINY.z_dim], float(substep))
    return z, tf.fill([batch], substep)

  ts = _train_step(TINY, noise_fn=noise_fn)
  z, labels = ts._noise(tf.constant(5, tf.int64), TINY.d_steps)
  assert calls == [(TINY.batch_size, 5, TINY.d_steps, 0)]
  np.testing.assert_array_equal(z.numpy(), np.full([4, TINY.z_dim], TINY.d_steps))
  np.testing.assert_array_equal(labels.numpy(), [TINY.d_steps] * 4)
  # Default: the stateless draw of sample_noise.
  z, labels = _train_step(TINY)._noise(tf.constant(5, tf.int64), 0)
  np.testing.assert_array_equal(z.numpy(), _noise(5, 0, 0, batch=4)[0])
  bad = _train_step(TINY, noise_fn=lambda b, s, k, r: (tf.zeros([b, 3]),
                                                       tf.zeros([b], tf.int32)))
  with pytest.raises(ValueError, match=r"noise_fn must return \(z float32 \[4, 16\]"):
    bad._noise(tf.constant(0, tf.int64), 0)


def test_variable_reads_follow_the_variant_unless_given():
  assert _train_step(TINY).tf1_reads  # official
  assert not _train_step(TINY, variable_reads="resource").tf1_reads
  tfgan = TINY.replace(variant="tfgan_estimator")
  assert not _train_step(tfgan).tf1_reads
  with pytest.raises(ValueError, match="variant 'tfgan_estimator' differs"):
    _train_step(tfgan, variable_reads="tf1")
  with pytest.raises(ValueError, match="variable_reads must be one of"):
    _train_step(TINY, variable_reads="ref")


def test_repeated_classes_get_tf1_adam_steps():
  """CBN gamma is gathered by label: a class drawn twice gives an IndexedSlices
  gradient with a repeated index. TF1's Adam summed the slices, then stepped like
  dense Adam (first step with beta1=0: -lr * g / (|g| + eps / sqrt(1 - beta2)));
  Keras 3's Adam squares each slice on its own, unless the step densifies."""
  gamma = tf.Variable(np.ones([3, 2], np.float32))
  labels = tf.constant([1, 1, 2])
  weights = tf.constant([[0.3, -1.0], [0.3, 0.6], [2.0, 0.5]])
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.gather(gamma, labels) * weights)
  grad = tape.gradient(loss, gamma)
  assert isinstance(grad, tf.IndexedSlices)
  g = np.zeros([3, 2], np.float32)
  np.add.at(g, labels.numpy(), weights.numpy())
  lr, beta2, eps = 1e-3, 0.999, 1e-8
  tf1 = 1.0 - lr * np.sqrt(1 - beta2) * g / (np.sqrt((1 - beta2) * g * g) + eps)

  def adam_step(grads):
    var = tf.Variable(np.ones([3, 2], np.float32))
    opt = keras.optimizers.Adam(lr, beta_1=0.0, beta_2=beta2, epsilon=eps)
    opt.apply_gradients(zip(grads, [var]))
    return var.numpy()

  np.testing.assert_allclose(adam_step(step_lib._dense([grad])), tf1, rtol=1e-6)
  assert np.abs(adam_step([grad]) - tf1).max() > 1e-4  # Keras on the slices
