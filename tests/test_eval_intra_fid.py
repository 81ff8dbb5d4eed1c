"""Intra-FID of a workdir (eval.evaluate, eval.real_stats per-class cache), result
files per BN mode (eval.results) and unpadded batches for batch statistics
(eval.features), against independent numpy computations on small features."""
import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from eval import evaluate
from eval import features
from eval import inception
from eval import real_stats
from eval import results
from sagan_tf.inference import sampling
from eval.testing import save_tiny_classifier
from sagan_tf.run import state as state_lib
from sagan_tf.config import from_preset
from sagan_tf.models.builder import build_models

NUM_REAL = 40
PROTOCOL = evaluate.Protocol(bn_stats="moving", num_samples=60, num_real=NUM_REAL,
                             batch_size=8, kid_max_samples=64)


class LabelledData:
  """dataset_fn stand-in: random 'real' images with labels 0..3 (10 each)."""

  def __init__(self, with_labels=True):
    self.calls = 0
    self.with_labels = with_labels
    rng = np.random.default_rng(4)
    self.labels = np.arange(NUM_REAL) % 4
    # Class-dependent brightness, so per-class statistics differ from global ones.
    self.images = np.clip(rng.uniform(-1, 1, (NUM_REAL, 32, 32, 3))
                          + 0.3 * (self.labels[:, None, None, None] - 1.5),
                          -1, 1).astype(np.float32)

  def __call__(self, config, batch_size, split):
    self.calls += 1
    for i in range(0, NUM_REAL, batch_size):
      if self.with_labels:
        yield self.images[i:i + batch_size], self.labels[i:i + batch_size]
      else:
        yield self.images[i:i + batch_size]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
  # 3-d features: more samples than dimensions in most classes.
  return inception.load_classifier(save_tiny_classifier(
      str(tmp_path_factory.mktemp("cls") / "tiny"), dim=3))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  tf.keras.utils.set_random_seed(2)
  config = from_preset("tiny")
  g, d = build_models(config)
  path = str(tmp_path_factory.mktemp("run") / "w")
  state_lib.save_models(path, config, g, d, step=4)
  return path


def np_class_fid(a, b):
  """FID of two feature sets, the trace term as a nuclear norm:
  Tr sqrt(Ca Cb) = ||A B^T||_* for Ca = A^T A, Cb = B^T B (centred, scaled rows)."""
  ac = (a - a.mean(0)) / np.sqrt(len(a) - 1)
  bc = (b - b.mean(0)) / np.sqrt(len(b) - 1)
  trace = np.trace(ac.T @ ac) + np.trace(bc.T @ bc) - 2 * np.linalg.norm(
      ac @ bc.T, "nuc")
  return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + trace)


def np_intra_fid(real, real_y, fake, fake_y, k):
  fids = {c: np_class_fid(real[real_y == c], fake[fake_y == c]) for c in range(k)
          if (real_y == c).sum() >= 2 and (fake_y == c).sum() >= 2}
  return float(np.mean(list(fids.values()))), fids


def features_of(classifier, images):
  return np.asarray(classifier(images)["pool_3"], np.float64).reshape(len(images), -1)


def test_workdir_intra_fid_matches_numpy(workdir, classifier, tmp_path):
  data = LabelledData()
  result = evaluate.evaluate_checkpoint(workdir, classifier, PROTOCOL,
                                        cache_dir=str(tmp_path), dataset_fn=data,
                                        log_every=0)
  # Independent: the same seeded samples and their classes, numpy per class.
  _, g, _, _ = state_lib.load_models(workdir)
  fake_images, fake_y = sampling.generate(g, 60, seed=0, batch_size=8)
  real = features_of(classifier, data.images)
  fake = features_of(classifier, fake_images)
  want, fids = np_intra_fid(real, data.labels, fake, fake_y, 10)
  m = result["metrics"]
  assert m["intra_fid_classes"] == len(fids) == 4  # real images: classes 0..3
  assert m["intra_fid"] == pytest.approx(want, rel=1e-6)
  assert abs(m["intra_fid"] - m["FID"]) > 1e-3  # not the global FID
  details = result["intra_fid"]
  assert sorted(details) == ["0", "1", "2", "3"]
  for c, fid in fids.items():
    assert details[str(c)]["fid"] == pytest.approx(fid, rel=1e-6)
    assert details[str(c)]["real_count"] == 10
    assert details[str(c)]["fake_count"] == int((fake_y == c).sum())
  # In the JSON and TensorBoard (moving statistics: its own file and run).
  with open(results.result_path(workdir, 4, "moving")) as f:
    assert json.load(f)["metrics"]["intra_fid"] == pytest.approx(m["intra_fid"])
  tags = {}
  for f in glob.glob(os.path.join(results.summary_dir(workdir, "moving"),
                                  "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(f):
      for v in event.summary.value:
        tags[v.tag] = float(tf.make_ndarray(v.tensor))
  assert tags["eval/intra_fid"] == pytest.approx(m["intra_fid"], rel=1e-6)
  # Fewer classes: the first two only.
  two = evaluate.evaluate_checkpoint(
      workdir, classifier, dataclasses.replace(PROTOCOL, intra_fid_classes=2),
      cache_dir=str(tmp_path), dataset_fn=data, log_every=0, write=False)
  assert two["metrics"]["intra_fid_classes"] == 2
  assert two["metrics"]["intra_fid"] == pytest.approx(np.mean([fids[0], fids[1]]),
                                                      rel=1e-6)
  off = evaluate.evaluate_checkpoint(
      workdir, classifier, dataclasses.replace(PROTOCOL, intra_fid_classes=0),
      cache_dir=str(tmp_path), dataset_fn=data, log_every=0, write=False)
  assert "intra_fid" not in off["metrics"] and "intra_fid" not in off
  assert off["metrics"]["FID"] == pytest.approx(m["FID"], rel=1e-9)


def test_per_class_real_statistics_cached(classifier, tmp_path):
  config = from_preset("tiny")
  data = LabelledData()
  kw = dict(num_real=NUM_REAL, cache_dir=str(tmp_path), batch_size=8,
            dataset_fn=data, log_every=0)
  plain, _ = real_stats.real_stats(config, classifier, **kw)
  assert data.calls == 1 and plain.per_class is None
  # Asking per-class statistics when only the global ones are cached: one pass.
  s1, info1 = real_stats.real_stats(config, classifier, intra_fid_classes=3, **kw)
  s2, info2 = real_stats.real_stats(config, classifier, intra_fid_classes=3, **kw)
  assert data.calls == 2 and not info1["cached"] and info2["cached"]
  assert os.path.exists(info1["class_path"]) and info1["class_path"] != info1["path"]
  feats = features_of(classifier, data.images)
  assert sorted(s2.per_class) == [0, 1, 2]
  for c in range(3):
    count, mean, cov = s2.per_class[c]
    x = feats[data.labels == c]
    assert count == 10
    np.testing.assert_allclose(mean, x.mean(0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(cov, np.cov(x, rowvar=False), rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(cov, s1.per_class[c][2])
  np.testing.assert_array_equal(s2.cov, plain.cov)  # same global statistics
  # Another class count is another file.
  real_stats.real_stats(config, classifier, intra_fid_classes=4, **kw)
  assert data.calls == 3
  # Real batches without labels: a clear error.
  with pytest.raises(ValueError, match="needs the real images' labels"):
    real_stats.real_stats(config, classifier, intra_fid_classes=3,
                          **dict(kw, cache_dir=str(tmp_path / "other"),
                                 dataset_fn=LabelledData(with_labels=False)))


def test_batch_statistics_do_not_see_padding(workdir, classifier, tmp_path):
  # 60 samples in batches of 8: the last holds 4. Batch moments must be those
  # of the 4 samples alone, as sampling.generate (unpadded) draws them.
  _, g, _, _ = state_lib.load_models(workdir)
  got = features.generated_stats(g, classifier, 60, batch_size=8, training=True,
                                 log_every=0)
  images, _ = sampling.generate(g, 60, seed=0, batch_size=8, training=True)
  want = features_of(classifier, images)
  np.testing.assert_allclose(got.mean, want.mean(0), rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(got.cov, np.cov(want, rowvar=False), rtol=1e-4,
                             atol=1e-8)


def test_unpadded_batches_split_over_replicas():
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  runner = features.ReplicaRunner(lambda x: {"y": x * 2.0}, strategy, 4, pad=False)
  for rows in (4, 3, 1):  # 2+2, 1+2, 0+1 rows per replica
    x = np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)
    np.testing.assert_array_equal(runner(x)["y"], x * 2.0)


def test_each_bn_mode_keeps_its_result(workdir, tmp_path):
  assert results.result_path(workdir, 4) == results.result_path(workdir, 4,
                                                                 "standing")
  paths = {mode: results.write_result(workdir, dict(
      step=9, bn_stats=dict(mode=mode), metrics=dict(FID=float(i))))
           for i, mode in enumerate(("standing", "moving", "batch"))}
  assert len(set(paths.values())) == 3
  for i, mode in enumerate(("standing", "moving", "batch")):
    with open(paths[mode]) as f:
      assert json.load(f)["metrics"]["FID"] == i
  assert os.path.basename(paths["standing"]) == "metrics_000000009.json"


def test_image_sets_intra_fid_class_cap(classifier):
  """compare_image_sets' intra_fid_classes k keeps classes 0..k-1 only (their
  moments are what costs memory); 0 turns intra-FID off, None keeps every class."""
  from eval import image_sets  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(7)
  labels = np.arange(60) % 3
  sets = [rng.integers(0, 256, (60, 32, 32, 3), np.uint8) for _ in range(2)]
  kw = dict(labels_a=labels, labels_b=labels, batch_size=20, kid_max_samples=60)
  every = image_sets.compare_image_sets(*sets, classifier, **kw)
  two = image_sets.compare_image_sets(*sets, classifier, intra_fid_classes=2, **kw)
  off = image_sets.compare_image_sets(*sets, classifier, intra_fid_classes=0, **kw)
  assert every["intra_fid_classes"] == 3 and two["intra_fid_classes"] == 2
  assert two["intra_fid"] != every["intra_fid"]
  assert "intra_fid" not in off and off["fid"] == every["fid"]


def test_launch_train_eval_intra_fid_classes_flag_reaches_the_protocol(tmp_path):
  """--eval_intra_fid_classes sets the train-time eval's Protocol (the
  classifier and evaluator are stand-ins: only the protocol is looked at)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  code = f"""
from absl import flags
from eval import train_eval
from launch import train
from sagan_tf.config import from_preset
train.define_flags()
flags.FLAGS(["train", "--workdir={tmp_path}", "--eval_intra_fid_classes=3"])
train_eval.load_named_classifier = lambda name, strategy: None
train_eval.make_train_evaluator = lambda *a, protocol, **k: protocol
protocol = train._train_evaluator(from_preset("digits32").replace(eval_every=5),
                                  "{tmp_path}", None)
print(protocol.intra_fid_classes)
"""
  proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                        text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == "3"
