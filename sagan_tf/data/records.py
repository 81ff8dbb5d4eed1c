"""TFRecord files without TensorFlow's reader: counting records by their headers,
and finding the file behind a reader error.

A TFRecord file is a sequence of records, each ``uint64 length`` (little endian),
``uint32 masked crc32c(length)``, ``length`` bytes of data, ``uint32 masked
crc32c(data)``. ``count_records`` reads only the 12-byte headers and seeks over
the data: for ImageNet at 128x128 (49 KB records) that is about 1/4000 of the
bytes, so counting every file of a large set takes seconds on a local disk.
``count_files`` counts a set of files in parallel and keeps the counts in a cache
folder (``$SAGAN_TF_CACHE_DIR`` or ``~/.cache/sagan_tf``), keyed by the files'
paths, sizes and modification times, so a second resume on the same data (e.g.
on ``gs://``, where every header read is a ranged request) reads no headers.
"""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import struct
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

_HEADER = 12  # uint64 length + uint32 crc
_FOOTER = 4  # uint32 crc of the data


class RecordFileError(ValueError):
  """A file that is not a complete TFRecord file; the message names it."""


def _open(path: str):
  if "://" in path:
    return tf.io.gfile.GFile(path, "rb")
  return open(path, "rb", buffering=1 << 16)  # pylint: disable=consider-using-with


def count_records(path: str) -> int:
  """Number of records in a TFRecord file, from its record headers.

  Raises:
    RecordFileError: the file ends inside a record (truncated) or a header
      announces more bytes than the file holds (not a TFRecord file, or
      corrupted); the message names the file and the byte offset.
  """
  size = tf.io.gfile.stat(path).length
  pos, n = 0, 0
  with _open(path) as f:
    while pos < size:
      header = f.read(_HEADER)
      if len(header) < _HEADER:
        raise RecordFileError(
            f"{path}: truncated TFRecord file (it ends inside the header of record "
            f"{n} at byte {pos}); copy or write the file again.")
      (length,) = struct.unpack("<Q", header[:8])
      end = pos + _HEADER + length + _FOOTER
      if end > size:
        what = ("not a TFRecord file" if n == 0 else
                "truncated or corrupted TFRecord file")
        raise RecordFileError(
            f"{path}: {what} (record {n} at byte {pos} announces {length} bytes but "
            f"the file has {size - pos - _HEADER - _FOOTER} left); copy or write "
            "the file again, or leave it out of the pattern.")
      f.seek(end)
      pos, n = end, n + 1
  return n


def cache_dir() -> str:
  return os.environ.get("SAGAN_TF_CACHE_DIR",
                        os.path.join(os.path.expanduser("~"), ".cache", "sagan_tf"))


def count_files(paths: Sequence[str], threads: int = 16) -> np.ndarray:
  """int64 [len(paths)], records per file (``count_records``), cached on disk.

  Raises:
    RecordFileError: as ``count_records``.
  """
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    stats = list(pool.map(tf.io.gfile.stat, paths))
  key = hashlib.sha1("\n".join(
      f"{p}|{s.length}|{s.mtime_nsec}" for p, s in zip(paths, stats)).encode())
  cached = os.path.join(cache_dir(), "tfrecord_counts", key.hexdigest() + ".json")
  if tf.io.gfile.exists(cached):
    with tf.io.gfile.GFile(cached) as f:
      counts = json.load(f)
    if len(counts) == len(paths):
      return np.asarray(counts, np.int64)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    counts = list(pool.map(count_records, paths))
  try:  # the cache is an optimisation: an unwritable folder only costs time
    tf.io.gfile.makedirs(os.path.dirname(cached))
    with tf.io.gfile.GFile(cached + ".tmp", "w") as f:
      json.dump([int(c) for c in counts], f)
    tf.io.gfile.rename(cached + ".tmp", cached, overwrite=True)
  except (OSError, tf.errors.OpError):
    pass
  return np.asarray(counts, np.int64)


def find_unreadable(paths: Sequence[str]) -> Optional[str]:
  """The first of ``paths`` that TensorFlow's reader fails on, with the reader's
  message: '<path>: <error>'; None if all read. Reads every record (slow on big
  sets: for diagnosing an error that already happened)."""
  for path in paths:
    try:
      count_records(path)
      tf.data.TFRecordDataset(path).reduce(tf.constant(0, tf.int64),
                                           lambda n, _: n + 1).numpy()
    except RecordFileError as e:
      return str(e)
    except tf.errors.OpError as e:
      first = e.message.splitlines()[0] if e.message else type(e).__name__
      first = first.split("}} ")[-1].split(" [Op:")[0]
      return (f"{path}: unreadable TFRecord file ({first}); copy or write the "
              "file again, or leave it out of the pattern.")
  return None
