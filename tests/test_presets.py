"""Preset-driven input pipeline parameters: the interleave cycle length reaches
both file readers, and imagenet128 carries the official run's values."""
import numpy as np

from sagan_tf import config as config_lib
from sagan_tf.data import pipeline as data
from tests.test_data import tag_of, tagged_images


def test_interleave_cycle_length_orders_tfrecord_files(tmp_path):
  images = tagged_images(6, 32)
  data.write_official_tfrecord(str(tmp_path / "a.tfrecords"), images[:3], [0] * 3)
  data.write_official_tfrecord(str(tmp_path / "b.tfrecords"), images[3:], [1] * 3)
  base = config_lib.from_preset("tiny").replace(
      dataset="tfrecord", tfrecord_pattern=str(tmp_path / "*.tfrecords"))

  def order(cycle):
    ds = data.make_dataset(base.replace(interleave_cycle_length=cycle), 6,
                           shuffle=False, repeat=False)
    return list(tag_of(next(iter(ds))[0].numpy()))
  assert order(1) == [0, 1, 2, 3, 4, 5]  # one file after the other
  assert order(2) == [0, 3, 1, 4, 2, 5]  # both files at once


def test_interleave_cycle_length_reaches_tfds(tmp_path, monkeypatch):
  # TFDS datasets are read from their files by sagan_tf.data.order, like TFRecords.
  from sagan_tf.data import order as data_order  # pylint: disable=g-import-not-at-top
  from tests.test_tfds_prepare import SaganTestTinyImages, write_pngs  # pylint: disable=g-import-not-at-top
  seen = []
  order = data_order.Order

  def spy(*args, **kwargs):
    made = order(*args, **kwargs)
    seen.append(made.cycle_length)
    return made
  monkeypatch.setattr(data_order, "Order", spy)
  (tmp_path / "src").mkdir()
  write_pngs(tmp_path / "src")
  SaganTestTinyImages.source_dir = str(tmp_path / "src")
  cfg = config_lib.from_preset("tiny").replace(
      dataset="sagan_test_tiny_images", data_dir=str(tmp_path / "tfds"),
      num_classes=3, interleave_cycle_length=7)
  data.prepare_tfds_dataset(cfg)
  x, _ = next(iter(data.make_dataset(cfg, 2)))
  assert x.shape == (2, 32, 32, 3) and seen == [7]


def test_imagenet128_is_the_official_run():
  c = config_lib.from_preset("imagenet128")
  # train_imagenet.py: 4 towers x batch 64, shuffle_buffer_size 100000;
  # model.py: data_parallelism (interleave cycle) 64.
  assert (c.batch_size, c.bn_group_size) == (256, 64)
  assert (c.shuffle_buffer, c.interleave_cycle_length) == (100_000, 64)
  assert c.train_steps == 1_000_000  # the paper's 1M, not the hook's 2M
  b = config_lib.from_preset("biggan_schedule128")
  assert (b.bn_group_size, b.shuffle_buffer, b.d_steps) == (64, 100_000, 2)
  assert np.all([config_lib.from_preset(n).interleave_cycle_length == 16
                 for n in ("cifar10_32", "digits32", "tiny")])
