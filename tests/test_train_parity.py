"""TrainStep trains like the official code: parity with official training fixtures.

Each fixture (tests/data/official_train_*, written by
tools/make_official_train_reference.py with the unmodified official model.py under
tf.compat.v1 RefVariables) holds a TF1 checkpoint, the inputs of several (D op,
G op) iterations and the official variables and losses after each op. Here the
checkpoint is loaded with ``sagan_tf.interop.convert``, stepped by ``TrainStep`` with the
recorded real batches and, through ``noise_fn``, the recorded z and labels, and
compared after every iteration: at least 99.9% of all model-variable elements
(weights, ``u``, BN statistics; of a fixture written with ``--max_elements``, of
its stored elements) within 1e-5 of the official values, every loss within 2e-4
relative.

More fixtures (e.g. a reviewer's, written with other sizes) are picked up from
the directories listed in ``SAGAN_OFFICIAL_TRAIN_FIXTURES`` (``:``-separated).
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.interop import convert
from sagan_tf.run import state as state_lib
from sagan_tf.training import step as step_lib
from sagan_tf.config import Config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(REPO, "tests", "data")
FIXTURES = sorted(os.path.join(DATA, d) for d in os.listdir(DATA)
                  if d.startswith("official_train_"))
FIXTURES += [p for p in os.environ.get("SAGAN_OFFICIAL_TRAIN_FIXTURES",
                                       "").split(":") if p]
ATOL = 1e-5
MIN_FRACTION = 0.999
LOSS_RTOL = 2e-4
LOSSES = {"hinge_loss": "hinge", "kl_loss": "kl"}
METRIC_KEYS = ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")


def real_images(x_u8):
  """As the tool (and the official ``get_imagenet_batches``): x * 2/255 - 1."""
  return x_u8.astype(np.float32) * np.float32(2.0 / 255) - np.float32(1.0)


class Fixture:
  """A training fixture: config, recorded inputs, official state after each op."""

  def __init__(self, path):
    with open(os.path.join(path, "config.json")) as f:
      self.cfg = json.load(f)
    self.ref = np.load(os.path.join(path, "reference.npz"))
    self.prefix = os.path.join(path, "ckpt", "model.ckpt")
    self.iterations = int(self.cfg["iterations"])

  def view(self, name, value):
    """The stored elements of a variable's value: all, or the fixture's subset
    (``index__<var>``, written with the tool's ``--max_elements``), flat."""
    flat = np.reshape(value, [-1])
    key = "index__" + name.replace("/", "__")
    return flat[self.ref[key]] if key in self.ref.files else flat

  def official_after(self, state, tag, i):
    """Applies the i-th ``tag`` ('d' or 'g') op's changes to ``state`` (name ->
    flat stored elements)."""
    head = f"after_{tag}{i}__"
    for key in self.ref.files:
      if key.startswith(head):
        state[key[len(head):].replace("__", "/")] = np.reshape(self.ref[key], [-1])


def run_fixture(path, **step_kwargs):
  """Steps the fixture's checkpoint with TrainStep; returns per-iteration stats.

  Returns:
    list of dicts (one per iteration): ``fraction`` of model-variable elements
    within ATOL, ``worst`` [(max |diff|, name)] of the five worst variables,
    ``losses`` {name: (sagan_tf, official)}.
  """
  fx = Fixture(path)
  cfg, ref = fx.cfg, fx.ref
  g, d = convert.load_tf1_checkpoint(fx.prefix, "official")
  entries = (convert.generator_name_map(g, "official")
             + convert.discriminator_name_map(d, "official"))
  config = Config(
      image_size=g.image_size, num_classes=g.num_classes, z_dim=g.z_dim,
      gf_dim=g.gf_dim, df_dim=d.df_dim, g_attention=g.attention_resolutions,
      d_attention=d.attention_resolutions, variant="official",
      batch_size=int(cfg["batch_size"]), g_lr=cfg["g_lr"], d_lr=cfg["d_lr"],
      beta1=cfg["beta1"], beta2=cfg["beta2"], loss=LOSSES[cfg["loss_type"]],
      d_steps=1).validate()
  strategy = tf.distribute.get_strategy()
  g_opt, d_opt = state_lib.make_optimizers(config, g, d)
  step = state_lib.make_step_variable()
  # Recorded noise, indexed [iteration, substep]: substep 0 the D op, 1 the G op.
  z = tf.constant(np.stack([ref["z_d"], ref["z_g"]], axis=1))
  labels = tf.constant(np.stack([ref["y_gen_d"], ref["y_gen_g"]], axis=1))

  def noise_fn(batch, step_t, substep, replica_id):
    del batch, replica_id
    return z[step_t, substep], labels[step_t, substep]

  train = step_lib.TrainStep(config, strategy, g, d, g_opt, d_opt, step,
                             noise_fn=noise_fn, **step_kwargs)
  batches = tf.data.Dataset.from_tensor_slices(
      (real_images(ref["x_real_u8"]), ref["y_real"]))
  iterator = iter(batches)
  reader = tf.train.load_checkpoint(fx.prefix)
  official = {name: fx.view(name, reader.get_tensor(name))
              for name, _, _ in entries}
  stats = []
  for i in range(fx.iterations):
    metrics = {k: float(v) for k, v in train(iterator).items()}
    fx.official_after(official, "d", i)
    fx.official_after(official, "g", i)
    close = total = 0
    worst = []
    for name, var, _ in entries:
      diff = np.abs(fx.view(name, var.numpy()) - official[name])
      close += int(np.sum(diff <= ATOL))
      total += diff.size
      worst.append((float(diff.max()), name))
    stats.append(dict(
        fraction=close / total, worst=sorted(worst)[-5:],
        losses={k: (metrics[k], float(ref[k][i])) for k in METRIC_KEYS}))
  return stats


@pytest.mark.parametrize("path", FIXTURES, ids=os.path.basename)
def test_train_step_matches_official(path):
  stats = run_fixture(path)
  for i, s in enumerate(stats):
    assert s["fraction"] >= MIN_FRACTION, (
        f"iteration {i}: only {s['fraction']:.4%} of the model-variable elements "
        f"within {ATOL} of the official ones; worst {s['worst']}")
    for name, (ours, theirs) in s["losses"].items():
      assert abs(ours - theirs) <= LOSS_RTOL * abs(theirs), (
          f"iteration {i}: {name} {ours} vs official {theirs}")


def test_there_are_fixtures_with_attention_at_64_and_the_kl_loss():
  cfgs = []
  for path in FIXTURES:
    with open(os.path.join(path, "config.json")) as f:
      cfgs.append(json.load(f))
  assert any(c["generator_type"] == "test_64" for c in cfgs)
  assert any(c["loss_type"] == "kl_loss" for c in cfgs)
  assert all(c["iterations"] >= 3 for c in cfgs)
