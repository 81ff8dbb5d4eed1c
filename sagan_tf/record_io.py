"""TFRecord files without TensorFlow's reader: counting records by their headers,
and finding the file behind a reader error.

A TFRecord file is a sequence of records, each ``uint64 length`` (little endian),
``uint32 masked crc32c(length)``, ``length`` bytes of data, ``uint32 masked
crc32c(data)``. ``count_records`` reads only the 12-byte headers and seeks over
the data: for ImageNet at 128x128 (49 KB records) that is about 1/4000 of the
bytes, so counting every file of a large set takes seconds on a local disk.
"""
from __future__ import annotations

import struct
from typing import Optional, Sequence

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
