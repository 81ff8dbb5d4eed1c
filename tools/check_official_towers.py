r"""Tower batch norm against the official multi-tower graph, on 2 CPU devices.

Stage 1 (a subprocess in TF 1.x graph mode, ``tf.compat.v1.disable_v2_behavior``)
imports brain-research/self-attention-gan's modules UNMODIFIED from
``--official_src`` (through ``make_official_reference.import_official``; nothing of
them is copied here) and builds ``generator_test`` once per tower, as model.py's
multi-tower loop does: tower i on ``/cpu:i`` with its own slice of z and labels,
variables shared (``AUTO_REUSE``), every tower's moving-statistics updates in
``UPDATE_OPS``. Biases / BN / CBN values are made non-trivial, the generator's
spectral-norm ``u`` vectors are converged (the official G writes ``u`` on every
forward, so the towers would otherwise read different ``u``), and the checkpoint is
saved. Then, ``--trials`` times: restore, run all towers' outputs and ``UPDATE_OPS``
in ONE ``session.run`` (as the official D and G train ops did), record outputs and
moving statistics.

Stage 2 (TF 2 eager) converts the checkpoint with ``sagan_tf.interop.convert``, runs the
generator in training on the concatenated batch with ``bn_group_size`` = the
per-tower batch, and reports (a) the largest output difference from the official
towers (and, as a control, with ``bn_group_size=0``), (b) for every moving statistic
in every trial, which update rule the official value matches: both towers applied
in order (``sequential``, sagan_tf's rule), or a single tower's update
(``only tower i``: the other update was lost because both read the variable before
either wrote it).

Usage (``PATH``: the unmodified official code, as for make_official_reference.py;
the repository's tests use ``../shared/official_src`` and ``--trials=2``)::

    python tools/check_official_towers.py --official_src=PATH \
        --output=/tmp/official_towers
"""
import contextlib
import io
import os
import subprocess
import sys

from absl import app
from absl import flags
import numpy as np

# Defines --official_src and --output (required), used here as well.
import make_official_reference as mor  # pylint: disable=wrong-import-position
from official_shim import value_for  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_enum("stage", "all", ["all", "official", "compare"], "Internal.")
flags.DEFINE_integer("tower_batch", 2, "Examples per tower (2 towers).")
flags.DEFINE_integer("trials", 8, "Official session.runs to classify.")

TOWERS, Z_DIM, GF, DF, CLASSES = 2, 16, 4, 4, 7
STATS = ("mean", "var", "moving_mean", "moving_variance")


def _inputs(b):
  rs = np.random.RandomState(3)
  z = rs.randn(TOWERS * b, Z_DIM).astype(np.float32)
  # Different scales per tower, so the towers' moments differ clearly.
  z *= np.repeat(np.linspace(0.5, 3.0, TOWERS), b)[:, None].astype(np.float32)
  return z, rs.randint(0, CLASSES, TOWERS * b).astype(np.int32)


def official_stage(src, out_dir, b, trials):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_v2_behavior()
  v1 = tf.compat.v1
  mods = mor.import_official(os.path.abspath(src), tf)
  z, y = _inputs(b)
  graph = v1.Graph()
  with graph.as_default(), contextlib.redirect_stdout(io.StringIO()):
    v1.set_random_seed(5)
    gen = mods["generator"].generator_test
    g_eval = gen(tf.constant(z), tf.constant(y), GF, CLASSES, is_training=False)
    towers = []
    for i in range(TOWERS):
      with v1.device(f"/cpu:{i}"), v1.name_scope(f"device_{i}"):
        part = slice(i * b, (i + 1) * b)
        towers.append(gen(tf.constant(z[part]), tf.constant(y[part]), GF, CLASSES,
                          is_training=True))
    # The discriminator only completes the checkpoint for sagan_tf.interop.convert.
    mods["discriminator"].discriminator_test(
        tf.zeros([b, 128, 128, 3]), tf.constant(y[:b]), DF, CLASSES,
        update_collection=None)
    update_ops = v1.get_collection(v1.GraphKeys.UPDATE_OPS)
    variables = v1.global_variables()
    stats = [v for v in variables if v.op.name.rsplit("/", 1)[-1] in STATS]
    saver = v1.train.Saver(variables)
    init = v1.global_variables_initializer()
  config = v1.ConfigProto(device_count={"CPU": TOWERS})
  arrays = dict(z=z, y=y)
  with v1.Session(graph=graph, config=config) as sess:
    sess.run(init)
    rs = np.random.RandomState(11)
    for var in variables:
      value = value_for(var.op.name, var.shape.as_list(), rs)
      if value is not None:
        var.load(np.asarray(value, np.float32), sess)
    for _ in range(200):  # power iteration to convergence: u' == u
      sess.run(g_eval)
    prefix = saver.save(sess, os.path.join(out_dir, "ckpt", "model.ckpt"),
                        write_meta_graph=False)
    for t in range(trials):
      saver.restore(sess, prefix)
      results = sess.run(towers + [update_ops])
      arrays[f"g_train_{t}"] = np.concatenate(results[:TOWERS])
      arrays.update({f"after{t}__{v.op.name}": a
                     for v, a in zip(stats, sess.run(stats))})
  np.savez(os.path.join(out_dir, "official.npz"), **arrays)


def compare_stage(out_dir, b, trials):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from sagan_tf.interop import convert  # pylint: disable=g-import-not-at-top
  from sagan_tf.layers import normalization  # pylint: disable=g-import-not-at-top
  from sagan_tf import tf_compat  # pylint: disable=g-import-not-at-top
  norm_layers = (normalization.BatchNorm, normalization.ConditionalBatchNorm)
  ref = np.load(os.path.join(out_dir, "official.npz"))
  z, y = ref["z"], ref["y"]
  prefix = os.path.join(out_dir, "ckpt", "model.ckpt")

  def run(zz, yy, group):
    g, _ = convert.load_tf1_checkpoint(prefix, "official", num_classes=CLASSES)
    for layer in tf_compat.sublayers(g):
      if isinstance(layer, norm_layers):
        layer.group_size = group
    out = g(tf.constant(zz), tf.constant(yy), training=True).numpy()
    stats = {name: var.numpy()
             for name, var, *_ in convert.generator_name_map(g, "official")
             if name.rsplit("/", 1)[-1] in STATS}
    return out, stats

  out, sequential = run(z, y, b)
  control, _ = run(z, y, 0)
  print(f"max |official towers - sagan_tf bn_group_size={b}|: "
        f"{np.abs(out - ref['g_train_0']).max():.3g}")
  print(f"control, bn_group_size=0: {np.abs(control - ref['g_train_0']).max():.3g}")
  rules = {"sequential": sequential}
  for i in range(TOWERS):
    part = slice(i * b, (i + 1) * b)
    rules[f"only tower {i}"] = run(z[part], y[part], b)[1]
  for t in range(trials):
    counts = {}
    for name in sequential:
      got = ref[f"after{t}__{name}"]
      diffs = {r: np.abs(v[name] - got).max() for r, v in rules.items()}
      best = min(diffs, key=diffs.get)
      key = f"{best} ({'g_bn' if '/g_bn/' in name else 'CBN'})"
      counts[key] = counts.get(key, 0) + 1
      if diffs[best] > 1e-5:
        print(f"  trial {t} {name}: no rule within 1e-5 ({diffs[best]:.3g})")
    print(f"trial {t}: variables matching each rule: {counts}")


def main(argv):
  del argv
  os.makedirs(FLAGS.output, exist_ok=True)
  if FLAGS.stage in ("all", "official"):
    if FLAGS.stage == "all":  # TF1 graph mode is process-wide: own process
      subprocess.run([sys.executable, os.path.abspath(__file__),
                      f"--official_src={FLAGS.official_src}",
                      f"--output={FLAGS.output}", "--stage=official",
                      f"--tower_batch={FLAGS.tower_batch}",
                      f"--trials={FLAGS.trials}"], check=True)
    else:
      official_stage(FLAGS.official_src, FLAGS.output, FLAGS.tower_batch,
                     FLAGS.trials)
  if FLAGS.stage in ("all", "compare"):
    compare_stage(FLAGS.output, FLAGS.tower_batch, FLAGS.trials)


if __name__ == "__main__":
  app.run(main)
