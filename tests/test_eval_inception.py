"""eval.inception: local copies, the TF-Hub cache, the offline error, load-once."""
import os
import shutil
import urllib.error
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub

from eval import inception
from eval.testing import save_tiny_classifier


def test_local_copy_outputs_and_loaded_once(tmp_path):
  path = save_tiny_classifier(str(tmp_path / "tiny"), num_classes=7, dim=5)
  with mock.patch.object(hub, "load", wraps=hub.load) as load:
    c = inception.load_classifier(path)
    assert inception.load_classifier(path) is c
    assert load.call_count == 1
  images = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
  out = c(images)
  assert out["logits"].shape == (3, 7) and out["pool_3"].shape == (3, 5)
  assert out["pool_3"].dtype == tf.float32
  # Resize to 299 with TF1's bilinear grid, then the module itself.
  big = tf.compat.v1.image.resize_bilinear(images, [299, 299])
  raw = tf.saved_model.load(path)(big)
  np.testing.assert_allclose(out["logits"], raw["logits"], rtol=1e-5, atol=1e-6)
  assert c.source == path and c.identity.startswith("sha1:")
  # The same files elsewhere: same identity; other weights: another one.
  other = shutil.copytree(path, str(tmp_path / "copy"))
  assert inception.load_classifier(other).identity == c.identity
  diff = save_tiny_classifier(str(tmp_path / "diff"), num_classes=7, dim=5, seed=1)
  assert inception.fingerprint(diff) != inception.fingerprint(path)


def test_missing_local_copy_is_a_clear_error(tmp_path):
  with pytest.raises(inception.InceptionUnavailableError) as e:
    inception.load_classifier(str(tmp_path / "nowhere"))
  msg = str(e.value)
  assert "nowhere" in msg and "--inception_path" in msg
  assert inception.hub_cache_name() in msg and "TFHUB_CACHE_DIR" in msg


def test_offline_hub_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "empty_cache"))
  with mock.patch.object(hub, "resolve",
                         side_effect=urllib.error.URLError("no network")):
    with pytest.raises(inception.InceptionUnavailableError) as e:
      inception.load_classifier()
  msg = str(e.value)
  assert "URLError" in msg and inception.TFHUB_HANDLE in msg
  assert "--inception_path" in msg
  assert os.path.join(str(tmp_path / "empty_cache"),
                      inception.hub_cache_name()) in msg


def test_tfhub_cache_dir_is_honoured(tmp_path, monkeypatch):
  monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
  save_tiny_classifier(str(tmp_path / inception.hub_cache_name()), dim=3)
  c = inception.load_classifier()  # no network needed: the copy is in the cache
  assert c.source == inception.TFHUB_HANDLE
  assert c(np.zeros((2, 16, 16, 3), np.float32))["pool_3"].shape == (2, 3)


def test_unloadable_copy_is_a_clear_error(tmp_path):
  path = tmp_path / "broken"
  path.mkdir()
  (path / "saved_model.pb").write_bytes(b"not a SavedModel")
  with mock.patch.object(hub, "load", side_effect=urllib.error.URLError("offline")):
    with pytest.raises(inception.InceptionUnavailableError, match="URLError.*offline"):
      inception.load_classifier(str(path))
  with pytest.raises(inception.InceptionUnavailableError, match="--inception_path"):
    inception.load_classifier(str(path))  # the real loader on a corrupt file
