"""A real TFDS ``download_and_prepare`` (no network) and reading the result.

The builder below is defined in a module of the ``tests`` package, so TFDS takes
the same path to locate its code as for a builder shipped in ``tensorflow_datasets``
(``DatasetBuilder._get_filepath`` -> ``epath.resource_path`` -> the lazily
imported ``importlib_resources``): a venv that lacks a dependency of the
preparation (as once happened with ``importlib_resources``) fails here, as the real
cifar10/imagenet2012 preparation would.
"""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from sagan_tf import config as config_lib
from sagan_tf.data import pipeline as data
from sagan_tf.data import tfds_source
from sagan_tf.data.pipeline import DataError

SOURCE_DIR_ENV = "SAGAN_TF_TEST_TINY_IMAGES"


class SaganTestTinyImages(tfds.core.GeneratorBasedBuilder):
  """Six 32x32 PNG files from a local directory, labels 0-2."""
  VERSION = tfds.core.Version("1.0.0")
  source_dir = None  # set by the test

  def _info(self):
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(32, 32, 3)),
        "label": tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(self.source_dir)}

  def _generate_examples(self, source_dir):
    for path in sorted(tf.io.gfile.glob(f"{source_dir}/*.png")):
      name = path.rsplit("/", 1)[-1]
      yield name, {"image": path, "label": int(name.split("_")[0])}


def write_pngs(directory, n=6):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (n, 32, 32, 3), np.uint8)
  for i, image in enumerate(images):
    Image.fromarray(image).save(directory / f"{i % 3}_{i}.png")
  return images


def test_download_and_prepare_then_train_input(tmp_path):
  assert "." in SaganTestTinyImages.__module__  # a package module, like cifar10's
  src = tmp_path / "src"
  src.mkdir()
  images = write_pngs(src)
  SaganTestTinyImages.source_dir = str(src)
  cfg = config_lib.from_preset("tiny").replace(
      dataset="sagan_test_tiny_images", data_dir=str(tmp_path / "tfds"),
      image_size=32, num_classes=3)
  assert data.prepare_tfds_dataset(cfg) is True  # the real preparation
  assert data.prepare_tfds_dataset(cfg) is False  # prepared: left alone
  got = [(x.numpy(), y.numpy()) for x, y in data.make_dataset(
      cfg, 6, shuffle=False, repeat=False)]
  assert len(got) == 1
  x, y = got[0]
  want = {bytes(im.tobytes()): int(i % 3) for i, im in enumerate(images)}
  pixels = np.round((x + 1.0) * 127.5).astype(np.uint8)
  assert {bytes(p.tobytes()): int(l) for p, l in zip(pixels, y)} == want


def test_prepare_failure_is_one_data_error(tmp_path):
  """A failing preparation becomes a one-line DataError naming the dataset."""
  SaganTestTinyImages.source_dir = str(tmp_path / "missing")  # no PNG files
  cfg = config_lib.from_preset("tiny").replace(
      dataset="sagan_test_tiny_images", data_dir=str(tmp_path / "tfds"),
      image_size=32, num_classes=3)

  class Boom(Exception):
    pass

  def fail(self, *a, **k):
    raise Boom("disk full\nsecond line of a long traceback")
  orig = SaganTestTinyImages._split_generators
  SaganTestTinyImages._split_generators = fail
  try:
    with pytest.raises(DataError) as info:
      data.prepare_tfds_dataset(cfg)
  finally:
    SaganTestTinyImages._split_generators = orig
  msg = str(info.value)
  assert "\n" not in msg
  assert "'sagan_test_tiny_images'" in msg and "Boom: disk full" in msg
  assert "tfds build sagan_test_tiny_images" in msg
  assert tfds_source.is_tfds_dataset(cfg)


class SaganTestOddImages(tfds.core.GeneratorBasedBuilder):
  """Eight JPEG-encoded images of different non-square sizes, 1000 classes (like
  imagenet2012), generated in memory."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "label": tfds.features.ClassLabel(num_classes=1000)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(1)
    for i in range(8):
      h, w = 40 + 7 * i, 90 - 5 * i
      yield i, {"image": rng.integers(0, 256, (h, w, 3), np.uint8),
                "label": 999 - i}


def test_odd_sizes_many_classes_resume_and_subsplit(tmp_path):
  cfg = config_lib.from_preset("tiny").replace(
      dataset="sagan_test_odd_images", data_dir=str(tmp_path / "tfds"),
      num_classes=1000, shuffle_buffer=3)
  assert data.prepare_tfds_dataset(cfg) is True
  straight = [(x.numpy(), y.numpy()) for x, y in data.make_dataset(cfg, 2).take(9)]
  for x, y in straight:
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1 and ((992 <= y) & (y <= 999)).all()
  epoch = np.concatenate([y for _, y in straight[:4]])
  assert sorted(epoch) == list(range(992, 1000))
  resumed = [y.numpy() for _, y in data.make_dataset(cfg, 2, skip_batches=5).take(4)]
  np.testing.assert_array_equal(np.concatenate(resumed),
                                np.concatenate([y for _, y in straight[5:9]]))
  half = [y.numpy() for _, y in data.make_dataset(
      cfg, 8, split="train[:50%]", shuffle=False, repeat=False)]
  full = [y.numpy() for _, y in data.make_dataset(
      cfg, 8, shuffle=False, repeat=False)]
  assert sorted(full[0]) == list(range(992, 1000))
  np.testing.assert_array_equal(np.concatenate(half), full[0][:4])
  with pytest.raises(DataError, match="1000 classes but Config.num_classes=10"):
    data.make_dataset(cfg.replace(num_classes=10), 2)
  with pytest.raises(DataError, match="cannot read split 'validation'"):
    data.make_dataset(cfg, 2, split="validation")
