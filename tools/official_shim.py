"""Runs the unmodified official SAGAN modules under TF 2.x ``tf.compat.v1``.

Shared by ``tools/make_official_reference.py`` (forward references) and
``tools/make_official_train_reference.py`` (training references). The official
modules are imported at run time from a user-given checkout of
brain-research/self-attention-gan; nothing of them is copied here.

While they are imported, ``sys.modules["tensorflow"]`` is a stand-in module:
``tf.compat.v1`` plus the few pieces TF 2 no longer has:

* ``tf.contrib.layers.xavier_initializer`` -> ``glorot_uniform_initializer`` (the
  same distribution: uniform, fan_avg, scale 1).
* ``tf.contrib.layers.batch_norm`` (only ``ops.batch_norm``, the generator's
  ``g_bn``, uses it) -> the TF 1.5 fused ``tf.layers.BatchNormalization`` it
  dispatched to: variables gamma, beta, moving_mean, moving_variance (in that
  order), ``tf.nn.fused_batch_norm`` with epsilon clamped to 1.001e-5, in
  training the moving statistics updated through ``UPDATE_OPS`` as
  ``v -= (v - batch_stat) * (1 - decay)`` with the fused op's (Bessel-corrected)
  batch variance; in inference the moving statistics.
* ``tf.layers.max_pooling2d`` (unavailable with Keras 3) -> ``tf.nn.max_pool``
  with 'VALID' padding, the op it builds.
* ``tf.contrib.gan`` (``model.py`` only uses ``tfgan.eval.image_grid`` for image
  summaries) -> a stand-in whose ``image_grid`` returns its input: summaries are
  never run by the tools.
* ``keep_dims`` needs no shim: ``tf.compat.v1`` still takes it.
  The modules' ``print`` calls only run at graph build; their output is dropped.

Run with ``tf.compat.v1.disable_v2_behavior()`` first: graph mode with
RefVariables, as TF 1.5 executed the official code (an op that takes a
RefVariable reads it when the op runs).
"""
import contextlib
import functools
import glob
import hashlib
import importlib
import io
import os
import re
import subprocess
import sys
import types

import numpy as np

OFFICIAL_MODULES = ("ops", "non_local", "generator", "discriminator")
IMAGE_SIZE = 128  # the official generators and discriminators are 128x128 only
FN_NAMES = {"test": "_test", "test_64": "_test_64", "baseline": ""}


def tf_shim(tf):
  """``tf.compat.v1`` plus the TF1 pieces the official modules use (see top)."""
  v1 = tf.compat.v1

  def xavier_initializer(uniform=True, seed=None, dtype=tf.float32):
    assert uniform, "the official code uses the uniform Xavier initializer"
    return v1.glorot_uniform_initializer(seed=seed, dtype=dtype)

  def batch_norm(inputs, decay=0.999, center=True, scale=False, epsilon=0.001,
                 is_training=True, scope=None, **unused):
    assert center and scale and not unused, unused
    c = int(inputs.shape[-1])
    with v1.variable_scope(scope, default_name="BatchNorm"):
      gamma = v1.get_variable("gamma", [c], initializer=v1.ones_initializer())
      beta = v1.get_variable("beta", [c], initializer=v1.zeros_initializer())
      collections = [v1.GraphKeys.GLOBAL_VARIABLES,
                     v1.GraphKeys.MOVING_AVERAGE_VARIABLES]
      moving_mean = v1.get_variable(
          "moving_mean", [c], initializer=v1.zeros_initializer(),
          trainable=False, collections=collections)
      moving_variance = v1.get_variable(
          "moving_variance", [c], initializer=v1.ones_initializer(),
          trainable=False, collections=collections)
      eps = max(epsilon, 1.001e-5)  # the fused kernel's minimum (TF 1.5)
      if not is_training:
        out, _, _ = v1.nn.fused_batch_norm(
            inputs, gamma, beta, mean=moving_mean, variance=moving_variance,
            epsilon=eps, is_training=False)
        return out
      out, mean, variance = v1.nn.fused_batch_norm(inputs, gamma, beta,
                                                   epsilon=eps, is_training=True)
      one_minus_decay = v1.constant(1.0 - decay, tf.float32)
      for var, value in ((moving_mean, mean), (moving_variance, variance)):
        v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, v1.assign_sub(
            var, (var - value) * one_minus_decay))
      return out

  def max_pooling2d(inputs, pool_size, strides, padding="valid", **unused):
    assert not unused and padding.lower() == "valid", unused
    size = [pool_size] * 2 if np.isscalar(pool_size) else list(pool_size)
    stride = [strides] * 2 if np.isscalar(strides) else list(strides)
    return v1.nn.max_pool(inputs, [1] + size + [1], [1] + stride + [1], "VALID")

  def image_grid(input_tensor, grid_shape=None, image_shape=None, **unused):
    del grid_shape, image_shape, unused
    return input_tensor

  class Shim(types.ModuleType):

    def __getattr__(self, name):
      return getattr(v1, name)

  shim = Shim("tensorflow")
  shim.contrib = types.SimpleNamespace(
      layers=types.SimpleNamespace(xavier_initializer=xavier_initializer,
                                   batch_norm=batch_norm),
      gan=types.SimpleNamespace(eval=types.SimpleNamespace(image_grid=image_grid)))
  shim.layers = types.SimpleNamespace(max_pooling2d=max_pooling2d)
  return shim


def absl_flags_shim(flag_values):
  """An ``absl`` package whose ``flags`` define into ``flag_values``.

  ``model.py`` defines absl flags at import (``gf_dim``, ``loss_type``...) and
  reads them at graph build; defining them into a private ``FlagValues`` keeps
  them apart from the tool's own flags.
  """
  from absl import flags as real  # pylint: disable=g-import-not-at-top
  mod = types.ModuleType("absl.flags")
  for name in dir(real):
    if name.startswith("DEFINE"):
      setattr(mod, name, functools.partial(getattr(real, name),
                                           flag_values=flag_values))
  mod.FLAGS = flag_values
  pkg = types.ModuleType("absl")
  pkg.flags = mod
  return {"absl": pkg, "absl.flags": mod}


def import_official(src, tf, names=OFFICIAL_MODULES, stubs=None):
  """Imports the official modules unmodified against the shim; returns them.

  Args:
    src: path of the official checkout.
    tf: the real ``tensorflow`` module.
    names: module names to import from ``src`` (in this order).
    stubs: optional ``{module name: module}`` put into ``sys.modules`` during
      the import (e.g. a stand-in for ``utils_ori``, which needs scipy.misc).
  """
  stubs = dict(stubs or {})
  stubs["tensorflow"] = tf_shim(tf)
  saved = {name: sys.modules.get(name) for name in stubs}
  sys.modules.update(stubs)
  sys.path.insert(0, src)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      mods = {name: importlib.import_module(name) for name in names}
  finally:
    sys.path.remove(src)
    for name, module in saved.items():
      if module is None:
        sys.modules.pop(name, None)
      else:
        sys.modules[name] = module
    for name in names:  # generic names: keep them out of sys.modules
      sys.modules.pop(name, None)
  return mods


def value_for(name, shape, rs):
  """The non-trivial value of a bias / BN / CBN / sigma_ratio variable, or None.

  Freshly initialised, these are 0 or 1, which would leave whole code paths
  (the attention gate, the CBN statistics) untested.
  """
  leaf = name.rsplit("/", 1)[-1]
  if leaf == "sigma_ratio":
    return rs.uniform(0.5, 1.0, size=shape)
  if "/cbn_" in name or "/g_bn/" in name:
    if leaf == "gamma":
      return 1.0 + 0.1 * rs.randn(*shape)
    if leaf in ("beta", "mean", "moving_mean"):
      return 0.1 * rs.randn(*shape)
    if leaf in ("var", "moving_variance"):
      return rs.uniform(0.5, 1.5, size=shape)
  if leaf in ("biases", "bias"):
    return 0.05 * rs.randn(*shape)
  return None


def git_commit(src, override=None, wheel=None):
  """The commit (or release) of the code in ``src``, for a fixture to record.

  In order: ``override`` when given; the ``HEAD`` of ``src`` when ``src`` is the
  top of a git checkout (not a folder inside another repository, e.g. a
  site-packages inside a project's venv, whose HEAD says nothing about it); the
  40-digit commit named in ``src/SOURCE.txt`` (the note beside an extracted copy,
  as ``../shared/official_src``); with ``wheel`` (a distribution name such as
  ``tensorflow_gan``), the version of that installed wheel when its
  ``<wheel>-<version>.dist-info`` sits in ``src`` (a site-packages); else
  "unknown ...".
  """
  if override:
    return override
  try:
    top, head = subprocess.run(
        ["git", "-C", src, "rev-parse", "--show-toplevel", "HEAD"], check=True,
        capture_output=True, text=True).stdout.split()
    if os.path.realpath(top) == os.path.realpath(src):
      return head
  except (OSError, ValueError, subprocess.CalledProcessError):
    pass
  try:
    with open(os.path.join(src, "SOURCE.txt")) as f:
      found = re.search(r"\bcommit\s+([0-9a-f]{40})\b", f.read())
    if found:
      return found.group(1)
  except OSError:
    pass
  found = sorted(glob.glob(os.path.join(src, f"{wheel}-*.dist-info"))) if wheel else []
  if len(found) == 1:
    version = os.path.basename(found[0])[len(wheel) + 1:-len(".dist-info")]
    return f"{wheel} {version} (installed wheel; no commit)"
  return "unknown (not a git checkout and no SOURCE.txt; see sha256)"


def sha256(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def reference_inputs(cfg, image_size=IMAGE_SIZE):
  """Seeded inputs of a reference: z, generator labels, real images and labels.

  ``cfg`` gives ``input_seed``, ``batch_size``, ``z_dim`` and ``num_classes``.
  """
  b, nc = cfg["batch_size"], cfg["num_classes"]
  rs = np.random.RandomState(cfg["input_seed"])
  return dict(
      z=rs.randn(b, cfg["z_dim"]).astype(np.float32),
      y_gen=rs.randint(0, nc, size=b).astype(np.int32),
      x_real=rs.uniform(-1.0, 1.0, size=(b, image_size, image_size, 3)).astype(
          np.float32),
      y_real=rs.randint(0, nc, size=b).astype(np.int32))
