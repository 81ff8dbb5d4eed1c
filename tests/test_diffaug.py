"""Tests for sagan_tf.training.diffaug and its use in the train step: gradients,
the seeded draws, the geometry of translation and cutout, the D passes it
augments, resume, MirroredStrategy and XLA."""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf import strategy as strategy_lib
from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import state as state_lib
from sagan_tf.training import diffaug
from sagan_tf.training import loop as train_lib
from sagan_tf.training import noise as noise_lib
from sagan_tf.training import step as step_lib

ALL = ("color", "translation", "cutout")
TINY = config_lib.from_preset("tiny").replace(
    diffaug="color,translation,cutout", log_every=1, sample_every=100,
    checkpoint_every=2)
SEED = tf.constant([3, 5], tf.int64)


def _images(batch=4, size=32, seed=0):
  rng = np.random.default_rng(seed)
  return tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32))


def test_config_field_parses_and_is_off_in_every_preset_but_digits32():
  for name in config_lib.PRESETS:
    want = "translation,cutout" if name == "digits32" else ""
    assert config_lib.from_preset(name).diffaug == want, name
  c = config_lib.override(config_lib.from_preset("tiny"),
                          {"diffaug": "color, cutout"})
  assert config_lib.parse_diffaug(c.diffaug) == ("color", "cutout")
  for bad in ("colour", "color,color"):
    with pytest.raises(ValueError, match="diffaug"):
      config_lib.from_preset("tiny").replace(diffaug=bad)


@pytest.mark.parametrize("policy", ALL)
def test_gradient_reaches_the_images(policy):
  x = _images()
  w = _images(seed=1)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = diffaug.augment(x, (policy,), SEED)
    loss = tf.reduce_sum(y * w)
  grad = tape.gradient(loss, x).numpy()
  assert np.isfinite(grad).all() and np.abs(grad).max() > 0
  assert not np.array_equal(y.numpy(), x.numpy())  # the policy did something


def test_gradient_reaches_generator_through_a_d_pass():
  run = state_lib.RunState.create(TINY)
  g, d = run.generator, run.discriminator
  z = tf.random.stateless_normal([2, TINY.z_dim], seed=[1, 2])
  labels = tf.constant([1, 7])
  with tf.GradientTape() as tape:
    fake = diffaug.augment(g(z, labels, training=True), ALL, SEED)
    loss = tf.reduce_sum(d(fake, labels, training=True, update_u=False))
  grads = tape.gradient(loss, g.trainable_variables)
  kernel = [gr for gr, v in zip(grads, g.trainable_variables)
            if "g_snconv_last" in v.path and "kernel" in v.path]
  assert kernel, [v.path for v in g.trainable_variables][-5:]
  for gr in kernel + [grads[0]]:
    gr = tf.convert_to_tensor(gr).numpy()
    assert np.isfinite(gr).all() and np.abs(gr).max() > 0


def test_same_seed_same_batch_and_every_input_of_the_seed_counts():
  run = state_lib.RunState.create(TINY)
  step = step_lib.TrainStep(TINY, tf.distribute.get_strategy(), run.generator,
                            run.discriminator, run.g_optimizer, run.d_optimizer,
                            run.step)
  x = _images()
  aug = lambda s, k, stream, c=step: c._augment(  # pylint: disable=protected-access
      x, tf.constant(s, tf.int64), k, stream).numpy()
  first = aug(5, 0, 0)
  np.testing.assert_array_equal(first, aug(5, 0, 0))
  other_seed = step_lib.TrainStep(
      TINY.replace(seed=1), tf.distribute.get_strategy(), run.generator,
      run.discriminator, run.g_optimizer, run.d_optimizer, run.step)
  for other in (aug(6, 0, 0), aug(5, 1, 0), aug(5, 0, 1), aug(5, 0, 0, other_seed)):
    assert not np.array_equal(first, other)


def test_translation_shifts_with_zero_fill():
  x = _images(batch=64)
  shifts = diffaug.translation_shifts(SEED, 64, 32, 32).numpy()
  assert set(shifts.ravel()) == set(range(-4, 5))  # [-32 // 8, 32 // 8], all drawn
  y = diffaug.translate(x, tf.constant(shifts)).numpy()
  xn = x.numpy()
  for b, (dy, dx) in enumerate(shifts):
    expected = np.zeros_like(xn[b])
    for i in range(32):
      for j in range(32):
        if 0 <= i - dy < 32 and 0 <= j - dx < 32:
          expected[i, j] = xn[b, i - dy, j - dx]
    np.testing.assert_array_equal(y[b], expected)
  # The policy draws exactly these shifts from its seed.
  np.testing.assert_array_equal(diffaug.translation(x, SEED).numpy(), y)


def test_cutout_zeroes_a_half_size_square_clipped_at_the_border():
  batch = 400
  ones = tf.ones([batch, 32, 32, 3])
  corners = diffaug.cutout_corners(SEED, batch, 32, 32).numpy()
  centres = corners + 8
  assert set(centres.ravel()) == set(range(0, 33))  # centre 0 .. 32 all drawn
  y = diffaug.cut(ones, tf.constant(corners)).numpy()
  for b, (r, c) in enumerate(corners):
    expected = np.ones((32, 32, 3), np.float32)
    expected[max(r, 0):max(r + 16, 0), max(c, 0):max(c + 16, 0)] = 0.0
    np.testing.assert_array_equal(y[b], expected)
  zeros = (y[..., 0] == 0).sum(axis=(1, 2))
  assert zeros.max() == 16 * 16 and zeros.min() < 16 * 16  # whole and clipped
  np.testing.assert_array_equal(diffaug.cutout(ones, SEED).numpy(), y)


def _fit(y, x):
  """Per example, the least-squares factor f of y = f * x."""
  return (y * x).sum(axis=(1, 2, 3)) / (x * x).sum(axis=(1, 2, 3))


def test_color_steps_and_their_ranges():
  x = _images(batch=512)
  xn = x.numpy().astype(np.float64)
  b = (diffaug.brightness(x, SEED).numpy() - xn)
  offsets = b[:, 0, 0, 0]
  np.testing.assert_allclose(b, offsets[:, None, None, None] + 0 * b, atol=1e-6)
  assert offsets.min() >= -0.5 and offsets.max() < 0.5
  assert offsets.min() < -0.45 and offsets.max() > 0.45
  pixel_mean = xn.mean(axis=3, keepdims=True)
  s = diffaug.saturation(x, SEED).numpy()
  factors = _fit(s - pixel_mean, xn - pixel_mean)
  np.testing.assert_allclose(s, (xn - pixel_mean) * factors[:, None, None, None]
                             + pixel_mean, atol=1e-5)
  assert factors.min() >= 0 and factors.max() < 2 and factors.max() > 1.9
  image_mean = xn.mean(axis=(1, 2, 3), keepdims=True)
  c = diffaug.contrast(x, SEED).numpy()
  factors = _fit(c - image_mean, xn - image_mean)
  np.testing.assert_allclose(c, (xn - image_mean) * factors[:, None, None, None]
                             + image_mean, atol=1e-5)
  assert factors.min() >= 0.5 and factors.max() < 1.5
  assert factors.min() < 0.55 and factors.max() > 1.45
  # "color" is the three in this order; the order of the policies is kept.
  np.testing.assert_array_equal(
      diffaug.augment(x, ("color",), SEED).numpy(),
      diffaug.contrast(diffaug.saturation(diffaug.brightness(x, SEED), SEED),
                       SEED).numpy())
  np.testing.assert_array_equal(
      diffaug.augment(x, ("cutout", "color"), SEED).numpy(),
      diffaug.augment(diffaug.cutout(x, SEED), ("color",), SEED).numpy())


class _Spy:
  """Stands in for a model: records what it was given and what it returned."""

  def __init__(self, model):
    self.model, self.calls = model, []

  def __call__(self, *args, **kwargs):
    out = self.model(*args, **kwargs)
    self.calls.append((args[0].numpy(), out.numpy()))
    return out

  @property
  def trainable_variables(self):
    return self.model.trainable_variables


def test_every_d_pass_sees_augmented_images():
  run = state_lib.RunState.create(TINY)
  step = step_lib.TrainStep(TINY, tf.distribute.get_strategy(), run.generator,
                            run.discriminator, run.g_optimizer, run.d_optimizer,
                            run.step, variable_reads="resource")
  step.generator, step.discriminator = _Spy(run.generator), _Spy(run.discriminator)
  images = _images()
  labels = tf.constant([0, 1, 2, 3])
  t = tf.constant(4, tf.int64)

  def expected(x, substep, stream):
    seed = noise_lib.noise_seed(TINY.seed, t, substep, 0)
    seed = tf.random.experimental.stateless_fold_in(seed, stream)
    return diffaug.augment(tf.constant(x), ALL, seed).numpy()

  step.d_step(images, labels, t, 0)  # resource reads: real pass, then fake
  (g_out,), ((real_in, _), (fake_in, _)) = ([c[1] for c in step.generator.calls],
                                            step.discriminator.calls)
  np.testing.assert_allclose(real_in, expected(images.numpy(), 0, 2), atol=1e-6)
  np.testing.assert_allclose(fake_in, expected(g_out, 0, 3), atol=1e-6)
  step.generator.calls, step.discriminator.calls = [], []
  step.g_step(t)
  (g_out,), ((fake_in, _),) = ([c[1] for c in step.generator.calls],
                               step.discriminator.calls)
  np.testing.assert_allclose(fake_in, expected(g_out, TINY.d_steps, 3), atol=1e-6)
  assert np.abs(fake_in - g_out).max() > 0.1


def _copy_checkpoint(src_workdir, dst, step):
  os.makedirs(os.path.join(dst, "checkpoints"))
  shutil.copy(os.path.join(src_workdir, "config.json"), dst)
  src = os.path.join(src_workdir, "checkpoints")
  for f in os.listdir(src):
    if f.startswith(f"ckpt-{step}."):
      shutil.copy(os.path.join(src, f), os.path.join(dst, "checkpoints"))
  with open(os.path.join(dst, "checkpoints", "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "ckpt-{step}"\n'
            f'all_model_checkpoint_paths: "ckpt-{step}"\n')


def test_resume_draws_as_the_straight_run(tmp_path):
  # Both options on; LeCam's averages start decaying at step 1 and its term at 2.
  config = TINY.replace(lecam_weight=0.3, lecam_start=1)
  straight = str(tmp_path / "straight")
  state_lib.set_process_switches(config, deterministic=True)
  train_lib.train(config, straight, until=4)
  resumed = str(tmp_path / "resumed")
  _copy_checkpoint(straight, resumed, 2)
  state_lib.set_process_switches(config, deterministic=True)
  result = train_lib.train(config, resumed, until=4)
  assert result.step == 4
  a, b = ckpt_lib.variables_of(straight), ckpt_lib.variables_of(resumed)
  assert a.keys() == b.keys() and any(k.startswith("lecam/") for k in a)
  differ = [k for k in a if not np.array_equal(a[k], b[k])]
  assert not differ, differ[:5]


def test_mirrored_two_steps_with_both_options(tmp_path):
  strategy = strategy_lib.make_strategy("mirrored", cpu_replicas=2)
  config = TINY.replace(lecam_weight=0.3, lecam_start=0)
  trainer = train_lib.Trainer(config, str(tmp_path), strategy)
  result = trainer.run(2)
  assert all(np.isfinite(v) for v in result.metrics.values()), result.metrics
  for var in (trainer.state.lecam.real_mean, trainer.state.lecam.fake_mean,
              trainer.discriminator.d_block2.sn_conv1.kernel):
    var = var if isinstance(var, tf.Variable) else var.value  # Keras: its tf one
    local = strategy.experimental_local_results(var)
    assert len(local) == 2
    np.testing.assert_array_equal(local[0].numpy(), local[1].numpy())
  # Each replica draws its own augmentation of the same images.
  x = _images(batch=2)
  per_replica = strategy.run(
      lambda: trainer.train_step._augment(  # pylint: disable=protected-access
          x, tf.constant(0, tf.int64), 0, 0))
  first, second = strategy.experimental_local_results(per_replica)
  assert not np.array_equal(first.numpy(), second.numpy())
  trainer.close()


def test_xla_step_with_both_options(tmp_path):
  config = TINY.replace(lecam_weight=0.3, lecam_start=0, jit_compile=True)
  trainer = train_lib.Trainer(config, str(tmp_path))
  assert trainer.train_step._compiled  # pylint: disable=protected-access
  result = trainer.run(2)
  trainer.close()
  assert all(np.isfinite(v) for v in result.metrics.values()), result.metrics
  assert float(trainer.state.lecam.real_mean.numpy()) != 0.0
