"""sagan_tf.convert / launch.convert: TF1 checkpoints reproduce their code's outputs.

Fixtures: ../shared/fixtures/{official_small,tfgan_small} (written by the official
code and by TF-GAN's estimator example under TF 2.21 compat.v1), and the small
tests/data/official_* checkpoints written by tools/make_official_reference.py with
other sizes, class counts, seeds and attention placements. Each measurement
starts from the restored checkpoint, as the fixtures' protocol did.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf import checkpoint as ckpt_lib
from sagan_tf import convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
LOCAL_FIXTURES = sorted(
    d for d in (os.listdir(DATA) if os.path.isdir(DATA) else [])
    if d.startswith("official_"))


class Loaded:
  """A converted fixture plus helpers to restore it and find variables by name."""

  def __init__(self, fixture_dir, layout):
    self.dir = fixture_dir
    self.layout = layout
    with open(os.path.join(fixture_dir, "config.json")) as f:
      self.config = json.load(f)
    self.ref = np.load(os.path.join(fixture_dir, "reference.npz"))
    self.g, self.d = convert.load_tf1_checkpoint(
        os.path.join(fixture_dir, "ckpt", "model.ckpt"), layout)
    self.entries = (convert.generator_name_map(self.g, layout)
                    + convert.discriminator_name_map(self.d, layout))
    self.by_name = {name: var for name, var, _ in self.entries}
    self._saved = [(v, v.numpy()) for v in self.g.weights + self.d.weights]

  def restore(self):
    for var, value in self._saved:
      var.assign(value)

  def var(self, key):
    """The Keras variable for an npz key '<prefix>__<name with / as __>'."""
    name = key.split("__", 1)[1].replace("__", "/")
    return self.by_name[name]

  def keys(self, prefix):
    return [k for k in self.ref.files if k.startswith(prefix + "__")]


@pytest.fixture(scope="module")
def official(request):
  return _load(request, "official_small", "official")


@pytest.fixture(scope="module")
def tfgan(request):
  return _load(request, "tfgan_small", "tfgan_estimator")


def _load(request, name, layout):
  shared = os.environ.get("SAGAN_SHARED_DIR", os.path.join(REPO, "..", "shared"))
  path = os.path.join(shared, "fixtures", name)
  if not os.path.isdir(path):
    pytest.skip(f"shared fixture {path} not found (set SAGAN_SHARED_DIR)")
  return Loaded(path, layout)


def _close_images(out, ref):
  np.testing.assert_allclose(np.asarray(out), ref, rtol=0, atol=1e-4)


def _close_logits(out, ref):
  ref = np.reshape(ref, [-1])
  np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-4,
                             atol=1e-4 * np.abs(ref).max())


def _check_u(m, prefix):
  keys = m.keys(prefix)
  assert keys, prefix
  for key in keys:
    var = m.var(key)
    np.testing.assert_allclose(np.reshape(var.numpy(), m.ref[key].shape),
                               m.ref[key], rtol=0, atol=1e-5, err_msg=key)


def _reproduce(m):
  """Every measurement of a fixture, each from the restored checkpoint."""
  r = m.ref
  variant = m.g.variant

  m.restore()
  _close_images(m.g(r["z"], r["y_gen"], training=False), r["g_eval"])
  _check_u(m, "u_after_g_eval")

  m.restore()
  _close_images(m.g(r["z"], r["y_gen"], training=True), r["g_train"])
  _check_u(m, "u_after_g_train")
  for key in m.keys("bn_after_update"):  # the training forward updates them
    np.testing.assert_allclose(np.reshape(m.var(key).numpy(), r[key].shape), r[key],
                               rtol=0, atol=1e-5, err_msg=key)

  m.restore()
  _close_logits(m.d(r["x_real"], r["y_real"], training=True), r["d_real"])
  _check_u(m, "u_after_d_real")

  m.restore()
  d_u = [(v, v.numpy()) for v in m.d.weights if v.path.endswith("/u")]
  fake = m.d(r["g_eval"], r["y_gen"], training=True,
             update_u=variant.d_update_u_on_fake)
  _close_logits(fake, r["d_fake"])
  changed = [v.path for v, before in d_u if not np.array_equal(v.numpy(), before)]
  if variant.d_update_u_on_fake:
    _check_u(m, "u_after_d_fake")
  else:
    assert not changed, changed
  m.restore()


def test_official_fixture_reproduced(official):
  assert official.g.variant.name == "official"
  assert official.g.attention_resolutions == (32,)
  assert official.d.attention_resolutions == (32,)
  # The fixture's ``bn_init`` are the values our models hold after the load.
  for key in official.keys("bn_init"):
    np.testing.assert_array_equal(
        np.reshape(official.var(key).numpy(), official.ref[key].shape),
        official.ref[key])
  _reproduce(official)


def test_official_u_and_bn_are_changed_by_the_right_passes(official):
  """Guards the comparisons above: the fixture's passes do move u and BN stats."""
  r = official.ref
  key = "u_pick0_after_d_real"
  assert not np.allclose(r["u_pick0_before"], r[key])
  for k in official.keys("bn_after_update"):
    assert not np.allclose(r[k], r["bn_init" + k[len("bn_after_update"):]]), k
  # Official G writes u at inference too; eval-mode BN leaves moving stats alone.
  official.restore()
  bn = [v for v in official.g.weights if "moving" in v.path]
  before = [v.numpy() for v in bn]
  official.g(r["z"], r["y_gen"], training=False)
  assert all(np.array_equal(v.numpy(), b) for v, b in zip(bn, before))
  official.restore()


def test_tfgan_fixture_reproduced(tfgan):
  assert tfgan.g.variant.name == "tfgan_estimator"
  r = tfgan.ref
  # TF-GAN's generator does not move u at inference: u_after_g_eval == u_init.
  for key in tfgan.keys("u_after_g_eval"):
    np.testing.assert_array_equal(r[key], r["u_init" + key[len("u_after_g_eval"):]])
  _reproduce(tfgan)


def test_tfgan_checkpoint_layout_reshaped(tfgan):
  """CBN gamma [nc,1,1,C] -> [nc,C], moving stats [C] -> [1,1,1,C]; u [K,1]."""
  block = tfgan.g.g_block1
  assert tuple(block.cbn_0.gamma.shape) == (10, 128)
  assert tuple(block.cbn_0.moving_mean.shape) == (1, 1, 1, 128)
  assert tuple(block.snconv1.u.shape) == (3 * 3 * 128, 1)
  assert tuple(tfgan.d.d_embedding.u.shape) == (128, 1)
  reader = tf.train.load_checkpoint(os.path.join(tfgan.dir, "ckpt", "model.ckpt"))
  np.testing.assert_array_equal(
      block.cbn_0.gamma.numpy(),
      reader.get_tensor("generator/g_block1/cbn_0/gamma")[:, 0, 0, :])


def test_every_checkpoint_variable_is_used_once(official, tfgan):
  for m in (official, tfgan):
    names = [name for name, _, _ in m.entries]
    assert len(names) == len(set(names))
    ckpt = tf.train.load_checkpoint(os.path.join(m.dir, "ckpt", "model.ckpt"))
    assert set(names) == set(ckpt.get_variable_to_shape_map())
    assert len({id(v) for _, v, _ in m.entries}) == len(m.g.weights + m.d.weights)


@pytest.mark.parametrize("name", LOCAL_FIXTURES)
def test_local_official_fixtures_reproduced(name):
  """Checkpoints the official code wrote with other sizes, classes and seeds."""
  m = Loaded(os.path.join(DATA, name), "official")
  cfg = m.config
  assert (m.g.num_classes, m.g.gf_dim, m.d.df_dim, m.g.z_dim) == (
      cfg["num_classes"], cfg["gf_dim"], cfg["df_dim"], cfg["z_dim"])
  where = {"test": (32,), "test_64": (64,), "baseline": ()}
  assert m.g.attention_resolutions == where[cfg["generator_type"]]
  assert m.d.attention_resolutions == where[cfg["discriminator_type"]]
  assert bool(m.ref["g_train_with_updates_equals_g_train"])
  _reproduce(m)


def test_mismatched_config_names_the_variables(fixtures_dir):
  path = os.path.join(fixtures_dir, "official_small", "ckpt", "model.ckpt")
  with pytest.raises(convert.CheckpointMismatchError) as e:
    convert.load_tf1_checkpoint(path, "official", num_classes=7)
  msg = str(e.value)
  assert "Shape mismatches" in msg
  for name in ("model/g_block1/cbn_0/gamma", "model/g_block5/cbn_1/beta",
               "model/d_embedding/embedding_map", "model/d_embedding/u"):
    assert f"{name}: checkpoint" in msg, name
  assert "model/g_snh0/Matrix" not in msg  # only the variables that differ
  with pytest.raises(convert.CheckpointMismatchError,
                     match="looks like a 'official' checkpoint"):
    convert.load_tf1_checkpoint(path, "tfgan_estimator")


def _write_tf1_checkpoint(prefix, tensors):
  names = sorted(tensors)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names,
                    shape_and_slices=[""] * len(names),
                    tensors=[tf.constant(tensors[n]) for n in names])


def test_unused_and_missing_listed_training_state_ignored(fixtures_dir, tmp_path):
  src = tf.train.load_checkpoint(
      os.path.join(fixtures_dir, "official_small", "ckpt", "model.ckpt"))
  tensors = {n: src.get_tensor(n) for n in src.get_variable_to_shape_map()}
  # Training state, which the rule skips (the error below lists none of it)...
  tensors["global_step"] = np.int64(5)
  tensors["beta1_power"] = np.float32(0.0)
  tensors["beta2_power_1"] = np.float32(0.9)
  tensors["model/g_snh0/Matrix/Adam"] = tensors["model/g_snh0/Matrix"]
  tensors["model/g_snh0/Matrix/Adam_1"] = tensors["model/g_snh0/Matrix"]
  # ... a stray model variable and a missing one, which it reports.
  tensors["model/g_block9/snconv1/w"] = np.zeros([1], np.float32)
  del tensors["model/d_block3/sn_conv2/biases"]
  bad = str(tmp_path / "bad" / "model.ckpt")
  _write_tf1_checkpoint(bad, tensors)
  with pytest.raises(convert.CheckpointMismatchError) as e:
    convert.load_tf1_checkpoint(bad, "official")
  msg = str(e.value)
  assert "left unused (1)" in msg and "model/g_block9/snconv1/w" in msg
  assert "not found in the checkpoint (1)" in msg
  assert "model/d_block3/sn_conv2/biases" in msg
  assert "Adam" not in msg and "global_step" not in msg


def test_training_state_rule():
  for name in ("global_step", "beta1_power", "beta2_power_3", "d_step",
               "model/g_snh0/Matrix/Adam", "generator/x/kernel/Adam_1"):
    assert convert.is_training_state(name), name
  for name in ("model/g_snh0/Matrix", "model/g_bn/beta", "model/d_embedding/u"):
    assert not convert.is_training_state(name), name


def test_bad_path_and_layout(tmp_path):
  with pytest.raises(FileNotFoundError, match="No TF1 checkpoint"):
    convert.load_tf1_checkpoint(str(tmp_path / "nothing"), "official")
  with pytest.raises(FileNotFoundError, match="No TF1 checkpoint in directory"):
    convert.load_tf1_checkpoint(str(tmp_path), "official")
  with pytest.raises(ValueError, match="layout"):
    convert.load_tf1_checkpoint(str(tmp_path), "tf2")


def test_cli_round_trip(fixtures_dir, tmp_path):
  """launch.convert writes a workdir that load_models reads back."""
  src = os.path.join(fixtures_dir, "official_small", "ckpt")
  out = tmp_path / "wd"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, "-m", "launch.convert", f"--source={src}",
       "--layout=official", f"--output={out}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config, g, d, step = ckpt_lib.load_models(str(out))
  assert step == 0
  assert (config.variant, config.num_classes, config.gf_dim, config.df_dim,
          config.image_size, config.g_attention) == ("official", 10, 8, 8, 128, (32,))
  ref = np.load(os.path.join(fixtures_dir, "official_small", "reference.npz"))
  _close_images(g(ref["z"], ref["y_gen"], training=False), ref["g_eval"])
  _close_logits(d(ref["x_real"], ref["y_real"], training=True), ref["d_real"])
  # A second conversion into the same workdir is refused.
  with pytest.raises(FileExistsError):
    convert.convert_to_workdir(src, "official", str(out))
