"""sagan_tf.data.order through make_dataset: epochs, blocks, windows, exact and
cheap resume, sharding by file."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import config as config_lib
from sagan_tf.data import pipeline as data
from sagan_tf.data import order as data_order
from sagan_tf.data import sources as data_sources

SIZES = [1, 2, 3, 4, 5, 6, 7]  # records per file: 28 in all, unequal blocks
TOTAL = sum(SIZES)


def tag_of(images):
  return np.round((images[:, 0, 0, 0] + 1.0) * 127.5).astype(int)


@pytest.fixture
def pattern(tmp_path, monkeypatch):
  """Seven files holding records tagged 0..27 (pixel [0, 0, 0] = tag)."""
  monkeypatch.setenv("SAGAN_TF_CACHE_DIR", str(tmp_path / "cache"))
  rng = np.random.default_rng(0)
  start = 0
  for i, n in enumerate(SIZES):
    images = rng.integers(0, 256, (n, 32, 32, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(start, start + n)
    data.write_official_tfrecord(str(tmp_path / f"f{i}.tfrecords"), images,
                                 np.arange(n) % 10)
    start += n
  return str(tmp_path / "*.tfrecords")


def cfg_for(pattern):
  return config_lib.from_preset("tiny").replace(
      dataset="tfrecord", tfrecord_pattern=pattern, shuffle_buffer=4,
      interleave_cycle_length=3)  # blocks of 3 files: 6, 15 and 7 records


def tags(ds, n_batches):
  return np.concatenate([tag_of(x.numpy()) for x, _ in ds.take(n_batches)])


def test_epochs_are_reshuffled_permutations_and_resume_is_exact(pattern):
  cfg = cfg_for(pattern)
  straight = tags(data.make_dataset(cfg, 2), 60)  # 120 records: 4 epochs and more
  epochs = straight[:4 * TOTAL].reshape(4, TOTAL)
  for e in epochs:
    assert sorted(e) == list(range(TOTAL))
  assert len({tuple(e) for e in epochs}) == 4  # a new order every epoch
  assert list(epochs[0]) != sorted(epochs[0])
  # Resuming at k batches (inside a window, at block and epoch boundaries, in
  # a later epoch) continues exactly where the uninterrupted stream is.
  for k in (1, 5, 13, 14, 29, 43):
    resumed = tags(data.make_dataset(cfg, 2, skip_batches=k), 3)
    np.testing.assert_array_equal(resumed, straight[2 * k:2 * k + 6], err_msg=k)
  # Windows of 1 record leave the interleaved order as it is: windows of 4 mix it.
  interleaved = tags(data.make_dataset(cfg.replace(shuffle_buffer=1), 2), 14)
  assert sorted(interleaved) == list(range(TOTAL))
  assert list(interleaved) != list(epochs[0])
  other = tags(data.make_dataset(cfg, 2, seed=1), 14)
  assert list(other) != list(straight[:TOTAL])


def test_far_resume_is_found_by_arithmetic(pattern):
  cfg = cfg_for(pattern)
  source = data_sources.tfrecord_source(cfg)
  units = data_order.Units(source.n, source.read, source.counts)
  order = data_order.Order(seed=0, cycle_length=3, window=4)
  position = 10**12 + 3  # 3.6e10 epochs in
  epoch, offset = divmod(position, TOTAL)
  assert offset + 8 <= TOTAL

  def tag_list(ds):
    return [int(tag_of(np.stack([source.decode(*r)[0].numpy()]))[0])
            for r in ds.take(8)]
  want = tag_list(order.epoch(units, epoch).skip(offset))
  assert tag_list(order.stream(units, start=position)) == want
  # locate reads nothing but the counts: the block and window come from the
  # epoch's file permutation.
  e, block, window, skip = order.locate(units, position)
  assert e == epoch and window * 4 + skip <= TOTAL


def test_shards_are_whole_files_and_resume_per_shard(pattern):
  cfg = cfg_for(pattern)
  seen = []
  for i in range(2):
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i,
                                     num_replicas_in_sync=2)
    one_pass = data.make_dataset(cfg, 4, repeat=False, input_context=ctx)
    seen.append(set(np.concatenate([tag_of(x.numpy()) for x, _ in one_pass])))
    straight = tags(data.make_dataset(cfg, 1, input_context=ctx), 30)
    resumed = tags(data.make_dataset(cfg, 1, input_context=ctx, skip_batches=20), 5)
    np.testing.assert_array_equal(resumed, straight[20:25])
  starts = np.cumsum([0] + SIZES)
  files = [set(range(starts[f], starts[f + 1])) for f in range(len(SIZES))]
  assert seen[0] == set().union(*files[0::2])  # files 0, 2, 4, 6
  assert seen[1] == set().union(*files[1::2])


def test_unshuffled_interleaves_sorted_files_by_block(pattern):
  got = tags(data.make_dataset(cfg_for(pattern), 4, shuffle=False, repeat=False), 7)
  starts = np.cumsum([0] + SIZES)
  want = []
  for block in ([0, 1, 2], [3, 4, 5], [6]):  # one record of each file in turn
    queues = [list(range(starts[f], starts[f + 1])) for f in block]
    while any(queues):
      want += [q.pop(0) for q in queues if q]
  np.testing.assert_array_equal(got, want)


def test_every_epoch_permutes_the_files_anew(pattern):
  """The file permutation itself changes with the epoch (not only the windows:
  a window shuffle seeded by the epoch would hide an epoch-blind permutation),
  and so does the example order when windows of 1 record shuffle nothing."""
  cfg = cfg_for(pattern)
  source = data_sources.tfrecord_source(cfg)
  units = data_order.Units(source.n, source.read, source.counts)
  order = data_order.Order(seed=0, cycle_length=3, window=4)
  perms = [tuple(order.epoch_permutation(units, e).numpy()) for e in range(4)]
  for p in perms:
    assert sorted(p) == list(range(len(SIZES)))
  assert len(set(perms)) == 4, perms
  unwindowed = tags(data.make_dataset(cfg.replace(shuffle_buffer=1), 2), 3 * TOTAL // 2)
  epochs = unwindowed.reshape(3, TOTAL)
  for e in epochs:
    assert sorted(e) == list(range(TOTAL))
  assert len({tuple(e) for e in epochs}) == 3, epochs


def _window_buffers(ds):
  """{op: [its buffer or batch size, ...]} of the batch and prefetch ops of the
  live (first) block in ``ds``'s graph, and the ops holding records anywhere."""
  graph = tf.compat.v1.GraphDef()
  graph.ParseFromString(ds._as_serialized_graph().numpy())  # pylint: disable=protected-access
  consts = {n.name: n.attr["value"].tensor for n in graph.node if n.op == "Const"}
  sizes = {}
  for n in graph.node:
    if n.op in ("BatchDatasetV2", "PrefetchDataset"):
      size = consts[n.input[1].split(":")[0]]
      sizes.setdefault(n.op, []).append(int(size.int64_val[0]))
  holders = {n.op for fn in graph.library.function for n in fn.node_def} | {
      n.op for n in graph.node}
  return sizes, holders & {"ShuffleDataset", "ShuffleDatasetV3", "CacheDatasetV2"}


def test_a_resume_holds_no_more_windows_than_a_fresh_start():
  """Host memory: one window being read out plus one prefetched (README), on a
  resume (inside a window, in a later block, in a later epoch) as at step 0."""
  units = data_order.Units(
      6, lambda u: tf.data.Dataset.range(5).map(lambda r: r + 10 * u),
      lambda: np.full(6, 5))
  order = data_order.Order(seed=0, cycle_length=3, window=4)
  fresh = _window_buffers(order.stream(units))
  assert fresh == ({"BatchDatasetV2": [4], "PrefetchDataset": [1]}, set())
  for start in (9, 17, 23, 10**9 + 1):
    assert _window_buffers(order.stream(units, start=start)) == fresh, start
