"""eval.digits_classifier (deterministic, cached) and the class accuracy of samples."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from eval import digits_classifier as dc
from eval import features
from eval import metrics

TINY = dict(dc.RECIPE, epochs=3, held_out=100, width=(8, 16), features=8)


def test_training_is_deterministic_and_learns():
  model_a, acc_a = dc.train_classifier(TINY)
  model_b, acc_b = dc.train_classifier(TINY)
  for a, b in zip(model_a.get_weights(), model_b.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert acc_a == acc_b
  assert acc_a > 0.5  # well above chance (0.1) after three epochs


def test_cache_is_keyed_by_recipe_and_reused(tmp_path, monkeypatch):
  first = dc.load_digits_classifier(str(tmp_path), recipe=TINY)
  assert first.identity.startswith("digits:") and first.source == "digits"
  assert first.labels_match_classes and first.num_classes == 10

  def no_training(recipe):
    raise AssertionError("retrained although cached")
  monkeypatch.setattr(dc, "train_classifier", no_training)
  again = dc.load_digits_classifier(str(tmp_path), recipe=TINY)
  assert again.identity == first.identity
  assert again.held_out_accuracy == first.held_out_accuracy
  other = dict(TINY, seed=1)
  assert dc.cache_path(str(tmp_path), other) != dc.cache_path(str(tmp_path), TINY)
  with pytest.raises(AssertionError, match="retrained"):
    dc.load_digits_classifier(str(tmp_path), recipe=other)
  # The Inception call form: any size in [-1, 1] -> logits [N, 10], pool_3 [N, 8].
  out = again(tf.zeros([3, 64, 64, 3]))
  assert out["logits"].shape == (3, 10) and out["pool_3"].shape == (3, 8)


class _ValueGenerator:
  """Images whose pixels all equal label / 10 for even labels, 0 for odd."""
  z_dim, num_classes = 4, 10

  def __call__(self, z, labels, training=False, update_u=False):
    value = tf.where(labels % 2 == 0, tf.cast(labels, tf.float32) / 10.0, 0.0)
    return tf.zeros([tf.shape(z)[0], 8, 8, 3]) + value[:, None, None, None]


class _ValueClassifier:
  """Reads the class back as round(mean pixel * 10)."""
  labels_match_classes = True

  def __call__(self, images):
    read = tf.cast(tf.round(tf.reduce_mean(images, [1, 2, 3]) * 10.0), tf.int32)
    logits = tf.one_hot(read, 10)
    return {"logits": logits, "pool_3": tf.concat([logits, logits], 1)}


def test_class_accuracy_counts_samples_read_as_their_class():
  from sagan_tf.inference.sampling import NoiseAndLabels
  num = 37
  stats = features.generated_stats(_ValueGenerator(), _ValueClassifier(), num,
                                   seed=3, batch_size=10, log_every=0)
  _, labels = NoiseAndLabels(4, 10, seed=3).take(num)
  # Correct: the even labels (class 0 reads back as 0 too).
  expected = np.mean(labels % 2 == 0)
  assert 0.2 < expected < 0.8
  assert stats.class_accuracy == pytest.approx(expected)
  values = metrics.compare(dataclasses.replace(stats, class_accuracy=None), stats)
  assert values["class_accuracy"] == pytest.approx(expected)
  # A classifier without labels_match_classes (e.g. Inception) gives none.
  plain = features.generated_stats(
      _ValueGenerator(), lambda x: _ValueClassifier()(x), num, seed=3,
      batch_size=10, log_every=0)
  assert plain.class_accuracy is None
  assert "class_accuracy" not in metrics.compare(plain, plain)
