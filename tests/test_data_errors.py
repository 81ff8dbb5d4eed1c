"""Bad data inputs give one line naming the file or flag and the fix: in the
library (DataError, runtime_error_line) and from launch.train (no traceback)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf.data import pipeline as data
from sagan_tf import strategy as strategy_lib
from sagan_tf.data.pipeline import DataError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**changes):
  return config_lib.from_preset("tiny").replace(**changes)


def write(path, n=3, labels=None):
  images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), np.uint8)
  data.write_official_tfrecord(str(path), images,
                               list(range(n)) if labels is None else labels)
  return str(path)


def one_line(message):
  assert "\n" not in message and "Traceback" not in message
  return message


def test_empty_glob_names_the_set_flag(tmp_path):
  pattern = str(tmp_path / "none-*.tfrecords")
  with pytest.raises(DataError) as info:
    data.make_dataset(tiny(dataset="tfrecord", tfrecord_pattern=pattern), 2)
  msg = one_line(str(info.value))
  assert pattern in msg and "--set=tfrecord_pattern=" in msg
  assert " --tfrecord_pattern" not in msg  # there is no such flag


def test_truncated_and_foreign_files_are_named(tmp_path, monkeypatch):
  monkeypatch.setenv("SAGAN_TF_CACHE_DIR", str(tmp_path / "cache"))
  good = write(tmp_path / "a.tfrecords")
  blob = open(good, "rb").read()
  cut = tmp_path / "b.tfrecords"
  cut.write_bytes(blob[:-100])  # ends inside the last record
  cfg = tiny(dataset="tfrecord", tfrecord_pattern=str(tmp_path / "*.tfrecords"))
  want = f"{cut}: truncated or corrupted TFRecord file (record 2 "
  # A resume counts the records of every file (headers only): found up front.
  with pytest.raises(DataError) as info:
    data.make_dataset(cfg, 2, skip_batches=1)
  assert one_line(str(info.value)).startswith(want)
  # A fresh start reads no headers up front: the reader fails while training,
  # and runtime_error_line finds the file.
  with pytest.raises(tf.errors.DataLossError) as info:
    for _ in data.make_dataset(cfg, 2, shuffle=False).take(10):
      pass
  assert one_line(data.runtime_error_line(info.value, cfg)).startswith(want)
  cut.write_bytes(b"P5 this is an image, not a TFRecord file" * 20)
  with pytest.raises(DataError) as info:
    data.make_dataset(cfg, 2, skip_batches=1)
  assert one_line(str(info.value)).startswith(f"{cut}: not a TFRecord file")
  cut.write_bytes(blob[:5])  # ends inside the first header
  with pytest.raises(DataError, match=f"{cut}: truncated TFRecord file"):
    data.make_dataset(cfg, 2, skip_batches=1)
  # A foreign first file is found up front on every start.
  cut.write_bytes(b"P5 this is an image, not a TFRecord file" * 20)
  with pytest.raises(DataError, match=f"{cut}: unreadable TFRecord file"):
    data.make_dataset(tiny(dataset="tfrecord", tfrecord_pattern=str(cut)), 2)


def test_corrupted_record_names_the_file(tmp_path):
  write(tmp_path / "a.tfrecords")
  bad = write(tmp_path / "b.tfrecords")
  blob = bytearray(open(bad, "rb").read())
  blob[len(blob) // 2] ^= 0xFF  # a flipped byte inside a record's data: CRC fails
  open(bad, "wb").write(bytes(blob))
  cfg = tiny(dataset="tfrecord", tfrecord_pattern=str(tmp_path / "*.tfrecords"))
  ds = data.make_dataset(cfg, 2, shuffle=False)  # headers are intact
  with pytest.raises(tf.errors.DataLossError) as info:
    for _ in ds:
      pass
  line = one_line(data.runtime_error_line(info.value, cfg))
  assert line.startswith(f"{bad}: unreadable TFRecord file (corrupted record at ")
  # The first file is checked up front.
  cfg_bad_first = tiny(dataset="tfrecord", tfrecord_pattern=bad)
  blob[20] ^= 0xFF  # the first record's data
  open(bad, "wb").write(bytes(blob))
  with pytest.raises(DataError, match=f"{bad}: unreadable TFRecord file"):
    data.make_dataset(cfg_bad_first, 2)


def test_batch_not_divisible_by_replicas():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  with pytest.raises(strategy_lib.BatchSizeError) as info:
    strategy_lib.replica_batch_size(strategy, 7)
  assert one_line(str(info.value)) == (
      "batch_size=7 (global) is not divisible by the 2 replicas of "
      "MirroredStrategy; pass --set=batch_size=6 or 8 (a multiple of 2) or change "
      "the number of replicas.")


def run_train(tmp_path, *flags):
  proc = subprocess.run(
      [sys.executable, "-m", "launch.train", "--preset=tiny",
       f"--workdir={tmp_path / 'w'}", *flags],
      cwd=REPO, capture_output=True, text=True, timeout=600,
      env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("E1")]
  assert len(errors) == 1, proc.stderr[-2000:]
  return errors[0]


def test_launcher_one_line_errors(tmp_path):
  """launch.train: replicas vs batch, a bad record met while training, a TFDS
  preparation that fails (ImageNet without its manual archives)."""
  line = run_train(tmp_path, "--strategy=mirrored", "--cpu_replicas=2",
                   "--set=batch_size=3")
  assert "--set=batch_size=2 or 4" in line
  bad = write(tmp_path / "bad.tfrecords", n=4, labels=[0, 1, 30, 2])
  line = run_train(tmp_path, "--dataset=tfrecord", f"--set=tfrecord_pattern={bad}",
                   "--set=shuffle_buffer=2")
  assert f"{bad}: a record has label 30 outside [0, num_classes=10)" in line
  line = run_train(tmp_path, "--dataset=imagenet2012", "--set=num_classes=1000",
                   f"--data_dir={tmp_path / 'tfds'}")
  assert "Could not download/prepare TFDS dataset 'imagenet2012'" in line
  assert "downloads/manual" in line


def _ctx(n, i):
  return tf.distribute.InputContext(num_input_pipelines=n, input_pipeline_id=i,
                                    num_replicas_in_sync=n)


def test_a_pipeline_shard_without_records_stops_every_pipeline(tmp_path):
  """More workers than non-empty files: the stream of a shard without records
  would repeat empty epochs forever (stuck at step 0). Every pipeline (every
  worker) refuses at once, naming the empty shard's files."""
  write(tmp_path / "a-0.tfrecords")
  empty = tmp_path / "a-1.tfrecords"
  empty.write_bytes(b"")
  cfg = tiny(dataset="tfrecord", tfrecord_pattern=str(tmp_path / "a-*.tfrecords"))
  data.make_dataset(cfg, 2)  # one pipeline: the empty file is just skipped
  for i in range(2):
    with pytest.raises(DataError) as info:
      data.make_dataset(cfg, 2, input_context=_ctx(2, i))
    msg = one_line(str(info.value))
    assert "Input pipeline 1 of 2" in msg and str(empty) in msg, msg
    assert "run fewer workers" in msg
  # Fewer files than pipelines, records split: 1 record for 2 pipelines.
  write(tmp_path / "b-0.tfrecords", n=1)
  cfg = cfg.replace(tfrecord_pattern=str(tmp_path / "b-*.tfrecords"))
  for i in range(2):
    with pytest.raises(DataError, match=r"Input pipeline 1 of 2 .* 1 records in 1 "):
      data.make_dataset(cfg, 1, input_context=_ctx(2, i))
  # Both shards non-empty: no error, and each reads its own file.
  write(tmp_path / "c-0.tfrecords")
  write(tmp_path / "c-1.tfrecords")
  cfg = cfg.replace(tfrecord_pattern=str(tmp_path / "c-*.tfrecords"))
  for i in range(2):
    x, _ = next(iter(data.make_dataset(cfg, 2, input_context=_ctx(2, i))))
    assert x.shape[0] == 2
