"""One worker of tests/test_multiworker.py: runs ``launch.train`` unchanged, plus two
records for the test.

    SAGAN_MW_RECORD=DIR TF_CONFIG=... python -m tests.multiworker_worker <train flags>

Writes into DIR (``<task type>_<index>`` names this worker):

* ``<name>_init``: a checkpoint of the trainer's state right before the first step
  (the initial weights, for "both workers start alike" and "training changed them");
* ``<name>.json``: for each input pipeline ``sagan_tf.data.pipeline`` builds here, its input
  context, batch size, and the labels and an image digest of its first batch (read
  with a separate iterator; the trainer's own stream is untouched).
"""
import hashlib
import json
import os
import sys

from absl import app

from launch import train as launch_train
from sagan_tf.data import pipeline as data_lib
from sagan_tf.training import loop as train_lib

_RECORD_DIR = os.environ["SAGAN_MW_RECORD"]
_TASK = json.loads(os.environ["TF_CONFIG"])["task"]
_NAME = f"{_TASK['type']}_{_TASK['index']}"
_pipelines = []


def _recording_make_dataset(config, batch_size, **kw):
  ds = _make_dataset(config, batch_size, **kw)
  ctx = kw.get("input_context")
  images, labels = next(iter(ds.take(1)))
  _pipelines.append(dict(
      batch_size=batch_size, image_shape=list(images.shape),
      labels=labels.numpy().tolist(),
      images_sha1=hashlib.sha1(images.numpy().tobytes()).hexdigest(),
      num_input_pipelines=ctx and ctx.num_input_pipelines,
      input_pipeline_id=ctx and ctx.input_pipeline_id,
      num_replicas_in_sync=ctx and ctx.num_replicas_in_sync))
  with open(os.path.join(_RECORD_DIR, _NAME + ".json"), "w") as f:
    json.dump(_pipelines, f)
  return ds


def _recording_run(self, *args, **kwargs):
  self.checkpoint.write(os.path.join(_RECORD_DIR, _NAME + "_init"))
  return _run(self, *args, **kwargs)


_make_dataset = data_lib.make_dataset
data_lib.make_dataset = _recording_make_dataset  # looked up at call time
_run = train_lib.Trainer.run
train_lib.Trainer.run = _recording_run

if __name__ == "__main__":
  sys.argv[0] = "launch.train"
  launch_train.define_flags()
  app.run(launch_train.main)
