r"""Writes a TF1 checkpoint and reference outputs with the official SAGAN code.

Runs brain-research/self-attention-gan's ``ops.py``, ``non_local.py``,
``generator.py`` and ``discriminator.py`` UNMODIFIED (they are imported from
``--official_src``; nothing of them is copied here) under TF 2.x
``tf.compat.v1`` graph mode (RefVariables, as TF 1.5), by putting a stand-in
``tensorflow`` module in ``sys.modules`` while they are imported: ``tf.compat.v1``
plus the few pieces TF 2 no longer has (``tools/official_shim.py`` lists them).

Protocol (as ../shared/fixtures/official_small): build the generator
(``is_training`` False and True) and the discriminator (real pass
``update_collection=None``, fake pass ``'NO_OPS'``) with ``tf.set_random_seed``,
initialise, give biases / BN statistics / CBN parameters / ``sigma_ratio``
non-trivial values drawn from ``np.random.RandomState(assign_seed)`` in variable
creation order (so they matter), save the checkpoint, then restore it before each
measurement (g_eval, g_train, d_real, d_fake on g_eval, g_train with UPDATE_OPS),
each one ``session.run``. Writes ``ckpt/model.ckpt``, ``reference.npz`` (keys
as the shared fixture, except that ``g_train_with_updates`` is replaced by the flag
``g_train_with_updates_equals_g_train`` and there are no ``u_pick*`` keys) and
``config.json`` into ``--output``.

``--official_src=PATH``: a folder holding the unmodified official code (never
commit it), e.g. extracted from a checkout::

    mkdir -p PATH && git --git-dir=CHECKOUT/self-attention-gan/.git \
        archive HEAD | tar -x -C PATH

The repository's tests use ``../shared/official_src`` (commit ad9612e, with a
``SOURCE.txt`` naming it). ``config.json`` records the commit the tool ran:
``--official_commit`` when given, else the git ``HEAD`` of ``PATH`` when it is a
checkout, else the commit named in ``PATH/SOURCE.txt`` (``official_shim.git_commit``),
next to the sha256 of every official file imported.

The two fixtures under tests/data were written with::

    python tools/make_official_reference.py --official_src=PATH \
        --output=tests/data/official_a --gf_dim=4 --df_dim=4 --num_classes=7 \
        --batch_size=2 --tf_seed=11 --assign_seed=22 --input_seed=33 \
        --official_commit=ad9612e60f6ba2b5ad3d3340ebae60f724636d75
    python tools/make_official_reference.py --official_src=PATH \
        --output=tests/data/official_b64 --gf_dim=4 --df_dim=8 --num_classes=5 \
        --z_dim=16 --generator_type=test_64 --discriminator_type=test_64 \
        --batch_size=1 --tf_seed=5 --assign_seed=6 --input_seed=9 \
        --official_commit=ad9612e60f6ba2b5ad3d3340ebae60f724636d75

(``official_b64``: attention at 64x64 on both sides, which needs df_dim >= 8 for
the discriminator's C/8 channels; batch 1 and z_dim 16 keep it near 3 MB.)

Faithfulness check against the shared fixture (same seeds and sizes; with
``--compare_to`` the tool reports every max difference and fails on one above
1e-5 relative to the reference's scale)::

    python tools/make_official_reference.py --official_src=PATH \
        --output=/tmp/official_small_again --gf_dim=8 --df_dim=8 --num_classes=10 \
        --batch_size=4 --tf_seed=1234 --assign_seed=2024 --input_seed=7 \
        --compare_to=../shared/fixtures/official_small/reference.npz
"""
import contextlib
import io
import json
import os
import sys

from absl import app
from absl import flags
import numpy as np

from official_shim import FN_NAMES, IMAGE_SIZE, OFFICIAL_MODULES  # noqa: E402
from official_shim import git_commit, import_official, sha256, value_for  # noqa: E402
from official_shim import reference_inputs  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("official_src", None, "Checkout of self-attention-gan.")
flags.DEFINE_string("output", None, "Directory to write.")
flags.DEFINE_integer("gf_dim", 4, "Generator width.")
flags.DEFINE_integer("df_dim", 4, "Discriminator width.")
flags.DEFINE_integer("num_classes", 7, "Number of classes.")
flags.DEFINE_integer("z_dim", 128, "Noise size.")
flags.DEFINE_integer("batch_size", 2, "Batch of the reference inputs.")
flags.DEFINE_enum("generator_type", "test", ["test", "test_64", "baseline"],
                  "generator_test, generator_test_64 or generator (no attention).")
flags.DEFINE_enum("discriminator_type", "test", ["test", "test_64", "baseline"],
                  "discriminator_test, discriminator_test_64 or discriminator.")
flags.DEFINE_integer("tf_seed", 1234, "tf.set_random_seed (weights, u).")
flags.DEFINE_integer("assign_seed", 2024, "RandomState for biases, BN, sigma_ratio.")
flags.DEFINE_integer("input_seed", 7, "RandomState for z, labels, real images.")
flags.DEFINE_string("compare_to", None, "A reference.npz to compare against.")
flags.DEFINE_string("official_commit", None,
                    "Commit of --official_src to record when it is not a git "
                    "checkout (e.g. extracted with git archive).")
flags.mark_flags_as_required(["official_src", "output"])

def make_reference(mods, tf, cfg, out_dir):
  """Builds the graph, writes the checkpoint; returns (npz dict, assigned names)."""
  v1 = tf.compat.v1
  gen_fn = getattr(mods["generator"], "generator" + FN_NAMES[cfg["generator_type"]])
  dis_fn = getattr(mods["discriminator"],
                   "discriminator" + FN_NAMES[cfg["discriminator_type"]])
  b, s, nc = cfg["batch_size"], IMAGE_SIZE, cfg["num_classes"]
  inputs = reference_inputs(cfg, s)

  graph = v1.Graph()
  with graph.as_default(), contextlib.redirect_stdout(io.StringIO()):
    v1.set_random_seed(cfg["tf_seed"])
    z = v1.placeholder(tf.float32, [b, cfg["z_dim"]])
    y_gen = v1.placeholder(tf.int32, [b])
    x_real = v1.placeholder(tf.float32, [b, s, s, 3])
    y_real = v1.placeholder(tf.int32, [b])
    x_fake = v1.placeholder(tf.float32, [b, s, s, 3])
    gf, df = cfg["gf_dim"], cfg["df_dim"]
    g_eval = gen_fn(z, y_gen, gf, nc, is_training=False)
    g_train = gen_fn(z, y_gen, gf, nc, is_training=True)
    d_real = dis_fn(x_real, y_real, df, nc, update_collection=None)
    d_fake = dis_fn(x_fake, y_gen, df, nc, update_collection="NO_OPS")
    update_ops = v1.get_collection(v1.GraphKeys.UPDATE_OPS)
    variables = v1.global_variables()
    names = [v.op.name for v in variables]
    g_u = [v for v in variables if v.op.name.endswith("/u")
           and "/d_" not in v.op.name]
    d_u = [v for v in variables if v.op.name.endswith("/u") and "/d_" in v.op.name]
    bn = [v for v in variables
          if v.op.name.rsplit("/", 1)[-1] in ("mean", "var", "moving_mean",
                                               "moving_variance")]
    saver = v1.train.Saver(variables, save_relative_paths=True)
    init = v1.global_variables_initializer()
  prefix = os.path.join(out_dir, "ckpt", "model.ckpt")
  os.makedirs(os.path.dirname(prefix), exist_ok=True)

  key = lambda tag, v: f"{tag}__{v.op.name.replace('/', '__')}"
  ref = dict(inputs)
  feed = {z: inputs["z"], y_gen: inputs["y_gen"], x_real: inputs["x_real"],
          y_real: inputs["y_real"]}
  with v1.Session(graph=graph) as sess:
    sess.run(init)
    rs = np.random.RandomState(cfg["assign_seed"])
    assigned = []
    for var, name in zip(variables, names):
      value = value_for(name, var.shape.as_list(), rs)
      if value is not None:
        var.load(np.asarray(value, np.float32), sess)
        assigned.append(name)
    saver.save(sess, prefix, write_meta_graph=False)
    read = lambda vs, tag: {key(tag, v): val for v, val in zip(vs, sess.run(vs))}
    ref.update(read(g_u + d_u, "u_init"))
    ref.update(read(bn, "bn_init"))

    saver.restore(sess, prefix)
    ref["g_eval"] = sess.run(g_eval, feed)
    ref.update(read(g_u, "u_after_g_eval"))
    saver.restore(sess, prefix)
    ref["g_train"] = sess.run(g_train, feed)
    ref.update(read(g_u, "u_after_g_train"))
    saver.restore(sess, prefix)
    ref["d_real"] = sess.run(d_real, feed)
    ref.update(read(d_u, "u_after_d_real"))
    saver.restore(sess, prefix)
    before = sess.run(d_u)
    ref["d_fake"] = sess.run(d_fake, {x_fake: ref["g_eval"], y_gen: inputs["y_gen"]})
    ref["d_fake_y"] = inputs["y_gen"]
    ref["d_fake_changed_u"] = np.array(any(
        not np.array_equal(a, c) for a, c in zip(before, sess.run(d_u))))
    saver.restore(sess, prefix)
    with_updates, _ = sess.run([g_train, update_ops], feed)
    ref.update(read(bn, "bn_after_update"))
  # Kept as a flag rather than a copy of g_train, to keep the fixtures small.
  ref["g_train_with_updates_equals_g_train"] = np.array(
      np.array_equal(with_updates, ref["g_train"]))
  return ref, assigned, len(variables)


def compare(ref, path):
  """Max |difference| per shared key, scaled by the reference's max |value|."""
  other = np.load(path)
  worst, lines = 0.0, []
  for k in sorted(set(ref) & set(other.files)):
    a, c = np.asarray(ref[k]), np.asarray(other[k])
    if a.shape != c.shape:
      lines.append(f"{k}: shape {a.shape} vs {c.shape}")
      worst = np.inf
      continue
    if a.dtype == bool or np.issubdtype(a.dtype, np.integer):
      diff = float(np.any(a != c))
    else:
      diff = float(np.abs(a - c).max() / max(np.abs(c).max(), 1e-6))
    worst = max(worst, diff)
    lines.append(f"{k}: {diff:.3g}")
  missing = sorted(set(other.files) - set(ref))
  return worst, lines, missing


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_v2_behavior()
  cfg = dict(z_dim=FLAGS.z_dim, gf_dim=FLAGS.gf_dim, df_dim=FLAGS.df_dim,
             num_classes=FLAGS.num_classes, image_size=IMAGE_SIZE,
             batch_size=FLAGS.batch_size, generator_type=FLAGS.generator_type,
             discriminator_type=FLAGS.discriminator_type, tf_seed=FLAGS.tf_seed,
             assign_seed=FLAGS.assign_seed, input_seed=FLAGS.input_seed)
  mods = import_official(os.path.abspath(FLAGS.official_src), tf)
  os.makedirs(FLAGS.output, exist_ok=True)
  ref, assigned, num_vars = make_reference(mods, tf, cfg, FLAGS.output)
  np.savez_compressed(os.path.join(FLAGS.output, "reference.npz"), **ref)
  cfg.update(
      generator_fn="generator.generator" + FN_NAMES[cfg["generator_type"]],
      discriminator_fn="discriminator.discriminator"
      + FN_NAMES[cfg["discriminator_type"]],
      source=dict(repo="brain-research/self-attention-gan",
                  commit=git_commit(FLAGS.official_src,
                                    FLAGS.official_commit),
                  sha256={m + ".py": sha256(os.path.join(FLAGS.official_src,
                                                          m + ".py"))
                          for m in OFFICIAL_MODULES},
                  modified=False),
      written_by="tools/make_official_reference.py (see its docstring for the "
                 "tf shim, value assignment and protocol)",
      runtime=f"tensorflow {tf.__version__} compat.v1 graph mode "
              f"(disable_v2_behavior), numpy {np.__version__}",
      checkpoint=dict(path="ckpt/model.ckpt", variables=num_vars),
      assigned_variables=assigned)
  with open(os.path.join(FLAGS.output, "config.json"), "w") as f:
    json.dump(cfg, f, indent=1)
    f.write("\n")
  print(f"Wrote {FLAGS.output}: {num_vars} variables, {len(ref)} reference arrays.")
  if FLAGS.compare_to:
    worst, lines, missing = compare(ref, FLAGS.compare_to)
    print("\n".join(lines))
    if missing:
      print(f"Keys only in {FLAGS.compare_to}: {missing}")
    print(f"Worst scaled difference: {worst:.3g}")
    if worst > 1e-5:
      sys.exit(1)


if __name__ == "__main__":
  app.run(main)
