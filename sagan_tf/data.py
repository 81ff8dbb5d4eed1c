"""Input pipelines: batches of (images [B, S, S, 3] float32 in [-1, 1], labels [B]
int32) from scikit-learn digits, official-format TFRecords or TensorFlow Datasets.

``Config.dataset`` picks the source (see ``sagan_tf.data_sources``):
  * ``"digits"``: scikit-learn's bundled 1797 8x8 digits, upscaled (offline);
  * ``"tfrecord"``: the official SAGAN TFRecord format from
    ``Config.tfrecord_pattern``;
  * any other name: a prepared TFDS dataset with 'image' and 'label' features in
    ``Config.data_dir`` (never downloaded here: see ``prepare_tfds_dataset``).

Order of operations: raw examples -> shard (input_context) -> shuffle (seeded) ->
repeat -> skip -> decode -> batch -> prefetch. Shuffling and skipping act on raw
elements (encoded bytes), so the buffer is small and resuming is cheap; with a fixed
seed the stream is the same on every run, so ``skip_batches=k`` reproduces exactly
what an uninterrupted run sees after k batches.

Deliberate deviations from the official input_fn (dataset.py):
  * the official pipeline shuffles sloppily (non-deterministic interleave, unseeded
    shuffle); this one is deterministic for a given seed;
  * noise and fake labels are not drawn here (the train step draws them);
  * labels and record sizes are checked (see data_sources).
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from sagan_tf import data_sources
from sagan_tf.data_sources import (  # noqa: F401  (public re-exports)
    DataError, is_tfds_dataset, load_digits_images, prepare_tfds_dataset,
    write_official_tfrecord)

__all__ = ["DataError", "make_dataset", "distributed_dataset", "load_digits_images",
           "write_official_tfrecord", "prepare_tfds_dataset", "is_tfds_dataset"]


def _source(config, split, shuffle, seed):
  if config.dataset == "digits":
    return data_sources.digits_source(config)
  if config.dataset == "tfrecord":
    return data_sources.tfrecord_source(config, shuffle=shuffle, seed=seed)
  return data_sources.tfds_source(config, split, shuffle=shuffle, seed=seed)


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
    split: TFDS split; default ``config.split``. Ignored by 'digits' (all 1797
      examples) and 'tfrecord' (the glob decides).
    shuffle: shuffle files and examples (buffer ``config.shuffle_buffer``).
    repeat: repeat forever and drop the last partial batch; if False, one pass
      with the last partial batch kept (for evaluation).
    seed: shuffle seed; default ``config.seed``. Same seed, same order.
    input_context: a ``tf.distribute.InputContext``; the examples are split into
      ``num_input_pipelines`` disjoint shards and this pipeline reads shard
      ``input_pipeline_id``.
    skip_batches: start after this many batches of this pipeline. The skipped
      records are read and shuffled but not decoded: cheap for 'digits', but for
      files it costs reading skip_batches * batch_size records.
  Returns:
    ``tf.data.Dataset`` of (images float32 [batch_size, S, S, 3] in [-1, 1],
    labels int32 [batch_size]), S = ``config.image_size``.
  Raises:
    DataError: bad arguments, a missing or unprepared dataset, or records of the
      wrong format (found up front); bad records found later raise
      ``tf.errors.InvalidArgumentError`` with the same kind of message.
  """
  if batch_size <= 0:
    raise DataError(f"batch_size must be positive; got {batch_size}.")
  if skip_batches < 0:
    raise DataError(f"skip_batches must be >= 0; got {skip_batches}.")
  seed = config.seed if seed is None else seed
  split = config.split if split is None else split
  ds, decode = _source(config, split, shuffle, seed)
  if input_context is not None and input_context.num_input_pipelines > 1:
    ds = ds.shard(input_context.num_input_pipelines,
                  input_context.input_pipeline_id)
  if shuffle:
    ds = ds.shuffle(config.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  if skip_batches:
    # Batches are consecutive runs of batch_size examples, so skipping
    # k * batch_size raw examples equals skipping k batches, without decoding.
    ds = ds.skip(skip_batches * batch_size)
  ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
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
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:
    raise DataError(f"Config.batch_size={config.batch_size} is not divisible by the "
                    f"{replicas} replicas of {type(strategy).__name__}; choose a "
                    f"multiple of {replicas}.")
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
