"""Tests for sagan_tf.training.mode_seeking: the pairs, the term, the Config and
TrainStep checks, and the term in the G step's loss and gradients.

The loss check recomputes the term in float64 numpy from the images the step's
generator returned and compares within rtol 1e-5 (a float32 mean over about 6,000
values, then three scalar operations: rounding stays far below that). The gradient
check needs no tolerance beyond "differs": the same state, noise and labels with
and without the term.
"""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf.run import state as state_lib
from sagan_tf.training import mode_seeking
from sagan_tf.training import step as step_lib

TINY = config_lib.from_preset("tiny")


def test_pair_labels_repeats_the_first_half():
  got = mode_seeking.pair_labels(tf.constant([4, 1, 7, 0, 9, 2])).numpy()
  np.testing.assert_array_equal(got, [4, 1, 7, 4, 1, 7])


def test_term_for_known_inputs():
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (4, 3, 3, 3)).astype(np.float32)
  z = rng.normal(size=(4, 5)).astype(np.float32)
  want = 1.0 / (np.abs(x[:2] - x[2:]).mean() / np.abs(z[:2] - z[2:]).mean() + 1e-5)
  got = float(mode_seeking.term(tf.constant(x), tf.constant(z)))
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # Identical pairs: the largest value, 1 / eps.
  same = np.concatenate([x[:2], x[:2]])
  assert float(mode_seeking.term(tf.constant(same), tf.constant(z))) == pytest.approx(1e5)


def test_config_and_replica_batch_checks():
  for name, preset in config_lib.PRESETS.items():  # digits32's: docs/training.md
    assert preset.ms_weight == (0.15 if name == "digits32" else 0.0), name
  assert config_lib.override(TINY, {"ms_weight": "0.5"}).ms_weight == 0.5
  with pytest.raises(ValueError, match="ms_weight"):
    TINY.replace(ms_weight=-1.0)
  with pytest.raises(ValueError, match="batch_size=5 must be even"):
    TINY.replace(ms_weight=1.0, batch_size=5)
  config = TINY.replace(ms_weight=1.0, batch_size=6)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])  # conftest's
  with pytest.raises(ValueError, match="the replica batch is 3"):
    step_lib.TrainStep(config, strategy, None, None, None, None, None)


def _g_step(ms_weight, labels):
  """One G step from a fixed state; returns (g_loss, G's images and labels, the
  gradients, z)."""
  # With DiffAugment on: the term takes G's output before the augmentation.
  config = TINY.replace(ms_weight=ms_weight, diffaug="translation,cutout")
  tf.keras.utils.set_random_seed(3)
  run = state_lib.RunState.create(config)
  z = tf.random.stateless_normal([4, config.z_dim], seed=[7, 8])
  step = step_lib.TrainStep(config, tf.distribute.get_strategy(), run.generator,
                            run.discriminator, run.g_optimizer, run.d_optimizer,
                            run.step, variable_reads="resource",
                            noise_fn=lambda b, s, k, r: (z, tf.constant(labels)))
  seen, grads = {}, []

  def g(*args, **kwargs):
    out = run.generator(*args, **kwargs)
    seen.update(images=out.numpy().astype(np.float64), labels=args[1].numpy())
    return out
  g.trainable_variables = run.generator.trainable_variables
  step.generator = g

  class Spy:
    def apply_gradients(self, pairs):
      grads.extend(np.array(gr) for gr, _ in pairs)
  step.g_optimizer = Spy()
  g_loss = float(step.g_step(tf.constant(0, tf.int64)))
  return g_loss, seen, grads, z.numpy().astype(np.float64)


def test_g_step_pairs_labels_and_adds_the_weighted_term():
  off_loss, off_seen, off_grads, _ = _g_step(0.0, [1, 2, 3, 4])
  np.testing.assert_array_equal(off_seen["labels"], [1, 2, 3, 4])
  on_loss, on_seen, _, z = _g_step(0.7, [1, 2, 3, 4])
  np.testing.assert_array_equal(on_seen["labels"], [1, 2, 1, 2])
  x = on_seen["images"]
  term = 1.0 / (np.abs(x[:2] - x[2:]).mean() / np.abs(z[:2] - z[2:]).mean() + 1e-5)
  # The hinge part of the on-run: recompute it with the off path on paired labels.
  hinge_loss, _, hinge_grads, _ = _g_step(0.0, [1, 2, 1, 2])
  np.testing.assert_allclose(on_loss, hinge_loss + 0.7 * term, rtol=1e-5)
  assert 0.7 * term > 1e-3  # the term is not negligible beside the hinge
  # The term's gradient reaches G: same state, noise and labels, other gradients.
  _, _, on_grads, _ = _g_step(0.7, [1, 2, 1, 2])
  assert max(np.abs(a - b).max() for a, b in zip(on_grads, hinge_grads)) > 1e-6
