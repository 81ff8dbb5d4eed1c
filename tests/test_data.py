"""Tests for sagan_tf.data.pipeline: sources, determinism, sharding, distribution, errors."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf.data import pipeline as data
from sagan_tf.data import tfds_source
from sagan_tf.data.pipeline import DataError


def tiny(**changes):
  return config_lib.from_preset("tiny").replace(**changes)


def batches(ds, n=None):
  """First n (or all) batches as numpy (images, labels) pairs."""
  if n is not None:
    ds = ds.take(n)
  return [(x.numpy(), y.numpy()) for x, y in ds]


def check_batch(x, y, batch, size, num_classes):
  assert x.shape == (batch, size, size, 3) and x.dtype == np.float32
  assert y.shape == (batch,) and y.dtype == np.int32
  assert x.min() >= -1.0 and x.max() <= 1.0
  assert x.max() > x.min()
  assert ((0 <= y) & (y < num_classes)).all()


def tagged_images(n, size):
  """uint8 [n, size, size, 3] random images whose pixel [0, 0, 0] is their index."""
  images = np.random.default_rng(0).integers(0, 256, (n, size, size, 3), np.uint8)
  images[:, 0, 0, 0] = np.arange(n)
  return images


def tag_of(images):
  return np.round((images[:, 0, 0, 0] + 1.0) * 127.5).astype(int)


@pytest.fixture
def records(tmp_path):
  """Two official-format files of 32x32 images tagged 0..9 and 10..19."""
  images = tagged_images(20, 32)
  labels = np.arange(20) % 10
  data.write_official_tfrecord(str(tmp_path / "a.tfrecords"), images[:10], labels[:10])
  data.write_official_tfrecord(str(tmp_path / "b.tfrecords"), images[10:], labels[10:])
  return str(tmp_path / "*.tfrecords"), images, labels


# ----------------------------------------------------------------------- digits

def test_digits_images_look_like_digits():
  images, labels = data.load_digits_images(32)
  assert images.shape == (1797, 32, 32, 3) and images.dtype == np.uint8
  assert sorted(set(labels.tolist())) == list(range(10))
  assert (images[..., 0] == images[..., 2]).all()  # grey in 3 channels
  assert images.min() == 0 and images.max() == 255
  # Dark ink on white paper: the side columns are white, the centre holds ink.
  assert images[:, :, [0, -1], 0].mean() > 250
  assert images[:, 12:20, 8:24, 0].mean() < 200
  # Classes differ: the mean 0 and mean 1 are far apart (a ring vs a bar).
  mean0 = images[labels == 0, ..., 0].mean(0)
  mean1 = images[labels == 1, ..., 0].mean(0)
  assert np.abs(mean0 - mean1).mean() > 20
  assert data.load_digits_images(32)[0] is images  # cached
  assert not images.flags.writeable


def test_digits_dataset_batches():
  x, y = batches(data.make_dataset(tiny(), 8), 1)[0]
  check_batch(x, y, 8, 32, 10)
  # One pass without repeat: every example once, the last partial batch kept.
  seen = batches(data.make_dataset(tiny(), 500, repeat=False, shuffle=False))
  assert [b[1].shape[0] for b in seen] == [500, 500, 500, 297]
  np.testing.assert_array_equal(np.concatenate([b[1] for b in seen]),
                                data.load_digits_images(32)[1])


def test_determinism_and_skip_batches():
  cfg = tiny()
  first = batches(data.make_dataset(cfg, 8), 3)
  again = batches(data.make_dataset(cfg, 8), 3)
  other = batches(data.make_dataset(cfg, 8, seed=1), 3)
  for (x, y), (x2, y2) in zip(first, again):
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
  assert not all((y == y2).all() for (_, y), (_, y2) in zip(first, other))
  # 1797 / 8 = 224.6 batches per epoch: skipping 230 crosses an epoch boundary.
  k = 230
  resumed = batches(data.make_dataset(cfg, 8, skip_batches=k), 2)
  straight = batches(data.make_dataset(cfg, 8).skip(k), 2)
  for (x, y), (x2, y2) in zip(resumed, straight):
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)


# --------------------------------------------------------------------- TFRecord

def test_tfrecord_round_trip(records):
  pattern, images, labels = records
  cfg = tiny(dataset="tfrecord", tfrecord_pattern=pattern)
  got = batches(data.make_dataset(cfg, 8, shuffle=False, repeat=False))
  assert [b[0].shape[0] for b in got] == [8, 8, 4]
  x = np.concatenate([b[0] for b in got])
  y = np.concatenate([b[1] for b in got])
  order = np.argsort(tag_of(x))
  np.testing.assert_array_equal(tag_of(x)[order], np.arange(20))
  np.testing.assert_allclose(x[order], images / 127.5 - 1.0, rtol=0, atol=1e-6)
  np.testing.assert_array_equal(x[order], images.astype(np.float32) * (2 / 255) - 1)
  np.testing.assert_array_equal(y[order], labels)
  # Shuffled and repeated: full batches, the same 20 examples in each epoch.
  x, y = batches(data.make_dataset(cfg, 20), 1)[0]
  check_batch(x, y, 20, 32, 10)
  assert sorted(tag_of(x)) == list(range(20))


def test_sharding_with_input_context(records):
  pattern, _, _ = records
  cfg = tiny(dataset="tfrecord", tfrecord_pattern=pattern)
  tags = []
  for i in range(2):
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                     num_replicas_in_sync=2)
    got = batches(data.make_dataset(cfg, 4, repeat=False, input_context=ctx))
    tags.append(set(np.concatenate([tag_of(b[0]) for b in got]).tolist()))
  assert len(tags[0]) == len(tags[1]) == 10
  assert not tags[0] & tags[1]
  assert tags[0] | tags[1] == set(range(20))


def test_tfrecord_bad_inputs(tmp_path):
  with pytest.raises(DataError, match="nothing_here"):
    data.make_dataset(tiny(dataset="tfrecord",
                           tfrecord_pattern=str(tmp_path / "nothing_here*")), 4)
  small = tagged_images(3, 16)
  data.write_official_tfrecord(str(tmp_path / "small.tfrecords"), small, [0, 1, 2])
  cfg = tiny(dataset="tfrecord", tfrecord_pattern=str(tmp_path / "small.*"))
  with pytest.raises(DataError, match=r"768 bytes, expected 3072"):
    data.make_dataset(cfg, 2)
  data.write_official_tfrecord(str(tmp_path / "label.tfrecords"),
                               tagged_images(2, 32), [10, 0])
  with pytest.raises(DataError, match=r"label 10 outside \[0, num_classes=10\)"):
    data.make_dataset(tiny(dataset="tfrecord",
                           tfrecord_pattern=str(tmp_path / "label.*")), 2)
  with pytest.raises(DataError, match="uint8"):
    data.write_official_tfrecord(str(tmp_path / "x"), small.astype(np.float32), [0] * 3)


def test_tfrecord_bad_later_records_name_the_file(tmp_path):
  # The first record passes the up-front check; later ones are checked per
  # record, and runtime_error_line turns the failure into one line naming the file.
  path = str(tmp_path / "mixed.tfrecords")
  data.write_official_tfrecord(path, tagged_images(2, 32), [0, 12])
  cfg = tiny(dataset="tfrecord", tfrecord_pattern=path)
  with pytest.raises(tf.errors.InvalidArgumentError) as info:
    batches(data.make_dataset(cfg, 2, shuffle=False), 1)
  line = data.runtime_error_line(info.value, cfg)
  assert line == (f"{path}: a record has label 12 outside [0, num_classes=10); "
                  "set Config.num_classes to cover the labels or fix the file.")
  with tf.io.TFRecordWriter(path) as w:
    for image in (tagged_images(1, 32)[0], tagged_images(1, 16)[0]):
      w.write(tf.train.Example(features=tf.train.Features(feature={
          "image_raw": tf.train.Feature(
              bytes_list=tf.train.BytesList(value=[image.tobytes()])),
          "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[1])),
      })).SerializeToString())
  with pytest.raises(tf.errors.InvalidArgumentError) as info:
    batches(data.make_dataset(cfg, 2, shuffle=False), 1)
  line = data.runtime_error_line(info.value, cfg)
  assert line.startswith(f"{path}: a record has an image_raw of 768 bytes, expected "
                         "3072 (32x32x3 uint8 for Config.image_size=32)")
  assert "\n" not in line
  assert data.runtime_error_line(tf.errors.InvalidArgumentError(None, None, "x"),
                                 cfg) is None  # not a data error


# ------------------------------------------------------------------------- TFDS
# (a real prepared TFDS dataset is read in tests/test_tfds_prepare.py)

def test_square_and_resize_centre_crops():
  # 4 x 8 image whose columns are 0..7: the centre crop keeps columns 2..5.
  image = tf.constant(np.tile(np.arange(8, dtype=np.uint8), (4, 1))[..., None]
                      .repeat(3, -1))
  out = tfds_source._square_and_resize(image, 4).numpy()
  np.testing.assert_array_equal(out[0, :, 0], [2, 3, 4, 5])
  # Shrinking 2x: antialiased bilinear = a triangle filter over 4 input columns,
  # renormalised at the border: (2*.75+3*.75+4*.25)/1.75 = 2.71 -> 3; 4.29 -> 4.
  out = tfds_source._square_and_resize(image, 2).numpy()
  np.testing.assert_array_equal(out[:, :, 0], [[3, 4], [3, 4]])


def test_tfds_bad_inputs(tmp_path):
  with pytest.raises(DataError, match="no_such_dataset_xyz"):
    data.make_dataset(tiny(dataset="no_such_dataset_xyz"), 2)
  empty = str(tmp_path / "tfds_empty")
  with pytest.raises(DataError, match=r"'cifar10'.*not prepared.*tfds_empty.*"
                                      r"tfds build cifar10"):
    data.make_dataset(tiny(dataset="cifar10", data_dir=empty), 2)
  with pytest.raises(DataError, match=r"no \['label'\] feature"):
    data.make_dataset(tiny(dataset="lsun", data_dir=empty), 2)
  with pytest.raises(DataError, match=r"no \['label'\] feature"):
    data.prepare_tfds_dataset(tiny(dataset="lsun", data_dir=empty))  # no download
  with pytest.raises(DataError, match="num_classes=10"):
    data.make_dataset(tiny(num_classes=5), 2)  # digits need 10 classes


def test_prepare_tfds_dataset_downloads_only_when_missing(monkeypatch):
  """Launchers call prepare on every start: a prepared copy is left alone."""
  calls = []

  class FakeBuilder:
    def __init__(self, prepared):
      self.prepared = prepared

    def is_prepared(self):
      return self.prepared

    def download_and_prepare(self):
      calls.append("download")

  cfg = tiny(dataset="cifar10")
  assert data.is_tfds_dataset(cfg) and not data.is_tfds_dataset(tiny())
  monkeypatch.setattr(tfds_source, "_tfds_builder", lambda c: FakeBuilder(True))
  assert data.prepare_tfds_dataset(cfg) is False and calls == []
  monkeypatch.setattr(tfds_source, "_tfds_builder", lambda c: FakeBuilder(False))
  assert data.prepare_tfds_dataset(cfg) is True and calls == ["download"]
  # The launchers' one call: digits/tfrecord never reach a builder.
  assert data.prepare_if_tfds(tiny()) is False and calls == ["download"]
  assert data.prepare_if_tfds(cfg) is True and calls == ["download"] * 2


# ------------------------------------------------------------------ distribution

def test_distributed_dataset_mirrored():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  cfg = tiny(batch_size=8)
  reference = batches(data.make_dataset(cfg, 8), 3)
  steps = []
  for _, (x, y) in zip(range(3), data.distributed_dataset(strategy, cfg)):
    xs = [t.numpy() for t in strategy.experimental_local_results(x)]
    ys = [t.numpy() for t in strategy.experimental_local_results(y)]
    assert [v.shape for v in xs] == [(4, 32, 32, 3)] * 2
    steps.append((np.concatenate(xs), np.concatenate(ys)))
  # One worker: the global batch of step t is make_dataset's batch t.
  for (x, y), (x2, y2) in zip(steps, reference):
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
  # skip_batches counts global steps.
  x, y = next(iter(data.distributed_dataset(strategy, cfg, skip_batches=2)))
  np.testing.assert_array_equal(
      np.concatenate([t.numpy() for t in strategy.experimental_local_results(y)]),
      reference[2][1])
  default = tf.distribute.get_strategy()
  x, y = next(iter(data.distributed_dataset(default, cfg)))
  np.testing.assert_array_equal(y.numpy(), reference[0][1])
  with pytest.raises(DataError, match="batch_size=7 \(global\) is not divisible by the 2 replicas.*--set=batch_size=6 or 8"):
    data.distributed_dataset(strategy, tiny(batch_size=7))


def test_make_dataset_argument_errors():
  with pytest.raises(DataError, match="batch_size"):
    data.make_dataset(tiny(), 0)
  with pytest.raises(DataError, match="skip_batches"):
    data.make_dataset(tiny(), 2, skip_batches=-1)
