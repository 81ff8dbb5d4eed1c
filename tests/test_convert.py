"""sagan_tf.interop.convert / launch.convert: TF1 checkpoints reproduce their code's outputs.

Fixtures: ../shared/fixtures/{official_small,tfgan_small} (written by the official
code and by TF-GAN's estimator example under TF 2.21 compat.v1), the small
tests/data/official_* checkpoints written by tools/make_official_reference.py with
other sizes, class counts, seeds and attention placements, and
tests/data/tfgan_estimator_a, written by tools/make_tfgan_reference.py through
TF-GAN's own gan_model / gan_train_ops (estimator scopes ``Generator/``,
``Discriminator/``, Adam slots, global_step 3). Each measurement starts from the
restored checkpoint, as the fixtures' protocol did.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.run import checkpoint as ckpt_lib
from sagan_tf.run import state as state_lib
from sagan_tf.interop import convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
LOCAL_FIXTURES = sorted(  # forward references (official_train_*: training ones)
    d for d in (os.listdir(DATA) if os.path.isdir(DATA) else [])
    if d.startswith("official_") and not d.startswith("official_train_"))


class Loaded:
  """A converted fixture plus helpers to restore it and find variables by name."""

  def __init__(self, fixture_dir, layout):
    self.dir = fixture_dir
    self.layout = layout
    with open(os.path.join(fixture_dir, "config.json")) as f:
      self.config = json.load(f)
    self.ref = np.load(os.path.join(fixture_dir, "reference.npz"))
    self.ckpt = os.path.join(fixture_dir, "ckpt")  # holds a 'checkpoint' file
    self.g, self.d = convert.load_tf1_checkpoint(self.ckpt, layout)
    self.reader = convert.open_checkpoint(self.ckpt)
    self.scopes = convert.detect_scopes(self.reader.get_variable_to_shape_map(),
                                        layout)
    self.entries = (
        convert.generator_name_map(self.g, layout, self.scopes.generator)
        + convert.discriminator_name_map(self.d, layout, self.scopes.discriminator))
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


@pytest.fixture(scope="module")
def estimator():
  return Loaded(os.path.join(DATA, "tfgan_estimator_a"), "tfgan_estimator")


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


def test_tfgan_estimator_checkpoint_reproduced(estimator):
  """GANEstimator scopes, Adam slots and global_step, written by TF-GAN's code."""
  m = estimator
  assert m.scopes == ("Generator/generator", "Discriminator/discriminator")
  assert _names_are_estimator_scoped(m)
  shapes = m.reader.get_variable_to_shape_map()
  slots = [n for n in shapes if n.endswith(("/Adam", "/Adam_1"))]
  assert len(slots) == 2 * len(m.entries) - 2 * sum(
      n.endswith("spectral_norm_u") or "moving_" in n for n, _, _ in m.entries)
  for name in ("global_step", "generator_train/beta1_power",
               "discriminator_train/beta2_power"):
    assert name in shapes, name
  assert int(m.reader.get_tensor("global_step")) == int(m.ref["global_step"]) == 3
  cfg = m.config
  assert (m.g.num_classes, m.g.gf_dim, m.d.df_dim, m.g.z_dim) == (
      cfg["num_classes"], cfg["gf_dim"], cfg["df_dim"], cfg["z_dim"])
  assert m.g.attention_resolutions == (32,) and m.d.attention_resolutions == (32,)
  assert m.g.variant.name == "tfgan_estimator"
  _reproduce(m)


def _names_are_estimator_scoped(m):
  names = [name for name, _, _ in m.entries]
  u = ("Generator/generator/g_snh0/dense/Generator/generator/g_snh0/dense/kernel/"
       "spectral_normalize/spectral_norm/spectral_norm_u")
  return (u in names
          and all(n.startswith(("Generator/generator/",
                                "Discriminator/discriminator/")) for n in names))


def test_estimator_checkpoint_with_wrong_layout_named():
  src = os.path.join(DATA, "tfgan_estimator_a", "ckpt")
  with pytest.raises(convert.CheckpointMismatchError,
                     match="looks like a 'tfgan_estimator' checkpoint \\(it has "
                           "'Generator/generator/g_snh0/dense/kernel'\\)"):
    convert.load_tf1_checkpoint(src, "official")


def test_detect_scopes():
  base = "g_snh0/dense/kernel"
  d = "d_optimized_block1/sn_conv1/sn_conv1/kernel"
  bare = {f"generator/{base}": [1], f"discriminator/{d}": [1]}
  assert convert.detect_scopes(bare, "tfgan_estimator") == (
      "generator", "discriminator")
  outer = {f"a/b/generator/{base}": [1], f"a/b/generator/{base}/Adam": [1],
           f"D/discriminator/{d}": [1]}
  assert convert.detect_scopes(outer, "tfgan_estimator") == (
      "a/b/generator", "D/discriminator")
  assert convert.detect_scopes({}, "official") == ("model", "model")
  two = dict(bare, **{f"Generator/generator/{base}": [1]})
  with pytest.raises(convert.CheckpointMismatchError,
                     match="2 generators \\(Generator/generator, generator\\)"):
    convert.detect_scopes(two, "tfgan_estimator")


def test_tfgan_checkpoint_layout_reshaped(tfgan):
  """CBN gamma [nc,1,1,C] -> [nc,C], moving stats [C] -> [1,1,1,C]; u [K,1]."""
  block = tfgan.g.g_block1
  assert tuple(block.cbn_0.gamma.shape) == (10, 128)
  assert tuple(block.cbn_0.moving_mean.shape) == (1, 1, 1, 128)
  assert tuple(block.snconv1.u.shape) == (3 * 3 * 128, 1)
  assert tuple(tfgan.d.d_embedding.u.shape) == (128, 1)
  np.testing.assert_array_equal(
      block.cbn_0.gamma.numpy(),
      tfgan.reader.get_tensor("generator/g_block1/cbn_0/gamma")[:, 0, 0, :])


def test_every_checkpoint_variable_is_used_once(official, tfgan, estimator):
  for m in (official, tfgan, estimator):
    names = [name for name, _, _ in m.entries]
    assert len(names) == len(set(names))
    in_ckpt = set(m.reader.get_variable_to_shape_map())
    model = {n for n in in_ckpt if not convert.is_training_state(n)}
    assert set(names) == model
    if m is estimator:  # everything else is optimiser and step state
      assert len(in_ckpt - model) > len(model)
    else:
      assert in_ckpt == model
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


def test_estimator_unused_listed_slots_and_step_ignored(estimator, tmp_path):
  """Estimator checkpoint: slots, beta*_power, global_step skipped; a stray model
  variable (even with its own Adam slots) and a missing one reported."""
  r = estimator.reader
  tensors = {n: r.get_tensor(n) for n in r.get_variable_to_shape_map()}
  stray = "Discriminator/discriminator/d_block9/sn_conv1/sn_conv1/kernel"
  for suffix in ("", "/Adam", "/Adam_1"):
    tensors[stray + suffix] = np.zeros([3, 3, 1, 1], np.float32)
  gone = "Generator/generator/g_bn/gamma"
  del tensors[gone]  # its slots stay behind, as training state
  bad = str(tmp_path / "bad" / "model.ckpt-3")
  _write_tf1_checkpoint(bad, tensors)
  with pytest.raises(convert.CheckpointMismatchError) as e:
    convert.load_tf1_checkpoint(bad, "tfgan_estimator")
  msg = str(e.value)
  assert f"left unused (1):\n  {stray}" in msg
  assert "not found in the checkpoint (1)" in msg and f"  {gone} (for" in msg
  for word in ("Adam", "beta1_power", "global_step", "_train/"):
    assert word not in msg, word


def test_workdir_step_is_the_checkpoint_global_step(fixtures_dir, tmp_path):
  """Issue 13: the workdir's checkpoint is ckpt-N at step N = global_step."""
  src = os.path.join(fixtures_dir, "official_small", "ckpt")
  reader = convert.open_checkpoint(src)
  assert "global_step" not in reader.get_variable_to_shape_map()
  assert convert.checkpoint_step(reader) == 0  # no global_step: step 0
  tensors = {n: reader.get_tensor(n) for n in reader.get_variable_to_shape_map()}
  tensors["global_step"] = np.int64(123456)
  src = str(tmp_path / "stepped" / "model.ckpt-123456")
  _write_tf1_checkpoint(src, tensors)
  _, path, step = convert.convert_to_workdir(src, "official", str(tmp_path / "b"))
  assert step == 123456 and path.endswith("ckpt-123456")
  assert ckpt_lib.latest_checkpoint(str(tmp_path / "b")) == path
  _, g, _, loaded_step = state_lib.load_models(str(tmp_path / "b"))
  assert loaded_step == 123456
  ref = np.load(os.path.join(fixtures_dir, "official_small", "reference.npz"))
  _close_images(g(ref["z"], ref["y_gen"], training=False), ref["g_eval"])


@pytest.mark.parametrize("value", [np.float32(3.0), np.int64(-1),
                                   np.array([1, 2], np.int64)])
def test_bad_global_step_named(tmp_path, value):
  prefix = str(tmp_path / "model.ckpt")
  _write_tf1_checkpoint(prefix, {"global_step": value})
  with pytest.raises(convert.CheckpointMismatchError, match="global_step is"):
    convert.checkpoint_step(convert.open_checkpoint(prefix))
  _write_tf1_checkpoint(prefix, {"global_step": np.int32(7)})
  assert convert.checkpoint_step(convert.open_checkpoint(prefix)) == 7


def test_training_state_rule():
  for name in ("global_step", "beta1_power", "beta2_power_3", "d_step",
               "generator_train/beta1_power", "discriminator_train/beta2_power",
               "dummy_global_step_generator",
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


def test_cli_round_trip(tmp_path):
  """launch.convert reads a GANEstimator checkpoint (scopes found, slots skipped)
  into a workdir at its global_step that load_models reads back."""
  src = os.path.join(DATA, "tfgan_estimator_a", "ckpt")
  out = tmp_path / "wd"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(
      [sys.executable, "-m", "launch.convert", f"--source={src}",
       "--layout=tfgan_estimator", f"--output={out}"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert ckpt_lib.latest_checkpoint(str(out)).endswith("ckpt-3")
  config, g, d, step = state_lib.load_models(str(out))
  assert step == 3
  assert (config.variant, config.num_classes, config.gf_dim, config.df_dim,
          config.z_dim, config.image_size, config.g_attention) == (
              "tfgan_estimator", 5, 2, 4, 16, 128, (32,))
  ref = np.load(os.path.join(DATA, "tfgan_estimator_a", "reference.npz"))
  _close_images(g(ref["z"], ref["y_gen"], training=False), ref["g_eval"])
  _close_logits(d(ref["x_real"], ref["y_real"], training=True), ref["d_real"])
  # A second conversion into the same workdir is refused.
  with pytest.raises(FileExistsError):
    convert.convert_to_workdir(src, "tfgan_estimator", str(out))
