"""sagan_tf.data.glyphs: the printed-digit set, its splits, pipeline and classifier."""
import hashlib

import numpy as np
import pytest
import tensorflow as tf

from eval import digits_classifier as dc
from eval import train_eval
from sagan_tf import config as config_lib
from sagan_tf.data import glyphs
from sagan_tf.data import pipeline as data


def _glyphs_config(**kw):
  return config_lib.from_preset("tiny").replace(dataset="glyphs", **kw)


def _hashes(images):
  return {hashlib.sha1(im.tobytes()).hexdigest() for im in images}


def test_images_shapes_range_and_balanced_labels():
  for split, count in (("train", glyphs.TRAIN_COUNT), ("test", glyphs.TEST_COUNT)):
    images, labels = glyphs.load_glyph_images(32, split)
    assert images.shape == (count, 32, 32, 3) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(labels, minlength=10),
                                  [count // 10] * 10)
    assert (images[..., 0] == images[..., 2]).all()  # grey in 3 channels
    assert images.min() == 0 and images.max() == 255
    # Dark ink on white paper, inside the 1-pixel margin: the border is white.
    assert (images[:, [0, -1], :, 0] == 255).all()
    assert (images[:, :, [0, -1], 0] == 255).all()
    ink = (255 - images[..., 0].astype(np.float32)) / 255
    per_image = ink.mean(axis=(1, 2))
    assert per_image.min() > 0.01 and per_image.max() < 0.6  # a glyph, no blot
    # Varied poses: where the ink sits (its centre of mass) spreads out.
    ys = (ink.sum(2) * np.arange(32)).sum(1) / ink.sum((1, 2))
    assert ys.std() > 2.0
    assert not images.flags.writeable


def test_classes_differ():
  images, labels = glyphs.load_glyph_images(32, "train")
  means = [images[labels == c, ..., 0].astype(np.float32).mean(0) for c in (0, 1)]
  assert np.abs(means[0] - means[1]).mean() > 10  # a ring vs a bar


def test_deterministic_per_seed_and_splits_disjoint():
  build = glyphs.load_glyph_images.__wrapped__  # past the cache
  a_images, a_labels = build(32, "test", seed=3)
  b_images, b_labels = build(32, "test", seed=3)
  np.testing.assert_array_equal(a_images, b_images)
  np.testing.assert_array_equal(a_labels, b_labels)
  c_images, _ = build(32, "test", seed=4)
  assert not _hashes(a_images) & _hashes(c_images)
  train, _ = glyphs.load_glyph_images(32, "train")
  test, _ = glyphs.load_glyph_images(32, "test")
  assert len(_hashes(train)) == len(train)  # no image twice
  assert not _hashes(train) & _hashes(test)
  with pytest.raises(data.DataError, match="splits"):
    glyphs.load_glyph_images(32, "validation")


def test_make_dataset_reads_the_split():
  config = _glyphs_config()
  seen = [b for b in data.make_dataset(config, 500, split="test", shuffle=False,
                                       repeat=False)]
  assert [b[0].shape[0] for b in seen] == [500, 500]
  x = np.concatenate([b[0].numpy() for b in seen])
  y = np.concatenate([b[1].numpy() for b in seen])
  images, labels = glyphs.load_glyph_images(32, "test")
  np.testing.assert_allclose(x, images * (2 / 255) - 1, atol=1e-6)
  np.testing.assert_array_equal(y, labels)
  assert x.min() >= -1 and x.max() <= 1 and y.dtype == np.int32
  x, y = next(iter(data.make_dataset(config, 8)))
  assert x.shape == (8, 32, 32, 3) and y.shape == (8,)
  assert not data.is_tfds_dataset(config) and data.source_files(config) == []
  with pytest.raises(data.DataError, match="num_classes=10"):
    data.make_dataset(_glyphs_config(num_classes=5), 2)


def test_glyph_classifier_fits_the_train_split_and_names_itself(tmp_path):
  recipe = dict(dc.GLYPHS_RECIPE, epochs=4)  # the full recipe runs 20
  classifier = dc.load_digits_classifier(str(tmp_path), recipe=recipe)
  assert classifier.source == "glyphs"
  assert classifier.identity.startswith("glyphs:")
  # Scored on the held-out split: well above chance (0.1).
  assert classifier.held_out_accuracy > 0.7
  images, labels = glyphs.load_glyph_images(32, "test")
  logits = classifier(tf.constant(images[:200] * (2 / 255) - 1, tf.float32))
  read = np.mean(np.argmax(logits["logits"].numpy(), 1) == labels[:200])
  assert read > 0.7
  digits = dict(dc.RECIPE, epochs=4)
  assert dc.cache_path(str(tmp_path), digits) != dc.cache_path(str(tmp_path),
                                                               recipe)


def test_classifier_names_follow_the_dataset():
  config = _glyphs_config()
  assert train_eval.default_classifier_name(config) == "glyphs"
  assert train_eval.default_classifier_name(
      config.replace(dataset="digits")) == "digits"
  assert train_eval.default_classifier_name(
      config.replace(dataset="cifar10")) == "inception"
  train_eval.check_classifier("glyphs", config)
  train_eval.check_classifier("inception", config)
  with pytest.raises(ValueError, match="use 'glyphs'"):
    train_eval.check_classifier("digits", config)
