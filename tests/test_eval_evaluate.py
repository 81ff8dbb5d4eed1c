"""eval.evaluate / eval.real_stats / eval.features: the protocol on a tiny workdir."""
import dataclasses
import glob
import hashlib
import json
import os

import numpy as np
import pytest
import scipy.linalg
import tensorflow as tf

from eval import evaluate
from eval import inception
from eval import real_stats
from sagan_tf.inference import sampling
from eval.testing import save_tiny_classifier
from sagan_tf.run import state as state_lib
from sagan_tf.config import from_preset
from sagan_tf.models.builder import build_models
from tests.test_eval_cli import np_kid
from tests.test_eval_manifold import _brute as brute_prdc

# kid_max_samples covers both sets, so KID uses every activation and can be
# checked against numpy (the reservoir subset is tested in test_eval_metrics).
# The test compares with the moving-statistics forward (official protocol).
PROTOCOL = evaluate.Protocol(bn_stats="moving", num_samples=20, num_real=24,
                             batch_size=8, kid_max_samples=24)


class FakeData:
  """dataset_fn stand-in: fixed random 'real' images; counts the passes."""

  def __init__(self):
    self.calls = []
    self.images = np.random.default_rng(1).uniform(
        -1, 1, (40, 32, 32, 3)).astype(np.float32)

  def __call__(self, config, batch_size, split):
    self.calls.append(split)
    for i in range(0, len(self.images), batch_size):
      yield self.images[i:i + batch_size], np.zeros([batch_size], np.int32)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
  return inception.load_classifier(
      save_tiny_classifier(str(tmp_path_factory.mktemp("cls") / "tiny")))


def make_workdir(path, steps=(5,)):
  config = from_preset("tiny")
  g, d = build_models(config)
  for step in steps:
    state_lib.save_models(str(path), config, g, d, step=step)
  return str(path)


def checkpoint_digest(workdir):
  h = hashlib.sha1()
  for f in sorted(glob.glob(os.path.join(workdir, "checkpoints", "*"))):
    with open(f, "rb") as fh:
      h.update(os.path.basename(f).encode() + fh.read())
  return h.hexdigest()


def np_fid(a, b):
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  return float(np.sum((a.mean(0) - b.mean(0)) ** 2)
               + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, classifier):
  """A tiny workdir, its checkpoint digest before evaluation, data and result."""
  root = tmp_path_factory.mktemp("evaluated")
  workdir = make_workdir(root / "run")
  before = checkpoint_digest(workdir)
  data = FakeData()
  result = evaluate.evaluate_checkpoint(workdir, classifier, PROTOCOL,
                                        cache_dir=str(root / "cache"),
                                        dataset_fn=data, log_every=1)
  return workdir, before, data, result


def test_checkpoint_metrics_match_independent_computation(evaluated, classifier):
  workdir, before, data, result = evaluated
  assert checkpoint_digest(workdir) == before  # evaluation never writes a checkpoint
  assert result["step"] == 5
  # Independent: the same samples (seeded), the classifier, numpy/scipy metrics.
  _, g, _, _ = state_lib.load_models(workdir)
  images, _ = sampling.generate(g, 20, seed=0, batch_size=8)
  fake = classifier(images)
  real = classifier(data.images[:24])
  m = result["metrics"]
  assert m["FID"] == pytest.approx(np_fid(real["pool_3"].numpy().astype(np.float64),
                                          fake["pool_3"].numpy().astype(np.float64)),
                                   rel=1e-4)
  p = tf.nn.softmax(tf.cast(fake["logits"], tf.float64)).numpy()
  is_ref = np.exp(np.mean(np.sum(p * (np.log(p) - np.log(p.mean(0))), axis=1)))
  assert m["IS"] == pytest.approx(is_ref, rel=1e-4)
  assert m["KID"] == pytest.approx(np_kid(real["pool_3"].numpy().astype(np.float64),
                                          fake["pool_3"].numpy().astype(np.float64)),
                                   rel=1e-4)
  # k-NN metrics on the same activations (every one: the KID subset holds them all).
  want = brute_prdc(real["pool_3"].numpy().astype(np.float64),
                    fake["pool_3"].numpy().astype(np.float64))
  for name in ("precision", "recall", "density", "coverage"):
    assert m[name] == pytest.approx(want[name], abs=1e-6), name
  # Written with its protocol, and as TensorBoard scalars.
  with open(evaluate.result_path(workdir, 5, "moving")) as f:
    saved = json.load(f)
  assert saved["metrics"] == pytest.approx(m)
  proto = saved["protocol"]
  assert (proto["num_samples"], proto["num_real"], proto["real_split"]) == (
      20, 24, "train")
  assert proto["inception_identity"] == classifier.identity and proto["seed"] == 0
  assert saved["checkpoint"].endswith("ckpt-5")
  tags = {}
  for f in glob.glob(os.path.join(workdir, "eval", "bn_moving", "events.out.*")):
    for event in tf.compat.v1.train.summary_iterator(f):
      for v in event.summary.value:
        tags[v.tag] = (event.step, float(tf.make_ndarray(v.tensor)))
  assert tags["eval/FID"] == (5, pytest.approx(m["FID"], rel=1e-6))
  assert set(tags) >= {"eval/IS", "eval/FID", "eval/KID", "eval/precision",
                       "eval/recall", "eval/density", "eval/coverage"}
  assert tags["eval/density"] == (5, pytest.approx(m["density"], rel=1e-6))


def test_real_statistics_cache_reused_and_invalidated(tmp_path, classifier):
  config = from_preset("tiny")
  data = FakeData()
  kw = dict(cache_dir=str(tmp_path), batch_size=8, kid_max_samples=16,
            dataset_fn=data)
  s1, info1 = real_stats.real_stats(config, classifier, num_real=24, **kw)
  s2, info2 = real_stats.real_stats(config, classifier, num_real=24, **kw)
  assert len(data.calls) == 1 and not info1["cached"] and info2["cached"]
  np.testing.assert_array_equal(s1.cov, s2.cov)
  np.testing.assert_array_equal(s1.kid_features, s2.kid_features)
  # Any protocol change computes new statistics.
  real_stats.real_stats(config, classifier, num_real=16, **kw)
  real_stats.real_stats(config, classifier, num_real=24, split="test", **kw)
  real_stats.real_stats(dataclasses.replace(config, image_size=64), classifier,
                        num_real=24, **kw)
  other = inception.Classifier(classifier.module, "other", "sha1:other")
  real_stats.real_stats(config, other, num_real=24, **kw)
  assert len(data.calls) == 5
  real_stats.real_stats(config, classifier, num_real=24, split="test", **kw)
  assert len(data.calls) == 5 and data.calls[2] == "test"
  # Asking more images than the split has uses all of them.
  s, info = real_stats.real_stats(config, classifier, num_real=100, **kw)
  assert s.count == info["count"] == 40


def test_mirrored_strategy_gives_the_same_numbers(tmp_path, evaluated, classifier):
  workdir, _, _, one = evaluated
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  mirrored_cls = inception.load_classifier(classifier.source, strategy=strategy)
  # Batch 6 over 2 replicas: 20 samples = 6+6+6+2, the last batch padded.
  two = evaluate.evaluate_checkpoint(
      workdir, mirrored_cls, dataclasses.replace(PROTOCOL, batch_size=6),
      cache_dir=str(tmp_path), dataset_fn=FakeData(), strategy=strategy,
      write=False)
  assert two["protocol"]["replicas"] == 2
  for k in ("IS", "FID", "KID"):
    assert two["metrics"][k] == pytest.approx(one["metrics"][k], rel=1e-4, abs=1e-6)


def test_watch_picks_up_new_checkpoints(tmp_path, classifier):
  config = from_preset("tiny")
  g, d = build_models(config)
  workdir = str(tmp_path / "run")
  state_lib.save_models(workdir, config, g, d, step=1)
  kw = dict(cache_dir=str(tmp_path / "cache"), dataset_fn=FakeData(), log_every=0)
  watcher = evaluate.watch(workdir, classifier, PROTOCOL, timeout=1, **kw)
  assert next(watcher)["step"] == 1
  state_lib.save_models(workdir, config, g, d, step=2)  # the trainer goes on
  assert next(watcher)["step"] == 2
  assert list(watcher) == []  # no third checkpoint: ends after the timeout
  assert os.path.exists(evaluate.result_path(workdir, 2, "moving"))
  # A restarted watcher skips what is already evaluated with this protocol.
  assert list(evaluate.watch(workdir, classifier, PROTOCOL, timeout=1, **kw)) == []
