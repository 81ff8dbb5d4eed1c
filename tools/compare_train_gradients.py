r"""Gradients of sagan_tf's train step against the official graph's, op by op.

Diagnoses a training fixture written by ``make_official_train_reference.py``
(``--output`` is that fixture's directory; sizes, seeds and inputs come from its
``config.json``; the other size flags of that tool are ignored here).

Stage ``official`` (a subprocess in TF 1.x graph mode) builds the same
unmodified official ``model.py`` graph with that tool's code and runs the same
(D op, G op) sequence from the fixture's checkpoint. ``AdamOptimizer.
apply_gradients`` is wrapped (only to keep a handle on its ``grads_and_vars``),
and each op's ``session.run`` also fetches the very gradient tensors that
``apply_gradients`` consumed (so RefVariable read timing is that of the train
op), sparse ones summed into dense arrays. Writes ``gradients.npz``:
``before_<d|g><i>__<var>`` (every model variable before the op) and
``grad_<d|g><i>__<var>``. Fetching the gradients can move float rounding (in the
gf=df=8 config of docs/official_training.md one element by 1.5e-8); it prints how many
variables end different from ``reference.npz``.

Stage ``compare`` (TF 2 eager): before each op, sets sagan_tf's models to the
official state before that op, runs ``TrainStep.d_step`` or ``g_step`` with the
recorded inputs and optimizers that only record the gradients (``TrainStep``'s
``variable_reads`` from ``--variable_reads``), and prints per
variable ``max |ours - official| / max |official|``. Then it runs TF1-form Adam
(beta1 0) over both gradient sequences (each gradient taken at the official
state, so no drift between the two) and counts elements that end more than
1e-5 apart. ``--perturb`` also steps sagan_tf twice from the checkpoint, once
with every trainable weight moved by one float32 ulp, and reports how far the two
sagan_tf trajectories drift apart (float sensitivity of training itself).

Usage (official source as in make_official_train_reference.py; never commit it)::

    python tools/compare_train_gradients.py --official_src=/tmp/official_src \
        --output=/tmp/my_fixture --perturb
"""
import contextlib
import io
import json
import os
import subprocess
import sys

from absl import app
from absl import flags
import numpy as np

# Defines --official_src and --output (required), used here as well.
import make_official_train_reference as mtr  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_enum("stage", "all", ["all", "official", "compare"], "Internal.")
flags.DEFINE_enum("variable_reads", "tf1", ["tf1", "resource"], "TrainStep's "
                  "variable_reads in the compare stage ('resource' shows the "
                  "size of a missing mechanism).")
flags.DEFINE_boolean("perturb", False, "Also compare sagan_tf with itself from a "
                     "checkpoint moved by one ulp.")
ATOL = 1e-5


def official_stage(src, fixture):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_v2_behavior()
  v1 = tf.compat.v1
  with open(os.path.join(fixture, "config.json")) as f:
    cfg = json.load(f)
  recorded = []
  original = v1.train.AdamOptimizer.apply_gradients

  def keep(self, grads_and_vars, *args, **kwargs):
    grads_and_vars = list(grads_and_vars)
    recorded.append([(g, v) for g, v in grads_and_vars if g is not None])
    return original(self, grads_and_vars, *args, **kwargs)

  stub = mtr._utils_stub(v1, tf)  # pylint: disable=protected-access
  stubs = dict(mtr.absl_flags_shim(flags.FlagValues()), utils_ori=stub)
  mods = mtr.import_official(os.path.abspath(src), tf, mtr.MODULES, stubs)
  v1.train.AdamOptimizer.apply_gradients = keep
  try:
    graph, h = mtr.build(mods, stub, tf, cfg)
  finally:
    v1.train.AdamOptimizer.apply_gradients = original
  d_gv, g_gv = recorded  # model.py applies D's gradients first
  inputs = mtr.make_inputs(cfg)
  ref = np.load(os.path.join(fixture, "reference.npz"))
  names = [v.op.name for v in h.model_vars]
  out = {}
  with v1.Session(graph=graph) as sess, contextlib.redirect_stderr(io.StringIO()):
    sess.run(h.init)
    h.saver.restore(sess, os.path.join(fixture, "ckpt", "model.ckpt"))
    sess.run(h.init_others)
    for i in range(cfg["iterations"]):
      feed = {h.images: mtr.real_images(inputs["x_real_u8"][i]),
              h.labels: inputs["y_real"][i]}
      for tag, op, gv in (("d", h.d_op, d_gv), ("g", h.g_op, g_gv)):
        for name, value in zip(names, sess.run(h.model_vars)):
          out[f"before_{tag}{i}__{name}"] = value
        feed[h.zs] = inputs[f"z_{tag}"][i][None]
        feed[h.fake_class] = inputs[f"y_gen_{tag}"][i][:, None].astype(np.int64)
        grads = sess.run([op, [g for g, _ in gv]], feed)[1]
        for (g, v), value in zip(gv, grads):
          if isinstance(g, tf.IndexedSlices):  # as TF1 Adam: repeats summed
            dense = np.zeros(v.shape.as_list(), np.float32)
            np.add.at(dense, value.indices, value.values)
            value = dense
          out[f"grad_{tag}{i}__{v.op.name}"] = value
        moved = sum(
            1 for name, value in zip(names, sess.run(h.model_vars))
            if f"after_{tag}{i}__{name.replace('/', '__')}" in ref.files
            and not np.array_equal(
                ref[f"after_{tag}{i}__{name.replace('/', '__')}"], value))
        print(f"{tag} op {i}: {moved} variables differ from reference.npz")
  np.savez(os.path.join(fixture, "gradients.npz"), **out)


class _Recorder:
  """Stands in for an optimizer: keeps the gradients, changes no variable."""

  def __init__(self, model):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self.vars = model.trainable_variables
    self.grads = [tf.Variable(tf.zeros_like(v)) for v in self.vars]

  def apply_gradients(self, grads_and_vars):
    for (g, _), slot in zip(grads_and_vars, self.grads):
      slot.assign(g)


def _train_step(fixture, record=False, variable_reads="tf1"):
  """(TrainStep over the fixture's checkpoint and recorded noise, entries, ref)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from sagan_tf.interop import convert  # pylint: disable=g-import-not-at-top
  from sagan_tf.run import state as state_lib  # pylint: disable=g-import-not-at-top
  from sagan_tf.training import step as step_lib  # pylint: disable=g-import-not-at-top
  from sagan_tf.config import Config  # pylint: disable=g-import-not-at-top
  with open(os.path.join(fixture, "config.json")) as f:
    cfg = json.load(f)
  ref = np.load(os.path.join(fixture, "reference.npz"))
  g, d = convert.load_tf1_checkpoint(
      os.path.join(fixture, "ckpt", "model.ckpt"), "official")
  entries = (convert.generator_name_map(g, "official")
             + convert.discriminator_name_map(d, "official"))
  config = Config(
      image_size=g.image_size, num_classes=g.num_classes, z_dim=g.z_dim,
      gf_dim=g.gf_dim, df_dim=d.df_dim, g_attention=g.attention_resolutions,
      d_attention=d.attention_resolutions, variant="official",
      batch_size=int(cfg["batch_size"]), g_lr=cfg["g_lr"], d_lr=cfg["d_lr"],
      beta1=cfg["beta1"], beta2=cfg["beta2"],
      loss={"hinge_loss": "hinge", "kl_loss": "kl"}[cfg["loss_type"]],
      d_steps=1).validate()
  if record:
    g_opt, d_opt = _Recorder(g), _Recorder(d)
  else:
    g_opt, d_opt = state_lib.make_optimizers(config, g, d)
  z = tf.constant(np.stack([ref["z_d"], ref["z_g"]], axis=1))
  labels = tf.constant(np.stack([ref["y_gen_d"], ref["y_gen_g"]], axis=1))

  def noise_fn(batch, step, substep, replica_id):
    del batch, replica_id
    return z[step, substep], labels[step, substep]

  train = step_lib.TrainStep(config, tf.distribute.get_strategy(), g, d,
                             g_opt, d_opt,
                             state_lib.make_step_variable(), noise_fn=noise_fn,
                             variable_reads=variable_reads)
  return train, entries, ref, cfg


def compare_stage(fixture, variable_reads):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  off = np.load(os.path.join(fixture, "gradients.npz"))
  train, entries, ref, cfg = _train_step(fixture, record=True,
                                         variable_reads=variable_reads)
  x = mtr.real_images(ref["x_real_u8"])
  d_fn = tf.function(lambda im, y, i: train.d_step(im, y, i, 0), autograph=False)
  g_fn = tf.function(train.g_step, autograph=False)
  name_of = {id(v): n for n, v, _ in entries}
  seqs = {}
  for i in range(cfg["iterations"]):
    for tag in ("d", "g"):
      for name, var, _ in entries:
        var.assign(np.reshape(off[f"before_{tag}{i}__{name}"], var.shape))
      step = tf.constant(i, tf.int64)
      if tag == "d":
        d_fn(tf.constant(x[i]), tf.constant(ref["y_real"][i]), step)
        rec = train.d_optimizer
      else:
        g_fn(step)
        rec = train.g_optimizer
      rows = []
      for var, slot in zip(rec.vars, rec.grads):
        name = name_of[id(var)]
        theirs = np.reshape(off[f"grad_{tag}{i}__{name}"], -1)
        ours = np.reshape(slot.numpy(), -1)
        scale = float(np.abs(theirs).max())
        rows.append((float(np.abs(ours - theirs).max()) / max(scale, 1e-30),
                     name, scale))
        seqs.setdefault((tag, name), []).append((ours, theirs))
      weights = [r for r in rows if not r[1].endswith(("biases", "bias"))]
      biases = [r for r in rows if r[1].endswith(("biases", "bias"))]
      worst_b = max(biases, key=lambda r: r[0] * r[2])
      median = np.median([r[0] for r in weights])
      print(f"{tag} op {i}: max|diff|/max|g| over the {len(weights)} weight, "
            f"BN and gate variables: median {median:.1e}, "
            f"worst {max(weights)[0]:.1e} ({max(weights)[1]}); biases: largest "
            f"max|diff| {worst_b[0] * worst_b[2]:.1e} ({worst_b[1]}, max|g| "
            f"{worst_b[2]:.1e})")
  total = sum(np.size(off[f"before_d0__{n}"]) for n, _, _ in entries)
  _adam_replay(seqs, cfg, total)


def _adam_replay(seqs, cfg, total, b2=0.999, eps=1e-8):
  """TF1 Adam (beta1 0) over ours and the official gradient sequence."""
  lr = {"d": cfg["d_lr"], "g": cfg["g_lr"]}
  # Per variable: [params ours, params official, v ours, v official].
  state = {key: [0.0, 0.0, 0.0, 0.0] for key in seqs}
  for i in range(cfg["iterations"]):
    apart = small = 0
    for (tag, name), seq in seqs.items():
      ours, theirs = (s.astype(np.float64) for s in seq[i])
      st = state[(tag, name)]
      lr_t = lr[tag] * np.sqrt(1 - b2 ** (i + 1))
      for k, g in ((0, ours), (1, theirs)):
        st[2 + k] = b2 * st[2 + k] + (1 - b2) * g * g
        st[k] = st[k] - lr_t * g / (np.sqrt(st[2 + k]) + eps)
      apart += int(np.sum(np.abs(st[0] - st[1]) > ATOL))
      small += int(np.sum(np.abs(theirs) < 1e-6))
    print(f"Adam replay, after iteration {i + 1}: {apart} elements "
          f"({apart / total:.4%} of {total} model-variable elements) more than "
          f"{ATOL} apart; {small} official gradient elements below 1e-6")


def perturb_stage(fixture):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  runs = []
  for perturb in (False, True):
    train, entries, ref, cfg = _train_step(fixture)
    if perturb:
      rs = np.random.RandomState(0)
      for var in train.generator.trainable_variables + (
          train.discriminator.trainable_variables):
        value = var.numpy()
        var.assign(value * (1 + rs.choice([-1, 1], value.shape).astype(
            np.float32) * np.float32(2.0 ** -23)))
    batches = iter(tf.data.Dataset.from_tensor_slices(
        (mtr.real_images(ref["x_real_u8"]), ref["y_real"])))
    values = []
    for _ in range(cfg["iterations"]):
      train(batches)
      values.append(np.concatenate([np.reshape(v.numpy(), -1)
                                    for _, v, _ in entries]))
    runs.append(values)
  for i, (a, b) in enumerate(zip(*runs)):
    print(f"sagan_tf vs sagan_tf from weights moved by 1 ulp, after iteration "
          f"{i + 1}: {np.mean(np.abs(a - b) <= ATOL):.4%} of {a.size} elements "
          f"within {ATOL}")


def main(argv):
  del argv
  if FLAGS.stage in ("all", "official"):
    if FLAGS.stage == "all":  # TF1 graph mode is process-wide: own process
      subprocess.run([sys.executable, os.path.abspath(__file__),
                      f"--official_src={FLAGS.official_src}",
                      f"--output={FLAGS.output}", "--stage=official"], check=True)
    else:
      official_stage(FLAGS.official_src, FLAGS.output)
  if FLAGS.stage in ("all", "compare"):
    compare_stage(FLAGS.output, FLAGS.variable_reads)
    if FLAGS.perturb:
      perturb_stage(FLAGS.output)


if __name__ == "__main__":
  app.run(main)
