"""Input pipelines: batches of (images [B, S, S, 3] float32 in [-1, 1], labels [B]
int32) from scikit-learn digits, official-format TFRecords or TensorFlow Datasets.

``Config.dataset`` picks the source (``sagan_tf.data.sources``,
``sagan_tf.data.tfds_source``):
  * ``"digits"``: scikit-learn's bundled 1797 8x8 digits, upscaled (offline);
  * ``"glyphs"``: printed digits in random poses, built offline
    (``sagan_tf.data.glyphs``; splits "train" and "test");
  * ``"tfrecord"``: the official SAGAN TFRecord format from
    ``Config.tfrecord_pattern``;
  * any other name: a prepared TFDS dataset with 'image' and 'label' features in
    ``Config.data_dir`` (never downloaded here: see ``prepare_tfds_dataset``).

Order of operations: units (files) -> this pipeline's shard -> the seeded
epoch/block/window order of ``sagan_tf.data.order`` -> decode -> batch ->
prefetch. The order is a function of (seed, epoch), so ``skip_batches=k`` starts
exactly where an uninterrupted run is after k batches, and finds that position
by arithmetic: a resume reads at most one block of records
(``Config.interleave_cycle_length`` files), whatever k (``scripts/resume_cost.py`` measures it).

Sharding (``input_context`` with several input pipelines, e.g. one per worker):
with at least as many files as pipelines, pipeline i reads files i, i + n, ...
(of the sorted list); otherwise (digits, few files) each pipeline reads every
n-th record of each file. A pipeline that would read no record (its files all
empty, or fewer records than pipelines) is refused up front, on every pipeline.

Deliberate deviations from the official input_fn (dataset.py):
  * the official pipeline shuffles sloppily (non-deterministic interleave, unseeded
    shuffle buffer) and a restart began from a fresh shuffle; this one is
    deterministic for a given seed and resumes where it stopped, with a windowed
    shuffle within blocks of files (``sagan_tf.data.order``);
  * noise and fake labels are not drawn here (the train step draws them);
  * labels and record sizes are checked (see data_sources).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import tensorflow as tf

from sagan_tf.data import glyphs
from sagan_tf.data import order as data_order
from sagan_tf.data import sources as data_sources
from sagan_tf import strategy as strategy_lib
from sagan_tf.data import tfds_source
from sagan_tf.data.sources import (  # noqa: F401  (public re-exports)
    DataError, load_digits_images, write_official_tfrecord)
from sagan_tf.data.tfds_source import (  # noqa: F401  (public re-exports)
    is_tfds_dataset, prepare_if_tfds, prepare_tfds_dataset)

__all__ = ["DataError", "make_dataset", "distributed_dataset", "load_digits_images",
           "write_official_tfrecord", "prepare_tfds_dataset", "is_tfds_dataset",
           "prepare_if_tfds", "runtime_error_line", "source_files"]


def _source(config, split) -> data_sources.Source:
  if config.dataset == "digits":
    return data_sources.digits_source(config)
  if config.dataset == "glyphs":
    return glyphs.glyphs_source(config, split)
  if config.dataset == "tfrecord":
    return data_sources.tfrecord_source(config)
  return tfds_source.tfds_source(config, split)


def _pipeline_units(source: data_sources.Source,
                    input_context: Optional[tf.distribute.InputContext]
                    ) -> data_order.Units:
  """The units this input pipeline reads (its shard of ``source``)."""
  n = input_context.num_input_pipelines if input_context is not None else 1
  if n <= 1:
    return data_order.Units(source.n, source.read, source.counts)
  i = input_context.input_pipeline_id
  _check_every_shard_has_records(source, n)
  if source.n >= n:  # whole files per pipeline
    mine = np.arange(i, source.n, n)
    mine_t = tf.constant(mine, tf.int64)
    return data_order.Units(len(mine),
                            lambda u: source.read(tf.gather(mine_t, u)),
                            lambda: np.asarray(source.counts())[mine])
  return data_order.Units(
      source.n, lambda u: source.read(u).shard(n, i),
      lambda: data_order.shard_counts(source.counts(), n, i))


def _check_every_shard_has_records(source: data_sources.Source, n: int) -> None:
  """Raises DataError if any of the ``n`` input pipelines would read no record:
  its stream would then repeat empty epochs forever, stuck before step 0.

  Every pipeline checks every shard (not only its own), so all workers stop at
  once with the same line. With whole files per pipeline, a shard is empty when
  all its files have zero bytes (a TFRecord file without records is empty), so
  no record is read; with records split across pipelines, from the record counts
  (few files then).
  """
  if source.n >= n and source.files:
    sizes = np.array([tf.io.gfile.stat(f).length for f in source.files], np.int64)
    empty = [j for j in range(n) if not sizes[j::n].any()]
    if empty:
      j = empty[0]
      files = list(source.files)[j::n]
      names = ", ".join(files[:3]) + (f" and {len(files) - 3} more"
                                      if len(files) > 3 else "")
      raise DataError(
          f"Input pipeline {j} of {n} (one per worker) would read no records: "
          f"its files ({names}) are all empty. Remove the empty files, or spread "
          f"the data over files so that every {n}th file from file {j} on holds "
          f"records, or run fewer workers.")
    return
  counts = np.asarray(source.counts(), np.int64)
  empty = [j for j in range(n) if not data_order.shard_counts(counts, n, j).any()]
  if empty:
    raise DataError(
        f"Input pipeline {empty[0]} of {n} (one per worker) would read no records: "
        f"the data holds {int(counts.sum())} records in {source.n} unit(s), "
        f"fewer than one per pipeline. Give more data or run fewer workers.")


def source_files(config, split: Optional[str] = None):
  """The files ``config.dataset`` reads (empty for in-memory data): for naming a
  file in ``runtime_error_line``."""
  if config.dataset in data_sources.IN_MEMORY_DATASETS:
    return []
  return list(_source(config, config.split if split is None else split).files)


def runtime_error_line(error: Exception, config=None) -> Optional[str]:
  """One line naming the file and the fix for an error raised by a pipeline of
  ``make_dataset`` while training (a bad record, a corrupted file), or None if
  the error did not come from the data. See ``data_sources.error_line``."""
  files = ()
  if config is not None and isinstance(error, tf.errors.DataLossError):
    try:
      files = source_files(config)
    except DataError as e:
      return str(e)
  return data_sources.error_line(error, files)


def make_dataset(config, batch_size: int, *, split: Optional[str] = None,
                 shuffle: bool = True, repeat: bool = True,
                 seed: Optional[int] = None,
                 input_context: Optional[tf.distribute.InputContext] = None,
                 skip_batches: int = 0) -> tf.data.Dataset:
  """Batched, prefetched examples of ``config.dataset``.

  Args:
    config: a ``sagan_tf.config.Config`` (dataset, image_size, num_classes,
      data_dir, tfrecord_pattern, split, shuffle_buffer, seed).
    batch_size: examples per batch (per replica when used by
      ``distributed_dataset``).
    split: TFDS or glyphs split; default ``config.split``. Ignored by 'digits'
      (all 1797 examples) and 'tfrecord' (the glob decides).
    shuffle: shuffle files and examples (windows of ``config.shuffle_buffer``
      records); False reads the sorted files ``config.interleave_cycle_length``
      at a time, interleaved, in the same order every epoch.
    repeat: repeat forever and drop the last partial batch; if False, one pass
      with the last partial batch kept (for evaluation).
    seed: shuffle seed; default ``config.seed``. Same seed, same order.
    input_context: a ``tf.distribute.InputContext``; the examples are split into
      ``num_input_pipelines`` disjoint shards and this pipeline reads shard
      ``input_pipeline_id``.
    skip_batches: start after this many batches of this pipeline (needs
      repeat). The position is computed from the files' record counts; at most
      one block of records (``cycle_length`` files) is read to get there.
  Returns:
    ``tf.data.Dataset`` of (images float32 [batch_size, S, S, 3] in [-1, 1],
    labels int32 [batch_size]), S = ``config.image_size``.
  Raises:
    DataError: bad arguments, a missing or unprepared dataset, unreadable files
      or a first record of the wrong format (found up front); bad records found
      later raise ``tf.errors.InvalidArgumentError`` while iterating, which
      ``runtime_error_line`` turns into a one-line message naming the file.
  """
  if batch_size <= 0:
    raise DataError(f"batch_size must be positive; got {batch_size}.")
  if skip_batches < 0:
    raise DataError(f"skip_batches must be >= 0; got {skip_batches}.")
  if skip_batches and not repeat:
    raise DataError("skip_batches needs repeat=True.")
  seed = config.seed if seed is None else seed
  split = config.split if split is None else split
  source = _source(config, split)
  units = _pipeline_units(source, input_context)
  order = data_order.Order(seed=seed,
                           cycle_length=data_order.cycle_length_of(config),
                           window=config.shuffle_buffer, shuffle=shuffle)
  # Batches are consecutive runs of batch_size records, so starting at record
  # k * batch_size equals skipping k batches, without decoding them.
  ds = order.stream(units, start=skip_batches * batch_size, repeat=repeat)
  ds = ds.map(tf.autograph.experimental.do_not_convert(source.decode),
              num_parallel_calls=tf.data.AUTOTUNE,
              deterministic=True)
  ds = ds.batch(batch_size, drop_remainder=repeat)
  return ds.prefetch(tf.data.AUTOTUNE)


def distributed_dataset(strategy: tf.distribute.Strategy, config, *,
                        skip_batches: int = 0, **kw):
  """``make_dataset`` for every input pipeline of ``strategy``.

  Each replica gets ``config.batch_size // strategy.num_replicas_in_sync``
  examples per step.

  Args:
    strategy: any ``tf.distribute.Strategy``.
    config: the run's Config (``batch_size`` is global).
    skip_batches: global steps already taken (from a checkpoint); each pipeline
      skips the per-replica batches those steps consumed.
    **kw: passed to ``make_dataset`` (split, shuffle, repeat, seed).
  Returns:
    A ``tf.distribute.DistributedDataset``.
  Raises:
    DataError: if ``config.batch_size`` is not divisible by the number of replicas.
  """
  try:
    strategy_lib.replica_batch_size(strategy, config.batch_size)
  except strategy_lib.BatchSizeError as e:
    raise DataError(str(e)) from None
  for key in ("batch_size", "input_context"):
    if key in kw:
      raise DataError(f"distributed_dataset sets {key} itself; do not pass it.")

  def dataset_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
    per_replica = ctx.get_per_replica_batch_size(config.batch_size)
    # A pipeline feeds num_replicas_in_sync / num_input_pipelines replicas, one
    # batch each per step.
    per_step = max(1, ctx.num_replicas_in_sync // ctx.num_input_pipelines)
    return make_dataset(config, per_replica, input_context=ctx,
                        skip_batches=skip_batches * per_step, **kw)
  return strategy.distribute_datasets_from_function(dataset_fn)
