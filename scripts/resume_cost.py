r"""Seconds from building the input pipeline to its first batch when a run resumes
at a large step, on a synthetic official-format TFRecord set.

  python scripts/resume_cost.py --dir=/tmp/resume_set --step=500000
  python scripts/resume_cost.py --dir=/tmp/resume_set128 --image_size=128 \
      --num_files=64 --step=500000

Writes the set first if ``--dir`` holds none (``--num_files`` files of
``--records_per_file`` records of ``--image_size`` px; the defaults, 1024 x 1251
records, are ImageNet's 1.28M training images). Then, for step 0 and for
``--step``, builds ``sagan_tf.data.pipeline.make_dataset`` exactly as a resumed
``imagenet128`` run does (global batch ``--batch``, ``d_steps`` from the preset,
one replica, so ``skip_batches = step * d_steps``) and times until the first
batch is in memory: glob, the record-count scan of every file (cold: no counts
cached by an earlier run), locating the position, reading the skipped windows of
the current block, filling the first shuffle window and decoding one batch. Model
building and the train step are not timed. Prints one JSON line per step.
"""
import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sagan_tf import config as config_lib  # noqa: E402
from sagan_tf.data import pipeline as data  # noqa: E402
from sagan_tf.data import order as data_order  # noqa: E402
from sagan_tf.data import records as record_io  # noqa: E402


def write_set(directory, num_files, per_file, size, num_classes):
  """Official-format files; records are copies of a few random images (fast)."""
  tf.io.gfile.makedirs(directory)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, size, size, 3), np.uint8)
  serialized = []
  for i, image in enumerate(images):
    path = os.path.join(directory, "one.tmp")
    data.write_official_tfrecord(path, image[None], [i % num_classes])
    serialized.append(next(iter(tf.data.TFRecordDataset(path))).numpy())
  os.remove(path)
  for f in range(num_files):
    with tf.io.TFRecordWriter(os.path.join(directory,
                                           f"train-{f:05d}.tfrecords")) as w:
      for r in range(per_file):
        w.write(serialized[(f + r) % len(serialized)])


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--dir", required=True)
  p.add_argument("--num_files", type=int, default=1024)
  p.add_argument("--records_per_file", type=int, default=1251)
  p.add_argument("--image_size", type=int, default=32)
  p.add_argument("--step", type=int, default=500_000)
  p.add_argument("--batch", type=int, default=256)
  p.add_argument("--preset", default="imagenet128")
  args = p.parse_args()
  cfg = config_lib.from_preset(args.preset).replace(
      dataset="tfrecord", image_size=args.image_size, batch_size=args.batch,
      tfrecord_pattern=os.path.join(args.dir, "*.tfrecords"))
  if not tf.io.gfile.glob(cfg.tfrecord_pattern):
    t = time.perf_counter()
    write_set(args.dir, args.num_files, args.records_per_file, args.image_size,
              cfg.num_classes)
    print(json.dumps({"wrote_set_s": round(time.perf_counter() - t, 1)}),
          flush=True)
  files = sorted(tf.io.gfile.glob(cfg.tfrecord_pattern))
  t = time.perf_counter()
  total = sum(record_io.count_records(f) for f in files)
  count_s = time.perf_counter() - t
  order = data_order.Order(cfg.seed, data_order.cycle_length_of(cfg),
                           cfg.shuffle_buffer)
  for step in (0, args.step):
    skip = step * cfg.d_steps
    # A cold resume: no record counts cached from an earlier run.
    os.environ["SAGAN_TF_CACHE_DIR"] = tempfile.mkdtemp(prefix="resume_cost_")
    t = time.perf_counter()
    ds = data.make_dataset(cfg, cfg.batch_size, skip_batches=skip)
    images, _ = next(iter(ds))
    seconds = time.perf_counter() - t
    position = skip * cfg.batch_size
    source_units = None
    if position:
      from sagan_tf.data import sources as data_sources  # pylint: disable=g-import-not-at-top
      src = data_sources.tfrecord_source(cfg)
      source_units = data_order.Units(src.n, src.read, src.counts)
      epoch, block, window, within = order.locate(source_units, position)
      where = dict(epoch=epoch, block=block, window=window, skip_in_window=within,
                   records_read_before_position=window * cfg.shuffle_buffer)
    else:
      where = {}
    print(json.dumps(dict(
        step=step, skip_batches=skip, records_before=position,
        seconds_to_first_batch=round(seconds, 2), batch_shape=list(images.shape),
        files=len(files), records=total, count_scan_one_thread_s=round(count_s, 2),
        cycle_length=order.cycle_length, shuffle_window=order.window,
        image_size=cfg.image_size, **where)), flush=True)


if __name__ == "__main__":
  main()
