"""Tests for sagan_tf.models.ema: update arithmetic, start step, strategies, checkpoints."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.inference import bn_stats
from sagan_tf.inference.bn_stats import bn_layers
from sagan_tf.run import state as state_lib
from sagan_tf import config as config_lib
from sagan_tf.models.ema import EMA
from sagan_tf.models.generator import Generator
from sagan_tf.models.builder import build_models
from sagan_tf.training import loop as train_lib


def _tiny_generator():
  return Generator(image_size=32, gf_dim=2, num_classes=3, z_dim=8).build_variables()


def _perturb(generator, rng):
  """Gives every weight of the live generator new random values; returns them."""
  values = []
  for w in generator.weights:
    v = rng.standard_normal(tuple(w.shape)).astype(np.float32)
    w.assign(v)
    values.append(v)
  return values


def _numpy_reference(init, steps, decay, start, trainable):
  """Expected EMA values after applying the update rule to each (step, values)."""
  ema = [v.copy() for v in init]
  for step, values in steps:
    d = 0.0 if step < start else decay
    ema = [d * e + (1 - d) * w if t else w.copy()
           for e, w, t in zip(ema, values, trainable)]
  return ema


def test_init_copies_config_and_weights():
  g = _tiny_generator()
  ema = EMA(g, decay=0.9)
  e = ema.generator
  assert (e.image_size, e.gf_dim, e.num_classes, e.z_dim) == (32, 2, 3, 8)
  assert e.attention_resolutions == g.attention_resolutions
  assert e.variant.name == g.variant.name
  assert len(e.weights) == len(g.weights)
  for a, b in zip(e.weights, g.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # Separate variables: changing the live G does not move the EMA copy.
  g.g_snh0.kernel.assign(g.g_snh0.kernel + 1.0)
  assert not np.allclose(e.g_snh0.kernel.numpy(), g.g_snh0.kernel.numpy())


def test_rejects_bad_decay():
  with pytest.raises(ValueError, match="decay"):
    EMA(Generator(image_size=32, gf_dim=2, num_classes=3, z_dim=8), decay=1.0)


def test_update_matches_numpy_with_start_step():
  rng = np.random.default_rng(0)
  g = _tiny_generator()
  init = [w.numpy() for w in g.weights]
  trainable = [w.trainable for w in g.weights]
  assert not all(trainable) and any(trainable)  # u and BN stats are present
  decay, start = 0.75, 2
  ema = EMA(g, decay=decay, start_step=start)
  # Compiled with XLA, as the trainer's replica step may be (jit_compile=True).
  update = tf.function(ema.update, jit_compile=True)
  history = []
  for step in range(5):  # steps 0, 1 copy; 2, 3, 4 average
    values = _perturb(g, rng)
    history.append((step, values))
    update(g, tf.constant(step, tf.int64))
  expected = _numpy_reference(init, history, decay, start, trainable)
  for e, x in zip(ema.generator.weights, expected):
    np.testing.assert_allclose(e.numpy(), x, rtol=1e-6, atol=1e-6)
  # Averaged trainable weights differ from the live ones; copies are exact.
  for e, w, t in zip(ema.generator.weights, g.weights, trainable):
    if t:
      assert not np.allclose(e.numpy(), w.numpy())
    else:
      np.testing.assert_array_equal(e.numpy(), w.numpy())


@pytest.mark.parametrize("context", ["replica", "cross_replica"])
def test_mirrored_strategy(context):
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  assert strategy.num_replicas_in_sync == 2
  rng = np.random.default_rng(2)
  with strategy.scope():
    g = _tiny_generator()
    ema = EMA(g, decay=0.5, start_step=1)
  init = [w.numpy() for w in g.weights]
  trainable = [w.trainable for w in g.weights]

  @tf.function
  def replica_update(step):
    strategy.run(lambda: ema.update(g, step))

  history = []
  for step in range(3):
    values = _perturb(g, rng)  # cross-replica assign: same on both replicas
    history.append((step, values))
    if context == "replica":
      replica_update(tf.constant(step, tf.int64))
    else:
      with strategy.scope():
        ema.update(g, step)
  expected = _numpy_reference(init, history, 0.5, 1, trainable)
  for e, x in zip(ema.generator.weights, expected):
    components = e.value.values  # one tf.Variable per replica
    assert len(components) == 2
    for c in components:
      np.testing.assert_allclose(c.numpy(), x, rtol=1e-6, atol=1e-6)


def test_checkpoint_round_trip(tmp_path):
  config = config_lib.from_preset("tiny").replace(gf_dim=2, df_dim=2)
  g, d = build_models(config)
  ema = EMA(g, decay=0.5)
  _perturb(g, np.random.default_rng(3))
  ema.update(g, 1)
  workdir = str(tmp_path / "run")
  state_lib.save_models(workdir, config, g, d, step=7, ema_generator=ema.generator)
  _, g_ema, _, step = state_lib.load_models(workdir, use_ema=True)
  _, g_live, _, _ = state_lib.load_models(workdir, use_ema=False)
  assert step == 7
  for a, b in zip(g_ema.weights, ema.generator.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  for a, b in zip(g_live.weights, g.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert not np.allclose(g_ema.g_snh0.kernel.numpy(), g_live.g_snh0.kernel.numpy())


def test_biggan_schedule_preset():
  c = config_lib.from_preset("biggan_schedule128")
  base = config_lib.from_preset("imagenet128")
  assert (c.ema_decay, c.ema_start, c.beta2, c.batch_size, c.d_steps) == (
      0.9999, 20000, 0.999, 256, 2)
  assert c.replace(ema_decay=0.0, ema_start=0, d_steps=1) == base


def test_ema_generator_follows_dtype_policy():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    g = Generator(image_size=32, gf_dim=2, num_classes=3, z_dim=8)
  finally:
    keras.mixed_precision.set_global_policy("float32")
  ema = EMA(g, decay=0.5)  # built under float32: still mirrors g
  assert ema.generator.g_block1.compute_dtype == "bfloat16"
  assert {w.dtype for w in ema.generator.weights} == {"float32"}
  assert keras.mixed_precision.global_policy().name == "float32"
  images = ema.generator(tf.zeros([1, 8]), tf.zeros([1], tf.int32), update_u=False)
  assert images.dtype == tf.float32


def test_ema_generator_keeps_the_tower_bn_group_size():
  """Batch-statistics forwards (the trainer's sample grids, bn_stats=batch)
  normalise per BN group: the EMA generator, equal to the live one right after
  construction, must give the live one's images, and those of the checkpoint's
  generator that load_models builds (the run's group size)."""
  config = config_lib.from_preset("tiny").replace(bn_group_size=2)
  g, _ = build_models(config)
  ema = EMA(g, decay=0.9)
  assert {l.group_size for l in bn_layers(ema.generator)} == {2}
  z = tf.random.stateless_normal([4, config.z_dim], seed=[3, 0])
  labels = tf.constant([0, 1, 2, 3])
  live = bn_stats.batch_forward(g, z, labels, update_u=False).numpy()
  averaged = bn_stats.batch_forward(ema.generator, z, labels, update_u=False).numpy()
  np.testing.assert_array_equal(averaged, live)
  # Whole-batch statistics would draw other images: the check can fail.
  whole, _ = build_models(config.replace(bn_group_size=0))
  for a, b in zip(whole.weights, g.weights):
    a.assign(b)
  other = bn_stats.batch_forward(whole, z, labels, update_u=False).numpy()
  assert np.abs(other - live).max() > 1e-3


def test_short_run_averages_from_the_live_weights_at_ema_start(tmp_path):
  """ema_start: the EMA equals the live generator through step ema_start - 1,
  then averages from that copy (not from the weights of step 0); samples, eval
  and load_models (sample, eval, export) take the EMA generator."""
  config = config_lib.from_preset("tiny").replace(
      ema_decay=0.5, ema_start=2, log_every=1, sample_every=100, checkpoint_every=100)
  live, ema, trainer = {}, {}, None
  evals = []

  def on_log(progress):
    names = [w.path for w in trainer.generator.trainable_weights]
    live[progress.step] = dict(zip(names, [w.numpy() for w in
                                           trainer.generator.trainable_weights]))
    ema[progress.step] = dict(zip(names, [w.numpy() for w in
                                          trainer.ema.generator.trainable_weights]))

  trainer = train_lib.Trainer(config.replace(eval_every=3), str(tmp_path),
                              on_log=on_log,
                              on_eval=lambda step, g: evals.append(g))
  start = {w.path: w.numpy() for w in trainer.generator.trainable_weights}
  trainer.run(3)
  trainer.close()
  assert trainer.sample_model is trainer.ema.generator
  assert evals == [trainer.ema.generator]
  for name in start:
    np.testing.assert_array_equal(ema[1][name], live[1][name])  # a copy
    expected2 = 0.5 * live[1][name] + 0.5 * live[2][name]
    np.testing.assert_allclose(ema[2][name], expected2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ema[3][name], 0.5 * expected2 + 0.5 * live[3][name],
                               rtol=1e-6, atol=1e-7)
  moved = [n for n in start if not np.allclose(live[1][n], start[n])]
  assert moved  # so averaging from step 0 would give other values
  _, g, _, _ = state_lib.load_models(str(tmp_path), use_ema=True)
  for a, b in zip(g.weights, trainer.ema.generator.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
