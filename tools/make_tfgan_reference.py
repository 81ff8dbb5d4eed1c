r"""Writes a TF-GAN estimator checkpoint and reference outputs with TF-GAN's code.

Runs TF-GAN's own files UNMODIFIED, imported at run time from ``--tfgan_src`` (a
folder holding ``tensorflow_gan/``: a ``git archive`` of tensorflow/gan, or the
installed wheel's site-packages; nothing of them is copied here):

* ``examples/self_attention_estimator/{ops,generator,discriminator}.py`` (the
  networks) and ``examples/compat_utils.py``;
* ``python/features/spectral_normalization.py``, ``python/tpu/normalization_ops.py``
  (the library pieces the networks call as ``tfgan.features``/``tfgan.tpu``);
* ``python/train.py``: ``gan_model`` (the ``Generator``/``Discriminator`` variable
  scopes of ``GANEstimator``/``TPUGANEstimator``, D called on the generated data,
  then again on the real data with ``reuse=True``), ``gan_loss`` and
  ``gan_train_ops`` (two ``AdamOptimizer``s, ``global_step``), with the
  ``tuple_losses`` hinge losses ``self_attention_estimator/estimator_lib.py`` gives.

``import tensorflow_gan`` fails on TF >= 2.16 (its ``__init__`` imports the estimator
code), so the package ``__init__`` files are not run: empty package objects stand in
for them while the files above are imported, ``tensorflow_gan.features``/``.tpu``
point at the two library modules, and ``train.py``'s ``from tensorflow import
estimator`` gets a stand-in holding only the ``SessionRunHook`` base class it
subclasses (``tf.compat.v1.train.SessionRunHook``, the class ``tf.estimator``
re-exported). ``sys.modules`` and ``tensorflow`` are put back afterwards. The
tensorflow-gan 2.1.0 wheel's ``train.py`` calls ``inspect.getargspec``, which
Python 3.11 removed: on such a Python its module-level ``inspect`` is a stand-in
that adds ``getargspec`` (args, varargs, keywords, defaults, from
``inspect.getfullargspec``) to the real module's functions.
``tf.compat.v1.layers`` needs ``TF_USE_LEGACY_KERAS=1`` (tf_keras), set here.

What it builds, as the estimator's ``model_fn`` does in TRAIN mode, under
``tf.compat.v1`` graph mode (RefVariables, ``disable_v2_behavior``): the wrappers of
``train_experiment.py`` (generator ``training=True``, returning
``{'images', 'labels'}``; discriminator reading that dict) but with the generated
labels fed instead of drawn; ``gan_model``; ``gan_loss``; ``gan_train_ops``; and the
PREDICT-mode generator (``training=False``) in ``variable_scope('Generator')`` as
``make_prediction_gan_model`` builds it. It initialises, gives biases / BN statistics
/ CBN parameters / ``sigma_ratio`` non-trivial values (as
../shared/fixtures/tfgan_small: ``np.random.RandomState(assign_seed)`` in variable
creation order), runs ``--train_steps`` steps as ``get_sequential_train_hooks`` does
(generator op, discriminator op, then the ``global_step`` increment), which fills the
Adam slots and ``beta*_power``, and saves every global variable to
``ckpt/model.ckpt-<global_step>`` (with a ``checkpoint`` state file, as an estimator
model_dir). Then, restoring the checkpoint before each, it measures: the PREDICT
generator (``g_eval``), the TRAIN generator (``g_train``, and with its UPDATE_OPS:
``bn_after_update``), D on real data (``d_real``) and D's generated-data pass fed with
``g_eval`` (``d_fake``), with every ``u`` after each. ``reference.npz`` keys follow
../shared/fixtures/tfgan_small (``<tag>__<variable name, / as __>``), except that
``g_train_with_updates`` is replaced by ``g_train_with_updates_max_diff`` (the
moving-average updates run alongside move the output by ~1e-6, as in tfgan_small)
and ``global_step`` holds the step saved.

The fixture under tests/data was written with::

    mkdir -p /tmp/tfgan_src && git --git-dir=PATH/gan/.git archive HEAD \
        tensorflow_gan/python tensorflow_gan/examples/self_attention_estimator \
        tensorflow_gan/examples/compat_utils.py | tar -x -C /tmp/tfgan_src
    TF_CPP_MIN_LOG_LEVEL=2 python tools/make_tfgan_reference.py \
        --tfgan_src=/tmp/tfgan_src --output=tests/data/tfgan_estimator_a \
        --gf_dim=2 --df_dim=4 --num_classes=5 --z_dim=16 --batch_size=2 \
        --train_steps=3 --tf_seed=3 --assign_seed=4 --input_seed=5 \
        --tfgan_commit=bc369b7ec040f2c4f04e4daf29f60252118e72c7

(TF-GAN's example is 128x128 only; attention needs gf_dim >= 2 and df_dim >= 4 for
its C/8 channels.) ``tests/test_official_tools.py`` runs it with the same config
from the installed wheel (``--tfgan_src`` = the site-packages folder holding
``tensorflow_gan/``); ``config.json`` then records the wheel's version, as no
commit is known.
"""
import collections
import contextlib
import importlib
import inspect
import io
import json
import os
import sys
import types

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # before TF: tf.compat.v1.layers

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import numpy as np  # noqa: E402

import official_shim  # noqa: E402  (its git_commit, sha256, reference_inputs)

FLAGS = flags.FLAGS
flags.DEFINE_string("tfgan_src", None, "Folder holding TF-GAN's tensorflow_gan/.")
flags.DEFINE_string("output", None, "Directory to write.")
flags.DEFINE_integer("gf_dim", 2, "Generator width.")
flags.DEFINE_integer("df_dim", 4, "Discriminator width.")
flags.DEFINE_integer("num_classes", 5, "Number of classes.")
flags.DEFINE_integer("z_dim", 16, "Noise size.")
flags.DEFINE_integer("batch_size", 2, "Batch of the reference inputs.")
flags.DEFINE_integer("train_steps", 3, "Estimator train steps before saving.")
flags.DEFINE_float("generator_lr", 1e-4, "As train_experiment_main.py.")
flags.DEFINE_float("discriminator_lr", 4e-4, "As train_experiment_main.py.")
flags.DEFINE_float("beta1", 0.0, "As train_experiment_main.py.")
flags.DEFINE_integer("tf_seed", 1234, "tf.set_random_seed (weights, u).")
flags.DEFINE_integer("assign_seed", 2024, "RandomState for biases, BN, sigma_ratio.")
flags.DEFINE_integer("input_seed", 7, "RandomState for z, labels, real images.")
flags.DEFINE_string("tfgan_commit", None,
                    "Commit of --tfgan_src to record when it is not a git "
                    "checkout (an installed wheel's version is found itself).")
flags.mark_flags_as_required(["tfgan_src", "output"])

IMAGE_SIZE = 128  # TF-GAN's self_attention_estimator networks are 128x128 only
_PACKAGES = ("tensorflow_gan", "tensorflow_gan.python",
             "tensorflow_gan.python.features", "tensorflow_gan.python.tpu",
             "tensorflow_gan.python.losses", "tensorflow_gan.examples",
             "tensorflow_gan.examples.self_attention_estimator")
_SAGAN = "tensorflow_gan.examples.self_attention_estimator"
_MODULES = dict(
    sn="tensorflow_gan.python.features.spectral_normalization",
    bn="tensorflow_gan.python.tpu.normalization_ops",
    train="tensorflow_gan.python.train",
    losses="tensorflow_gan.python.losses.tuple_losses",
    generator=f"{_SAGAN}.generator",
    discriminator=f"{_SAGAN}.discriminator")
FILES = ("python/features/spectral_normalization.py",
         "python/tpu/normalization_ops.py", "python/train.py",
         "python/contrib_utils.py", "python/namedtuples.py",
         "python/losses/losses_impl.py", "python/losses/tuple_losses.py",
         "python/losses/losses_wargs.py", "examples/compat_utils.py",
         "examples/self_attention_estimator/ops.py",
         "examples/self_attention_estimator/generator.py",
         "examples/self_attention_estimator/discriminator.py")


def _inspect_with_getargspec():
  """``inspect`` plus the ``getargspec`` Python 3.11 removed (see top)."""
  arg_spec = collections.namedtuple("ArgSpec", "args varargs keywords defaults")

  def getargspec(fn):
    full = inspect.getfullargspec(fn)
    return arg_spec(full.args, full.varargs, full.varkw, full.defaults)

  class Inspect(types.ModuleType):

    def __getattr__(self, name):
      return getattr(inspect, name)

  stand_in = Inspect("inspect")
  stand_in.getargspec = getargspec
  return stand_in


def import_tfgan(src, tf):
  """Imports TF-GAN's files (see top) without its package __init__ files."""
  root = os.path.join(src, "tensorflow_gan")
  if not os.path.isfile(os.path.join(root, FILES[-1])):
    raise app.UsageError(f"--tfgan_src={src} holds no tensorflow_gan/{FILES[-1]}.")
  saved = {name: mod for name, mod in sys.modules.items()
           if name == "tensorflow_gan" or name.startswith("tensorflow_gan.")}
  had_estimator = "estimator" in vars(tf)
  try:
    for pkg in _PACKAGES:  # empty stand-ins: a __path__, no __init__ run
      stub = types.ModuleType(pkg)
      stub.__path__ = [os.path.join(src, *pkg.split("."))]
      sys.modules[pkg] = stub
    mods = {"sn": importlib.import_module(_MODULES["sn"]),
            "bn": importlib.import_module(_MODULES["bn"])}
    tfgan = sys.modules["tensorflow_gan"]
    tfgan.features, tfgan.tpu = mods["sn"], mods["bn"]  # what ops.py calls
    if not had_estimator:
      tf.estimator = types.SimpleNamespace(
          SessionRunHook=tf.compat.v1.train.SessionRunHook)
    with contextlib.redirect_stdout(io.StringIO()):
      for key in ("train", "losses", "generator", "discriminator"):
        mods[key] = importlib.import_module(_MODULES[key])
    if not hasattr(inspect, "getargspec") and hasattr(mods["train"], "inspect"):
      mods["train"].inspect = _inspect_with_getargspec()
  finally:
    if not had_estimator:
      vars(tf).pop("estimator", None)
    for name in [n for n in sys.modules if n == "tensorflow_gan"
                 or n.startswith("tensorflow_gan.")]:
      del sys.modules[name]
    sys.modules.update(saved)
  return mods


def _is_model(name):
  """Model variables: under the two scopes and not an optimiser slot."""
  leaf = name.rsplit("/", 1)[-1]
  return (name.startswith(("Generator/", "Discriminator/"))
          and not leaf.startswith("Adam"))


def make_reference(mods, tf, cfg, out_dir):
  """Builds the graph, trains, saves; returns (npz dict, facts for config.json)."""
  v1 = tf.compat.v1
  b, s, nc = cfg["batch_size"], IMAGE_SIZE, cfg["num_classes"]
  gf, df = cfg["gf_dim"], cfg["df_dim"]
  gen_mod, dis_mod, train = mods["generator"], mods["discriminator"], mods["train"]
  inputs = official_shim.reference_inputs(cfg, s)

  graph = v1.Graph()
  with graph.as_default(), contextlib.redirect_stdout(io.StringIO()):
    v1.set_random_seed(cfg["tf_seed"])
    z = v1.placeholder(tf.float32, [b, cfg["z_dim"]])
    y_gen = v1.placeholder(tf.int32, [b])
    x_real = v1.placeholder(tf.float32, [b, s, s, 3])
    y_real = v1.placeholder(tf.int32, [b])

    def generator_fn(noise, training=True):  # train_experiment._get_generator
      images, _ = gen_mod.generator(noise, y_gen, gf, nc, training=training)
      return {"images": images, "labels": y_gen}

    def discriminator_fn(data, unused_conditioning):  # ._get_discriminator
      logits, _ = dis_mod.discriminator(data["images"], data["labels"], df, nc)
      return logits

    model = train.gan_model(generator_fn, discriminator_fn,
                            {"images": x_real, "labels": y_real}, z,
                            check_shapes=False)
    loss = train.gan_loss(model, mods["losses"].wasserstein_hinge_generator_loss,
                          mods["losses"].wasserstein_hinge_discriminator_loss)
    ops = train.gan_train_ops(
        model, loss,
        v1.train.AdamOptimizer(cfg["generator_lr"], cfg["beta1"]),
        v1.train.AdamOptimizer(cfg["discriminator_lr"], cfg["beta1"]))
    with v1.variable_scope("Generator"):  # make_prediction_gan_model
      g_eval = generator_fn(z, training=False)["images"]
    g_train = model.generated_data["images"]
    gen_update_ops = [op for op in v1.get_collection(v1.GraphKeys.UPDATE_OPS)
                      if op.name.startswith(model.generator_scope.name + "/")]
    variables = v1.global_variables()
    names = [v.op.name for v in variables]
    is_u = lambda v: v.op.name.endswith("/spectral_norm_u")
    g_u = [v for v in variables if is_u(v) and v.op.name.startswith("Generator/")]
    d_u = [v for v in variables
           if is_u(v) and v.op.name.startswith("Discriminator/")]
    bn = [v for v in variables if _is_model(v.op.name)
          and v.op.name.rsplit("/", 1)[-1] in ("moving_mean", "moving_variance")]
    global_step = v1.train.get_global_step()
    saver = v1.train.Saver(variables, save_relative_paths=True)
    init = v1.global_variables_initializer()

  key = lambda tag, v: f"{tag}__{v.op.name.replace('/', '__')}"
  ref = dict(inputs)
  feed = {z: inputs["z"], y_gen: inputs["y_gen"], x_real: inputs["x_real"],
          y_real: inputs["y_real"]}
  with v1.Session(graph=graph) as sess:
    sess.run(init)
    rs = np.random.RandomState(cfg["assign_seed"])
    assigned = []
    for var, name in zip(variables, names):
      value = (official_shim.value_for(name, var.shape.as_list(), rs)
               if _is_model(name) else None)
      if value is not None:
        var.load(np.asarray(value, np.float32), sess)
        assigned.append(name)
    for _ in range(cfg["train_steps"]):  # get_sequential_train_hooks, then train_op
      sess.run(ops.generator_train_op, feed)
      sess.run(ops.discriminator_train_op, feed)
      sess.run(ops.global_step_inc_op)
    step = int(sess.run(global_step))
    prefix = saver.save(sess, os.path.join(out_dir, "ckpt", "model.ckpt"),
                        global_step=step, write_meta_graph=False)
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
    ref["d_real"] = sess.run(model.discriminator_real_outputs, feed)
    ref.update(read(d_u, "u_after_d_real"))
    saver.restore(sess, prefix)  # D's pass on generated data, fed with g_eval
    ref["d_fake"] = sess.run(model.discriminator_gen_outputs,
                             {g_train: ref["g_eval"], y_gen: inputs["y_gen"]})
    ref.update(read(d_u, "u_after_d_fake"))
    saver.restore(sess, prefix)
    with_updates, _ = sess.run([g_train, gen_update_ops], feed)
    ref.update(read(bn, "bn_after_update"))
    ref["global_step"] = np.array(step, np.int64)
  # Kept as a number rather than a copy of g_train, to keep the fixture small.
  ref["g_train_with_updates_max_diff"] = np.array(
      np.abs(with_updates - ref["g_train"]).max())
  slots = [n for n in names if n.rsplit("/", 1)[-1].startswith("Adam")]
  saved = dict(model=sum(map(_is_model, names)), adam_slots=len(slots),
               adam_slot_examples=slots[:2],
               other=[n for n in names if not _is_model(n) and n not in slots])
  return ref, dict(assigned_variables=assigned, saved_variables=saved,
                   checkpoint=os.path.relpath(prefix, out_dir),
                   global_step=step)




def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.compat.v1.disable_v2_behavior()
  cfg = dict(z_dim=FLAGS.z_dim, gf_dim=FLAGS.gf_dim, df_dim=FLAGS.df_dim,
             num_classes=FLAGS.num_classes, image_size=IMAGE_SIZE,
             batch_size=FLAGS.batch_size, train_steps=FLAGS.train_steps,
             generator_lr=FLAGS.generator_lr,
             discriminator_lr=FLAGS.discriminator_lr, beta1=FLAGS.beta1,
             tf_seed=FLAGS.tf_seed, assign_seed=FLAGS.assign_seed,
             input_seed=FLAGS.input_seed)
  src = os.path.abspath(FLAGS.tfgan_src)
  mods = import_tfgan(src, tf)
  os.makedirs(FLAGS.output, exist_ok=True)
  ref, facts = make_reference(mods, tf, cfg, FLAGS.output)
  np.savez_compressed(os.path.join(FLAGS.output, "reference.npz"), **ref)
  cfg.update(
      scopes=dict(generator="Generator/generator",
                  discriminator="Discriminator/discriminator"),
      source=dict(repo="tensorflow/gan",
                  commit=official_shim.git_commit(src, FLAGS.tfgan_commit,
                                                  wheel="tensorflow_gan"),
                  sha256={f: official_shim.sha256(os.path.join(src, "tensorflow_gan", f))
                          for f in FILES},
                  modified=False),
      written_by="tools/make_tfgan_reference.py (see its docstring for the "
                 "imports, value assignment and protocol)",
      runtime=f"tensorflow {tf.__version__} compat.v1 graph mode "
              f"(disable_v2_behavior, TF_USE_LEGACY_KERAS=1), numpy "
              f"{np.__version__}",
      **facts)
  with open(os.path.join(FLAGS.output, "config.json"), "w") as f:
    json.dump(cfg, f, indent=1)
    f.write("\n")
  print(f"Wrote {FLAGS.output}: {len(ref)} reference arrays, "
        f"global_step {facts['global_step']}, variables {facts['saved_variables']}")


if __name__ == "__main__":
  app.run(main)
