"""The order in which one input pipeline reads its examples, and where step k is.

The stream of a pipeline is epoch 0, epoch 1, ... and each epoch is a function of
(seed, epoch) alone:

  1. the pipeline's units (files; or one in-memory array) are permuted by a
     stateless shuffle seeded by (seed, epoch);
  2. consecutive groups of ``cycle_length`` units of that permutation form blocks;
     a block's units are interleaved one record at a time;
  3. the block's records are cut into windows of ``shuffle_buffer`` records and
     each window is permuted by a stateless shuffle seeded by (seed, epoch,
     block, window).

All randomness is stateless (no ``Dataset.shuffle`` state, no dependence on the
global seed), so the record at position r of the stream can be found by
arithmetic: epoch = r // N (N records per epoch, from the units' record counts),
then the block (from the epoch's permutation and the counts), then the window.
Resuming reads at most one block (``cycle_length`` files), of which the windows
before the position are read but not shuffled or decoded: the cost does not grow
with the step. An uninterrupted run and a resumed one see the same records in the
same order.

Deliberate deviation from the official input_fn (one interleave and one shuffle
buffer over the whole stream, unseeded; resuming restarted from a fresh shuffle):
records are mixed within a block (the files the interleave has open at once;
with equal-sized files the official interleave also moves on a whole cycle of
files at a time) by a windowed shuffle instead of a sliding buffer.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence, Tuple

import numpy as np
import tensorflow as tf

_KEY_MAX = 2**62
# No Python control flow in these tf.data functions: nothing for AutoGraph to do.
_graph_fn = tf.autograph.experimental.do_not_convert


@dataclasses.dataclass
class Units:
  """What a pipeline reads: ``n`` units, each a dataset of raw records.

  Attributes:
    n: number of units.
    read: unit index (int64 scalar tensor) -> ``tf.data.Dataset`` of its raw
      records (already restricted to this pipeline's shard).
    counts: () -> int64 [n] records per unit (after sharding); called only to
      locate a resume position.
  """
  n: int
  read: Callable[[tf.Tensor], tf.data.Dataset]
  counts: Callable[[], np.ndarray]


def _fold(key, value) -> tf.Tensor:
  """A new int64 key from (key, value), stateless."""
  seed = tf.stack([tf.cast(key, tf.int64), tf.cast(value, tf.int64)])
  return tf.random.stateless_uniform([], seed=seed, minval=0, maxval=_KEY_MAX,
                                     dtype=tf.int64)


def _permutation(n: int, key) -> tf.Tensor:
  """int32 [n], a permutation of range(n) drawn from ``key`` (stateless)."""
  seed = tf.stack([tf.cast(key, tf.int64), tf.constant(0, tf.int64)])
  return tf.argsort(tf.random.stateless_uniform([n], seed=seed), stable=True)


@dataclasses.dataclass(frozen=True)
class Order:
  """How a pipeline orders its units' records (see the module docstring).

  Attributes:
    seed: the run's data seed.
    cycle_length: units per block (interleaved together).
    window: records per shuffle window (``Config.shuffle_buffer``).
    shuffle: False keeps the units in their given order (blocks of
      ``cycle_length`` units interleaved, no windowed shuffle) in every epoch.
  """
  seed: int
  cycle_length: int
  window: int
  shuffle: bool = True

  def _cycle(self, units: Units) -> int:
    return max(1, min(self.cycle_length, units.n))

  def epoch_permutation(self, units: Units, epoch) -> tf.Tensor:
    if not self.shuffle:
      return tf.range(units.n, dtype=tf.int32)
    return _permutation(units.n, _fold(self.seed, epoch))

  def _block(self, units: Units, epoch, perm, block, first_window=0):
    """Records of one block, from window ``first_window`` on."""
    c = self._cycle(units)
    idx = tf.cast(perm[block * c:(block + 1) * c], tf.int64)
    ds = tf.data.Dataset.from_tensor_slices(idx)
    if c == 1:
      ds = ds.flat_map(_graph_fn(units.read))
    else:
      ds = ds.interleave(_graph_fn(units.read), cycle_length=c, block_length=1,
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if not self.shuffle:
      return ds.skip(tf.cast(first_window, tf.int64) * self.window)
    key = _fold(_fold(self.seed, epoch), block)
    first_window = tf.cast(first_window, tf.int64)
    ds = ds.skip(first_window * self.window)  # read, not shuffled or decoded
    # The last window of a block may be short. The prefetch reads the next window
    # while this one is consumed (memory: two windows of raw records).
    ds = ds.batch(self.window).prefetch(1)

    def shuffle_window(w, records):
      n = tf.shape(tf.nest.flatten(records)[0])[0]
      perm_w = _permutation_dynamic(n, _fold(key, first_window + w))
      return tf.nest.map_structure(lambda t: tf.gather(t, perm_w), records)
    return ds.enumerate().map(_graph_fn(shuffle_window)).unbatch()

  def epoch(self, units: Units, epoch, first_block=0, first_window=0
            ) -> tf.data.Dataset:
    """Records of one epoch from (first_block, first_window) on."""
    perm = self.epoch_permutation(units, epoch)
    blocks = -(-units.n // self._cycle(units))
    first = self._block(units, epoch, perm, first_block, first_window)
    if first_block + 1 >= blocks:
      return first
    rest = tf.data.Dataset.range(first_block + 1, blocks).flat_map(
        _graph_fn(lambda b: self._block(units, epoch, perm, b)))
    return first.concatenate(rest)

  def stream(self, units: Units, start: int = 0, repeat: bool = True
             ) -> tf.data.Dataset:
    """The pipeline's records from position ``start`` (0: the beginning).

    With ``repeat`` the epochs follow each other forever, otherwise epoch 0 only.
    """
    if start and not repeat:
      raise ValueError("start needs repeat=True.")
    epoch, block, window, skip = (0, 0, 0, 0) if not start else self.locate(
        units, start)
    ds = self.epoch(units, epoch, block, window).skip(skip)
    if repeat:
      ds = ds.concatenate(tf.data.Dataset.range(epoch + 1, 2**62).flat_map(
          _graph_fn(lambda e: self.epoch(units, e))))
    return ds

  def locate(self, units: Units, position: int) -> Tuple[int, int, int, int]:
    """(epoch, block, window, records to skip after that window's start) of
    record ``position`` of the repeated stream."""
    counts = np.asarray(units.counts(), np.int64)
    total = int(counts.sum())
    if total <= 0:
      raise ValueError("The pipeline's units hold no records.")
    epoch, rest = divmod(position, total)
    perm = self.epoch_permutation(units, epoch).numpy()
    c = self._cycle(units)
    for block in range(-(-units.n // c)):
      size = int(counts[perm[block * c:(block + 1) * c]].sum())
      if rest < size:
        window, skip = divmod(rest, self.window)
        return epoch, block, window, skip
      rest -= size
    raise AssertionError("unreachable: position within the epoch")


def _permutation_dynamic(n: tf.Tensor, key) -> tf.Tensor:
  seed = tf.stack([tf.cast(key, tf.int64), tf.constant(0, tf.int64)])
  return tf.argsort(tf.random.stateless_uniform(tf.reshape(n, [1]), seed=seed),
                    stable=True)


def shard_counts(counts: Sequence[int], num_shards: int, index: int) -> np.ndarray:
  """Records per unit left by ``Dataset.shard(num_shards, index)`` of each unit."""
  counts = np.asarray(counts, np.int64)
  return np.maximum(0, (counts - index + num_shards - 1) // num_shards)


def cycle_length_of(config) -> int:
  """Units interleaved per block: ``Config.interleave_cycle_length``."""
  return int(config.interleave_cycle_length)
