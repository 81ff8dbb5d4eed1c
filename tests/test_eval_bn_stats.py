"""Evaluation, export and in-training evaluation with --bn_stats, on a ram:// workdir
(results go through tf.io.gfile, as the trainer's files do)."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from eval import digits_classifier as dc
from eval import evaluate
from eval import results as results_lib
from eval import train_eval
from eval.inception import Classifier
from sagan_tf.inference import bn_stats as bn_stats_lib
from sagan_tf.run import checkpoint as checkpoint_lib
from sagan_tf.run import state as state_lib
from sagan_tf.inference import export as export_lib
from sagan_tf.config import from_preset
from sagan_tf.models.builder import build_models

SMALL = dict(dc.RECIPE, width=(4, 8), features=8)
PROTOCOL = dict(num_samples=20, num_real=30, batch_size=10)


def small_classifier():
  """The digits classifier's architecture with untrained weights (fast)."""
  tf.keras.utils.set_random_seed(0)
  model = dc.build_model(SMALL)
  c = Classifier(dc._Module(model), source="digits-test",  # pylint: disable=protected-access
                 identity="digits:test", image_size=32)
  c.labels_match_classes = True
  return c


@pytest.fixture(scope="module")
def ram_workdir():
  tf.keras.utils.set_random_seed(1)
  config = from_preset("tiny")
  g, d = build_models(config)
  path = "ram://quality_eval/run"
  state_lib.save_models(path, config, g, d, step=7)
  return path


def test_evaluate_on_ram_workdir_records_bn_stats(ram_workdir, tmp_path,
                                                  monkeypatch):
  monkeypatch.chdir(tmp_path)  # a local "ram:" folder would appear here
  classifier = small_classifier()
  results = {}
  for mode in ("moving", "standing"):
    protocol = evaluate.Protocol(bn_stats=mode, standing_passes=2, **PROTOCOL)
    results[mode] = evaluate.evaluate_checkpoint(
        ram_workdir, classifier, protocol, cache_dir=str(tmp_path / "cache"),
        log_every=0)
    path = results[mode]["path"]
    assert path.startswith("ram://") and tf.io.gfile.exists(path)
    with tf.io.gfile.GFile(path) as f:
      saved = json.load(f)
    assert saved["bn_stats"]["mode"] == mode
    assert 0.0 <= saved["metrics"]["class_accuracy"] <= 1.0
    config = checkpoint_lib.load_config(ram_workdir)
    assert results_lib.already_done(
        ram_workdir, saved["checkpoint"], protocol.resolved(config))
  assert results["standing"]["bn_stats"] == dict(mode="standing", passes=2,
                                                 batch_size=64, seed=0)
  assert results["moving"]["metrics"]["FID"] != results["standing"]["metrics"]["FID"]
  # Each mode keeps its own result file (the standing run did not overwrite it).
  with tf.io.gfile.GFile(results["moving"]["path"]) as f:
    assert json.load(f)["bn_stats"]["mode"] == "moving"
  assert results["moving"]["path"] != results["standing"]["path"]
  events = tf.io.gfile.glob(evaluate.eval_dir(ram_workdir) + "/events.out.*")
  assert events
  assert not os.path.exists(tmp_path / "ram:")


def _served(path, z, labels):
  model = tf.saved_model.load(path)
  return model.signatures["serving_default"](
      z=tf.constant(z), labels=tf.constant(labels))["images"].numpy()


def test_export_per_bn_stats_mode(ram_workdir):
  z = np.random.default_rng(0).standard_normal((6, 16)).astype(np.float32)
  labels = np.arange(6, dtype=np.int32)
  _, g, _, _ = state_lib.load_models(ram_workdir)
  from sagan_tf.images import to_uint8
  moving = to_uint8(g(z, labels, training=False, update_u=False))
  batch = to_uint8(g(z, labels, training=True, update_u=False))
  mode = bn_stats_lib.BNStats("standing", passes=2)
  bn_stats_lib.prepare(g, mode)
  standing = to_uint8(g(z, labels, training=False, update_u=False))
  for name, expected in (("moving", moving), ("standing", standing),
                         ("batch", batch)):
    out = f"ram://quality_eval/export_{name}"
    export_lib.export_workdir(ram_workdir, out,
                              bn_stats=bn_stats_lib.BNStats(name, passes=2))
    got = _served(out, z, labels)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, name
    with tf.io.gfile.GFile(out + "/" + export_lib.INFO_FILE) as f:
      info = json.load(f)
    assert info["bn_stats"]["mode"] == name and info["step"] == 7
  assert np.abs(moving.astype(int) - standing.astype(int)).max() > 10
  with pytest.raises(FileExistsError):
    export_lib.export_workdir(ram_workdir, "ram://quality_eval/export_moving")


def test_train_eval_every_writes_results_and_leaves_training_state(tmp_path):
  from sagan_tf.training import loop as train_lib
  config = from_preset("tiny").replace(eval_every=2, train_steps=3)
  workdir = "ram://quality_eval/train"
  evaluator = train_eval.make_train_evaluator(
      config, workdir, classifier=small_classifier(),
      protocol=evaluate.Protocol(standing_passes=2, **PROTOCOL),
      cache_dir=str(tmp_path))
  seen = []

  def on_eval(step, generator):
    before = [w.numpy().copy() for w in generator.weights]
    result = evaluator(step, generator)
    for a, w in zip(before, generator.weights):
      np.testing.assert_array_equal(a, w.numpy())  # standing stats in a copy
    seen.append(step)
    return result

  result = train_lib.train(config, workdir, on_eval=on_eval)
  assert result.step == 3 and seen == [2, 3]
  for step in seen:
    with tf.io.gfile.GFile(evaluate.result_path(workdir, step)) as f:
      saved = json.load(f)
    assert saved["bn_stats"]["mode"] == "standing"
    # Intra-FID in the train-time eval too (digits: real labels from the dataset).
    assert saved["metrics"]["intra_fid"] > 0
    assert saved["metrics"]["intra_fid_classes"] == len(saved["intra_fid"]) >= 1
  with pytest.raises(ValueError, match="eval_every"):
    from_preset("tiny").replace(eval_every=-1)
