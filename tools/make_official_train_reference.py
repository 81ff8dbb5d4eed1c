r"""Writes a training reference with the official SAGAN code: a TF1 checkpoint, then
several iterations of (D op, G op) with recorded inputs, variables and losses.

The official training graph is built by the official ``model.py`` itself
(``model.SNGAN``), imported UNMODIFIED from ``--official_src`` together with
``ops.py``, ``non_local.py``, ``generator.py`` and ``discriminator.py`` (nothing
of them is copied here), under TF 2.x ``tf.compat.v1`` graph mode with
RefVariables as TF 1.5 ran it (``tools/official_shim.py`` lists the stand-ins).
So the D op and the G op are ``model.py``'s own ``d_optim`` and ``g_optim``:
``tf.train.AdamOptimizer(lr, beta1)`` (beta2 0.999, epsilon 1e-8) over the
``model/d_`` and ``model/g_`` variables, built under
``tf.control_dependencies(UPDATE_OPS)``, one generator pass (``generator_test``
etc., ``is_training=True``) feeding the discriminator's fake pass
(``update_collection='NO_OPS'``) next to its real pass (``None``), and
``model.py``'s hinge or KL loss (``--loss_type``). Stand-ins, all outside the
official files:

* ``utils_ori`` (needs scipy.misc and an ImageNet TFRecord pipeline) -> a module
  whose ``get_imagenet_batches`` returns placeholders of the same shapes
  (images ``[B, 128, 128, 3]`` float32, labels ``[B, 1]`` int32).
* ``absl.flags`` for ``model.py`` -> a private ``FlagValues``, set from this
  tool's flags (``model.py`` reads sizes, learning rates, ``beta1`` and the loss
  from its flags).
* ``--generator_type=test_64`` (or ``--discriminator_type=test_64``): ``model.py``
  only knows ``test`` and ``baseline``, so its ``generator_test`` attribute is
  pointed at the official ``generator_test_64`` (the module files stay as they are).

Inputs are fed, not drawn: ``z`` (the ``zs`` tensor), the fake labels (the output of
``model.py``'s ``tf.multinomial`` op, fed with ``[B, 1]`` int64), the real images
(uint8 images mapped to [-1, 1] as ``get_imagenet_batches`` does,
``x * (2 / 255) - 1`` in float32) and the real labels.

Protocol: initialise with ``tf.set_random_seed(--tf_seed)``; give biases, BN / CBN
statistics and parameters and ``sigma_ratio`` non-trivial values from
``np.random.RandomState(--assign_seed)`` (as tools/make_official_reference.py);
save the model variables (``ckpt/model.ckpt``; the optimisers start fresh); draw
every input from ``np.random.RandomState(--input_seed)``; then for each iteration
i: one ``session.run`` of the D op (fetching the D losses with it), then one of the
G op (fetching the G loss), each on its own ``z`` and fake labels. This is the
order of sagan_tf's step; the official ``tfgan.gan_train`` with sequential hooks
ran the G op first, then the D op, in each iteration. After each op the tool
reads every model variable and stores the ones the op changed. The whole
sequence is run a second time from the restored checkpoint (fresh Adam slots) and
must give bit-identical values (``--check_repeat``).

Writes into ``--output``:

* ``ckpt/model.ckpt``: the starting point (all G and D variables).
* ``reference.npz``: ``z_d``/``y_gen_d`` `[iters, B, z]`/`[iters, B]` (D ops),
  ``z_g``/``y_gen_g`` (G ops), ``x_real_u8`` `[iters, B, 128, 128, 3]` uint8,
  ``y_real`` `[iters, B]`; losses ``d_loss``, ``d_loss_real``, ``d_loss_fake``,
  ``g_loss`` `[iters]`; and ``after_d<i>__<var>`` / ``after_g<i>__<var>`` (``/``
  written ``__``): the value of every variable the i-th D / G op changed, after it.
  A variable without a key after an op kept its previous value. With
  ``--max_elements=M``, a variable of more than M elements is stored as a fixed
  random subset of M elements (the same after every op), whose sorted flat
  indices are ``index__<var>``. ``grad_d<i>__<var>`` / ``grad_g<i>__<var>``: the
  gradient the i-th D / G op's Adam consumed (fetched in that op's own
  ``session.run`` from the tensors ``apply_gradients`` received, so the
  RefVariable read timing is the op's; a sparse one made dense with repeated
  slices summed, as TF1's Adam summed them). tools/train_parity.py (the per-op
  check of tests/test_train_parity.py) needs every element (``--max_elements=0``).
  ``tie_<d|g><i>__<k>__index`` / ``__side``: the official side of every near-tie
  of the op's ReLUs and max-pools (fetched in the same ``session.run`` as the
  gradients; ``tools/tie_records.py``), which tools/train_parity.py replays.
* ``config.json``: sizes, seeds, hyper-parameters, the variables each op changed,
  the decisions each op runs (``decisions``), source hashes and runtime.

The session runs with Grappler's remapper off: with oneDNN on it fuses a
convolution with the add and ReLU behind it and then cannot fetch the add's
output. TF 1.5, which the official code was written for, had no remapper.

The official source: ``../shared/official_src`` beside the repository (what the
tests use), or any checkout of brain-research/self-attention-gan (never commit it).

The fixtures under tests/data were written on the AVX-512 AMD EPYC (2026-12-04)
with ``TF_ENABLE_ONEDNN_OPTS=0`` (TensorFlow's own kernels, not oneDNN's: the
official graph run with oneDNN and the remapper off read one G op's gradients
up to 1.7e-3 (relative) apart from the same graph on TensorFlow's kernels and
from the AVX2 host's fixture of 2026-12-03, which agreed with each other to 1e-6;
not explained yet) and::

    TF_ENABLE_ONEDNN_OPTS=0 python tools/make_official_train_reference.py \
        --official_src=../shared/official_src \
        --output=tests/data/official_train_kl --gf_dim=2 --df_dim=4 \
        --num_classes=3 --z_dim=8 --batch_size=2 --loss_type=kl_loss \
        --tf_seed=41 --assign_seed=42 --input_seed=44
    TF_ENABLE_ONEDNN_OPTS=0 python tools/make_official_train_reference.py \
        --official_src=../shared/official_src \
        --output=tests/data/official_train_g64 --gf_dim=4 --df_dim=4 \
        --num_classes=4 --z_dim=8 --batch_size=2 --iterations=2 \
        --generator_type=test_64 --discriminator_type=test --tf_seed=51 \
        --assign_seed=52 --input_seed=53

(input seeds chosen so that a G op draws a class twice, where the summed sparse
CBN gradients show; D at 64x64 attention needs ``df_dim >= 8``, which would double
the fixture's size).
"""
import contextlib
import io
import json
import os
import re
import types
import zlib

from absl import app
from absl import flags
import numpy as np

from official_shim import IMAGE_SIZE, absl_flags_shim, git_commit  # noqa: E402
from official_shim import import_official, sha256, value_for  # noqa: E402
import tie_records  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("official_src", None, "Checkout of self-attention-gan.")
flags.DEFINE_string("output", None, "Directory to write.")
flags.DEFINE_integer("gf_dim", 4, "Generator width.")
flags.DEFINE_integer("df_dim", 4, "Discriminator width.")
flags.DEFINE_integer("num_classes", 5, "Number of classes.")
flags.DEFINE_integer("z_dim", 16, "Noise size.")
flags.DEFINE_integer("batch_size", 2, "Batch of every op (>= 2: model.py squeezes "
                     "the labels).")
flags.DEFINE_integer("iterations", 3, "Number of (D op, G op) iterations.")
flags.DEFINE_enum("generator_type", "test", ["test", "test_64", "baseline"],
                  "generator_test, generator_test_64 or generator (no attention).")
flags.DEFINE_enum("discriminator_type", "test", ["test", "test_64", "baseline"],
                  "discriminator_test, discriminator_test_64 or discriminator.")
flags.DEFINE_enum("loss_type", "hinge_loss", ["hinge_loss", "kl_loss"],
                  "model.py's loss.")
flags.DEFINE_float("d_lr", 4e-4, "model.py discriminator_learning_rate.")
flags.DEFINE_float("g_lr", 1e-4, "model.py generator_learning_rate.")
flags.DEFINE_float("beta1", 0.0, "model.py beta1.")
flags.DEFINE_boolean("sync_replicas", True, "model.py's branch (the official "
                     "default True adds d_step/g_step counters; same values).")
flags.DEFINE_integer("tf_seed", 1234, "tf.set_random_seed (weights, u).")
flags.DEFINE_integer("assign_seed", 2024, "RandomState for biases, BN, sigma_ratio.")
flags.DEFINE_integer("input_seed", 7, "RandomState for z, labels, real images.")
flags.DEFINE_integer("max_elements", 0, "Store at most this many elements of each "
                     "variable per snapshot (a fixed random subset, its indices "
                     "in index__<var>); 0 stores every element.")
flags.DEFINE_boolean("check_repeat", True, "Run the sequence twice; fail unless "
                     "bit-identical.")
flags.DEFINE_string("official_commit", None,
                    "Commit of --official_src to record when it is not a git "
                    "checkout (e.g. extracted with git archive).")
flags.mark_flags_as_required(["official_src", "output"])

MODULES = ("ops", "non_local", "generator", "discriminator", "model")
_NOT_MODEL = re.compile(r"(/Adam(_\d+)?$|^beta[12]_power|^global_step$|^[dg]_step$)")
LOSSES = ("d_loss", "d_loss_real", "d_loss_fake", "g_loss")


def _utils_stub(v1, tf):
  """A stand-in ``utils_ori``: placeholders instead of the ImageNet pipeline."""
  stub = types.ModuleType("utils_ori")
  stub.placeholders = []

  def get_imagenet_batches(data_dir, batch_size, num_batches, **unused):
    del data_dir, unused
    batches = []
    for _ in range(num_batches):
      images = v1.placeholder(tf.float32, [batch_size, IMAGE_SIZE, IMAGE_SIZE, 3])
      labels = v1.placeholder(tf.int32, [batch_size])
      stub.placeholders.append((images, labels))
      batches.append((images, v1.expand_dims(labels, 1)))
    return batches

  stub.get_imagenet_batches = get_imagenet_batches
  stub.squarest_grid_size = lambda n: (n, 1)
  return stub


def real_images(x_u8):
  """uint8 images -> float32 in [-1, 1], as ``get_imagenet_batches`` maps them."""
  return x_u8.astype(np.float32) * np.float32(2.0 / 255) - np.float32(1.0)


def make_inputs(cfg):
  rs = np.random.RandomState(cfg["input_seed"])
  n, b, nc = cfg["iterations"], cfg["batch_size"], cfg["num_classes"]
  out = {}
  for i in range(n):
    for tag in ("d", "g"):
      out.setdefault(f"z_{tag}", []).append(rs.randn(b, cfg["z_dim"]))
      out.setdefault(f"y_gen_{tag}", []).append(rs.randint(0, nc, size=b))
    out.setdefault("x_real_u8", []).append(
        rs.randint(0, 256, size=(b, IMAGE_SIZE, IMAGE_SIZE, 3)))
    out.setdefault("y_real", []).append(rs.randint(0, nc, size=b))
  dtypes = dict(z_d=np.float32, z_g=np.float32, y_gen_d=np.int32,
                y_gen_g=np.int32, x_real_u8=np.uint8, y_real=np.int32)
  return {k: np.asarray(v).astype(dtypes[k]) for k, v in out.items()}


def build(mods, stub, tf, cfg):
  """Builds model.SNGAN; returns (graph, handles)."""
  v1 = tf.compat.v1
  official_flags = mods["model"].FLAGS
  official_flags(["model"])  # marks the private flags parsed (defaults)
  for name, value in dict(
      image_size=IMAGE_SIZE, z_dim=cfg["z_dim"], gf_dim=cfg["gf_dim"],
      df_dim=cfg["df_dim"], number_classes=cfg["num_classes"],
      loss_type=cfg["loss_type"], beta1=cfg["beta1"],
      discriminator_learning_rate=cfg["d_lr"],
      generator_learning_rate=cfg["g_lr"],
      generator_type="baseline" if cfg["generator_type"] == "baseline" else "test",
      discriminator_type=("baseline" if cfg["discriminator_type"] == "baseline"
                          else "test")).items():
    setattr(official_flags, name, value)
  if cfg["generator_type"] == "test_64":
    mods["generator"].generator_test = mods["generator"].generator_test_64
  if cfg["discriminator_type"] == "test_64":
    mods["discriminator"].discriminator_test = (
        mods["discriminator"].discriminator_test_64)
  run_config = types.SimpleNamespace(
      ps_tasks=0, sync_replicas=cfg["sync_replicas"], num_workers=1,
      replicas_to_aggregate=1, num_towers=1, batch_size=cfg["batch_size"],
      data_parallelism=1, shuffle_buffer_size=1)
  graph = v1.Graph()
  recorded = []
  original = v1.train.AdamOptimizer.apply_gradients

  def keep(self, grads_and_vars, *args, **kwargs):
    """Keeps a handle on the (gradient, variable) pairs; changes nothing."""
    grads_and_vars = list(grads_and_vars)
    recorded.append([(g, v) for g, v in grads_and_vars if g is not None])
    return original(self, grads_and_vars, *args, **kwargs)

  v1.train.AdamOptimizer.apply_gradients = keep
  try:
    with graph.as_default(), contextlib.redirect_stdout(io.StringIO()):
      v1.set_random_seed(cfg["tf_seed"])
      global_step = v1.train.create_global_step()
      zs = v1.placeholder(tf.float32, [1, cfg["batch_size"], cfg["z_dim"]])
      gan = mods["model"].SNGAN(zs=zs, config=run_config,
                                global_step=global_step, devices=["cpu:0"])
  finally:
    v1.train.AdamOptimizer.apply_gradients = original
  assert len(recorded) == 2, "model.py builds the D op's Adam, then the G op's"
  with graph.as_default(), contextlib.redirect_stdout(io.StringIO()):
    images = stub.placeholders[0][0]
    decisions = {tag: tie_records.decision_ops(graph, op, images)
                 for tag, op in (("d", gan.d_optim), ("g", gan.g_optim))}
    multinomial = [op for op in graph.get_operations() if op.type == "Multinomial"]
    assert len(multinomial) == 1, multinomial
    variables = v1.global_variables()
    model_vars = [v for v in variables if not _NOT_MODEL.search(v.op.name)]
    h = types.SimpleNamespace(
        zs=zs, fake_class=multinomial[0].outputs[0],
        images=images, labels=stub.placeholders[0][1], decisions=decisions,
        d_op=gan.d_optim, g_op=gan.g_optim,
        grads=dict(d=recorded[0], g=recorded[1]),
        d_losses=dict(d_loss=gan.d_losses[0], d_loss_real=gan.d_loss_reals[0],
                      d_loss_fake=gan.d_loss_fakes[0]),
        g_loss=gan.g_losses[0], model_vars=model_vars,
        saver=v1.train.Saver(model_vars, save_relative_paths=True),
        init=v1.global_variables_initializer(),
        init_others=v1.variables_initializer(
            [v for v in variables if _NOT_MODEL.search(v.op.name)]))
  return graph, h


def sample_indices(name, size, max_elements):
  """Sorted flat indices of the stored subset of a variable, or None (all)."""
  if not max_elements or size <= max_elements:
    return None
  rs = np.random.RandomState(zlib.crc32(name.encode()))
  return np.sort(rs.choice(size, max_elements, replace=False)).astype(np.int32)


def dense_gradient(value, shape):
  """A fetched gradient as a dense float32 array; the slices of a
  ``tf.IndexedSlices`` (the CBN gamma/beta gathered by label) summed where an
  index repeats, as TF1's Adam summed them (``_deduplicate_indexed_slices``)."""
  if hasattr(value, "indices"):
    dense = np.zeros(shape, np.float32)
    np.add.at(dense, value.indices, value.values)
    return dense
  return np.asarray(value, np.float32)


def run_iterations(sess, h, inputs, cfg):
  """Runs the (D op, G op) sequence; returns (losses, snapshots, changed).

  Each op's ``session.run`` also fetches the gradient tensors its
  ``apply_gradients`` consumed (the very tensors of the train op, so the
  RefVariable read timing is the op's own), stored as ``grad_<tag><i>__<var>``.
  """
  names = [v.op.name for v in h.model_vars]
  index = {n: sample_indices(n, int(np.prod(v.shape.as_list())),
                             cfg["max_elements"])
           for n, v in zip(names, h.model_vars)}
  losses = {k: [] for k in LOSSES}
  snapshots, changed = {}, {"d": set(), "g": set()}
  before = sess.run(h.model_vars)
  for i in range(cfg["iterations"]):
    real = {h.images: real_images(inputs["x_real_u8"][i]),
            h.labels: inputs["y_real"][i]}
    for tag in ("d", "g"):
      feed = dict(real)
      feed[h.zs] = inputs[f"z_{tag}"][i][None]
      feed[h.fake_class] = inputs[f"y_gen_{tag}"][i][:, None].astype(np.int64)
      pairs = h.grads[tag]
      inputs_of = [op.inputs[0] for op, _ in h.decisions[tag]]
      if tag == "d":
        _, out, grads, seen = sess.run(
            [h.d_op, h.d_losses, [g for g, _ in pairs], inputs_of], feed)
      else:
        _, loss, grads, seen = sess.run(
            [h.g_op, h.g_loss, [g for g, _ in pairs], inputs_of], feed)
        out = {"g_loss": loss}
      for k, ((op, _), x) in enumerate(zip(h.decisions[tag], seen)):
        ties = (tie_records.relu_ties if op.type == "Relu"
                else tie_records.maxpool_ties)(x)
        for field, value in zip(("index", "side"), ties):
          snapshots[tie_records.key(tag, i, k, field)] = value
      for k, val in out.items():
        losses[k].append(val)
      for (_, var), value in zip(pairs, grads):
        name = var.op.name
        value = dense_gradient(value, var.shape.as_list())
        if index[name] is not None:
          value = value.reshape(-1)[index[name]]
        snapshots[f"grad_{tag}{i}__{name.replace('/', '__')}"] = value
      after = sess.run(h.model_vars)
      for name, old, new in zip(names, before, after):
        if not np.array_equal(old, new):
          key = name.replace("/", "__")
          if index[name] is not None:
            snapshots[f"index__{key}"] = index[name]
            new = new.reshape(-1)[index[name]]
          snapshots[f"after_{tag}{i}__{key}"] = new
          changed[tag].add(name)
      before = after
  losses = {k: np.asarray(v, np.float32) for k, v in losses.items()}
  return losses, snapshots, {k: sorted(v) for k, v in changed.items()}


def make_reference(mods, stub, tf, cfg, out_dir):
  v1 = tf.compat.v1
  graph, h = build(mods, stub, tf, cfg)
  inputs = make_inputs(cfg)
  prefix = os.path.join(out_dir, "ckpt", "model.ckpt")
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  # Grappler's remapper off: with oneDNN on, it fuses a convolution with the add
  # and ReLU behind it and then cannot fetch the add's output ("not found in the
  # Graph"), which the decision records need. TF 1.5 had no remapper.
  rewrite = v1.ConfigProto()
  rewrite.graph_options.rewrite_options.remapping = (
      rewrite.graph_options.rewrite_options.OFF)
  with v1.Session(graph=graph, config=rewrite) as sess:
    sess.run(h.init)
    rs = np.random.RandomState(cfg["assign_seed"])
    for var in h.model_vars:
      value = value_for(var.op.name, var.shape.as_list(), rs)
      if value is not None:
        var.load(np.asarray(value, np.float32), sess)
    h.saver.save(sess, prefix, write_meta_graph=False)
    with contextlib.redirect_stderr(io.StringIO()):  # model.py's tf.Print lines
      result = run_iterations(sess, h, inputs, cfg)
      if cfg["check_repeat"]:
        h.saver.restore(sess, prefix)
        sess.run(h.init_others)
        again = run_iterations(sess, h, inputs, cfg)
        for (a, b) in zip(result, again):
          assert a.keys() == b.keys(), "the repeat changed other variables"
          for k in a:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), (
                f"the repeat differs at {k}: the official graph ran "
                f"non-deterministically")
  losses, snapshots, changed = result
  ref = dict(inputs)
  ref.update(losses)
  ref.update(snapshots)
  decisions = {tag: tie_records.decision_records(d)
               for tag, d in h.decisions.items()}
  return ref, changed, len(h.model_vars), decisions


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if FLAGS.batch_size < 2:
    raise app.UsageError("--batch_size must be >= 2: model.py squeezes the label "
                         "tensors, which breaks the graph at batch 1.")
  tf.compat.v1.disable_v2_behavior()
  cfg = dict(z_dim=FLAGS.z_dim, gf_dim=FLAGS.gf_dim, df_dim=FLAGS.df_dim,
             num_classes=FLAGS.num_classes, image_size=IMAGE_SIZE,
             batch_size=FLAGS.batch_size, iterations=FLAGS.iterations,
             generator_type=FLAGS.generator_type,
             discriminator_type=FLAGS.discriminator_type,
             loss_type=FLAGS.loss_type, d_lr=FLAGS.d_lr, g_lr=FLAGS.g_lr,
             beta1=FLAGS.beta1, beta2=0.999, epsilon=1e-8,
             sync_replicas=FLAGS.sync_replicas, tf_seed=FLAGS.tf_seed,
             assign_seed=FLAGS.assign_seed, input_seed=FLAGS.input_seed,
             max_elements=FLAGS.max_elements, check_repeat=FLAGS.check_repeat)
  src = os.path.abspath(FLAGS.official_src)
  v1 = tf.compat.v1
  stub = _utils_stub(v1, tf)
  stubs = dict(absl_flags_shim(flags.FlagValues()), utils_ori=stub)
  mods = import_official(src, tf, MODULES, stubs)
  os.makedirs(FLAGS.output, exist_ok=True)
  ref, changed, num_vars, decisions = make_reference(mods, stub, tf, cfg,
                                                     FLAGS.output)
  np.savez_compressed(os.path.join(FLAGS.output, "reference.npz"), **ref)
  cfg.update(
      order="per iteration: D op (model.py d_optim), then G op (g_optim); each "
            "one session.run with its own fed z and fake labels",
      changed_by_d_op=changed["d"], changed_by_g_op=changed["g"],
      decisions=decisions,
      source=dict(repo="brain-research/self-attention-gan",
                  commit=git_commit(src, FLAGS.official_commit),
                  sha256={m + ".py": sha256(os.path.join(src, m + ".py"))
                          for m in MODULES},
                  modified=False),
      written_by="tools/make_official_train_reference.py (see its docstring for "
                 "the graph, stand-ins and protocol)",
      runtime=f"tensorflow {tf.__version__} compat.v1 graph mode "
              f"(disable_v2_behavior: RefVariables), numpy {np.__version__}",
      checkpoint=dict(path="ckpt/model.ckpt", variables=num_vars))
  with open(os.path.join(FLAGS.output, "config.json"), "w") as f:
    json.dump(cfg, f, indent=1)
    f.write("\n")
  print(f"Wrote {FLAGS.output}: {num_vars} model variables, {len(ref)} arrays; "
        f"losses " + ", ".join(f"{k} {ref[k].round(4).tolist()}" for k in LOSSES))


if __name__ == "__main__":
  app.run(main)
