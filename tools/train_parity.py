r"""One official train op at a time: sagan_tf's D or G op from the official state.

Reads a training fixture of ``tools/make_official_train_reference.py`` written
with every element stored (``--max_elements=0``) and with the gradients each
official op's Adam consumed (``grad_<d|g><i>__<var>``). For op ``(tag, i)`` (the
i-th D or G op) it sets sagan_tf's models to the official state *before* that op
(the checkpoint with the official changes of every earlier op applied; not
sagan_tf's own trajectory), sets that op's Adam to the official slots (``m`` the
previous official gradient, ``v`` TF1's recursion ``v += (g^2 - v)(1 - beta2)``
over the earlier official gradients, in float32, ``iterations`` the number of
earlier ops of that kind), runs ``TrainStep.d_step`` or ``g_step`` once with the
recorded inputs, and compares:

(a) each trainable variable's gradient with the official one, relative to the
    gradient scale of its layer (``max |official gradient|`` over every variable of
    the layer, e.g. ``g_block1/snconv1/{w,biases}``): the error bound of a float32
    gradient element is set by the size of the terms summed into it, not by the
    element itself (a conv bias in front of a batch norm has an exact gradient of
    0, so its computed gradient is rounding noise of the size of the layer's
    terms), and the layer's largest gradient stands for that size;
(b) the state after the op, element by element within ``ATOL``, except the
    elements whose official Adam step is decided by rounding (``undecidable``).

The op runs with the official op's near-ties replayed
(``tools/tie_records.replaying``): where a ReLU input or a max-pool window is within
rounding of its decision boundary on both sides, sagan_tf takes the official
side. One ReLU input flipped by rounding moves every gradient behind it by one
term of its layer's sum, ~1 / sqrt(terms), far beyond ``RHO`` (6.9e-3 of the
layer scale on the AVX-512 host with ``TF_ENABLE_ONEDNN_OPTS=0`` before this);
the replay is what makes the verdict independent of the host's rounding. sagan_tf's
step must run the same ReLUs and max-pools as the official op, pass by pass
(G, the two D passes in the step's order, the hinge loss's): a different
sequence raises.

The bound of (a), ``RHO`` relative to the layer scale: a gradient element is a
float32 sum of products accumulated through the network; with unit roundoff
``u = 2**-24`` the rounding error of a sum of ``n`` terms of one sign-mixed
magnitude grows like ``sqrt(n) u`` relative to the terms (the statistical,
not the worst-case, estimate), and it is carried through ``L`` sequential
reductions of the backward pass. In these fixtures the longest reduction is a
weight gradient over the batch and a 128x128 map (``n = 2 * 128 * 128 = 32768``,
``sqrt(n) = 181``) and ``L`` is about 30 (G and D blocks: two convs, a batch norm
and the shortcut each, attention, the head), so ``RHO = 30 * 181 * 2**-24 =
3.2e-4``. The three mechanisms this port reproduces change gradients by far more
than that at an official state (README: without the ``u'`` gradient G's worst
relative error is 1e-2), and a different summation order on another CPU (or with
``TF_ENABLE_ONEDNN_OPTS=0``) by far less (measured 1e-7 to 3e-5).

Undecidable elements (b): with ``beta1 = 0`` (the official default) Adam moves an
element by ``lr_t g / (sqrt(v') + eps)``, ``v' = v + (g^2 - v)(1 - beta2)``; where
``|g|`` is not large against the rounding of the gradient this is a step of up to
``lr`` whose sign rounding picks (a bias in front of a batch norm moves by
``+-lr`` on the first step). An element is undecidable when moving its official
gradient by the bound of (a), ``RHO * scale``, either way moves the official Adam
step by more than ``ATOL / 2`` (the other half of ``ATOL`` covers the float32
arithmetic of the update and of the reconstructed ``v``). Only elements an
optimizer updates in this op can be undecidable; ``u`` and the batch-norm
statistics are always compared.
"""
import json
import os

import numpy as np
import tensorflow as tf

from sagan_tf.interop import convert
from sagan_tf.run import state as state_lib
from sagan_tf.training import step as step_lib
from sagan_tf.config import Config
import tie_records  # noqa: E402

ATOL = 1e-5
RHO = 30 * np.sqrt(2 * 128 * 128) * 2.0 ** -24
LOSS_RTOL = 2e-4
LOSSES = {"hinge_loss": "hinge", "kl_loss": "kl"}
OP_LOSSES = {"d": ("d_loss", "d_loss_real", "d_loss_fake"), "g": ("g_loss",)}


def real_images(x_u8):
  """As the fixture tool (and the official ``get_imagenet_batches``)."""
  return x_u8.astype(np.float32) * np.float32(2.0 / 255) - np.float32(1.0)


def layer_of(name):
  """``model/g_block1/snconv1/w`` -> ``model/g_block1/snconv1``."""
  return name.rsplit("/", 1)[0]


class Fixture:
  """A training fixture with every element and the official gradients stored."""

  def __init__(self, path):
    self.path = path
    with open(os.path.join(path, "config.json")) as f:
      self.cfg = json.load(f)
    if self.cfg.get("max_elements"):
      raise ValueError(f"{path} stores a subset of each variable (--max_elements="
                       f"{self.cfg['max_elements']}): the per-op check needs the "
                       f"whole state; write it with --max_elements=0.")
    self.ref = np.load(os.path.join(path, "reference.npz"))
    self.prefix = os.path.join(path, "ckpt", "model.ckpt")
    self.iterations = int(self.cfg["iterations"])
    if not any(k.startswith("grad_") for k in self.ref.files):
      raise ValueError(f"{path} has no official gradients (grad_* arrays): write "
                       f"it with today's tools/make_official_train_reference.py.")
    if "decisions" not in self.cfg:
      raise ValueError(f"{path} has no decision records (config.json "
                       f"'decisions', tie_* arrays): write it with today's "
                       f"tools/make_official_train_reference.py.")
    if float(self.cfg["beta1"]) != 0.0:
      raise ValueError("the per-op check reconstructs Adam's slots for beta1 = 0 "
                       f"only (the official default); {path} has beta1 "
                       f"{self.cfg['beta1']}.")

  def ops(self):
    """The fixture's ops in the order they ran: ('d', 0), ('g', 0), ('d', 1) ..."""
    return [(tag, i) for i in range(self.iterations) for tag in ("d", "g")]

  def key(self, kind, tag, i, name):
    return f"{kind}_{tag}{i}__{name.replace('/', '__')}"

  def get(self, kind, tag, i, name):
    """A stored array, or None (the op did not change that variable)."""
    key = self.key(kind, tag, i, name)
    return self.ref[key] if key in self.ref.files else None

  def state_before(self, names, op):
    """{name: official value before ``op``} for every model variable."""
    reader = tf.train.load_checkpoint(self.prefix)
    state = {n: reader.get_tensor(n) for n in names}
    ops = self.ops()
    for earlier in ops[:ops.index(op)]:
      for n in names:
        value = self.get("after", *earlier, n)
        if value is not None:
          state[n] = value
    return state

  def adam_before(self, names, op):
    """(m, v, count) of the official Adam of ``op``'s kind before it.

    ``m`` is the previous official gradient (beta1 = 0), ``v`` TF1's recursion
    in float32 over the earlier ones, ``count`` the number of earlier ops.
    """
    tag, i = op
    b2 = np.float32(self.cfg["beta2"])
    m, v = {}, {}
    for n in names:
      m[n] = v[n] = None
      for j in range(i):
        g = self.get("grad", tag, j, n)
        m[n] = g
        v[n] = np.zeros_like(g) if v[n] is None else v[n]
        v[n] = (v[n] + (g * g - v[n]) * (np.float32(1) - b2)).astype(np.float32)
    return m, v, i

  def ties(self, op, pass_order):
    """[(type, shape, index, side)]: ``op``'s official near-ties
    (tools/tie_records.py), one entry per ReLU / max-pool, in ``pass_order``
    (the order sagan_tf's step runs its passes) and within a pass in the
    official creation order."""
    tag, i = op
    records = list(enumerate(self.cfg["decisions"][tag]))
    records.sort(key=lambda kr: (pass_order.index(kr[1]["pass"]), kr[1]["index"]))
    return [(r["type"], tuple(r["shape"]),
             self.ref[tie_records.key(tag, i, k, "index")].astype(np.int32),
             self.ref[tie_records.key(tag, i, k, "side")].astype(np.int32))
            for k, r in records]

  def official_gradients(self, op, names):
    grads = {n: self.get("grad", *op, n) for n in names}
    return {n: g for n, g in grads.items() if g is not None}


class _Recording:
  """Wraps a Keras optimizer: keeps a copy of each gradient it applies."""

  def __init__(self, optimizer, variables):
    self.optimizer = optimizer
    self.vars = list(variables)
    self.grads = [tf.Variable(tf.zeros_like(v), trainable=False)
                  for v in self.vars]

  def apply_gradients(self, grads_and_vars):
    grads_and_vars = list(grads_and_vars)
    for (g, _), slot in zip(grads_and_vars, self.grads):
      slot.assign(tf.convert_to_tensor(g))
    self.optimizer.apply_gradients(grads_and_vars)

  def set_slots(self, m, v, count):
    """Sets Adam's ``iterations`` and, per variable (in ``self.vars`` order),
    its momentum and velocity (None: zeros)."""
    slots = [s for s in self.optimizer.variables
             if s.name.endswith(("_momentum", "_velocity"))]
    assert len(slots) == 2 * len(self.vars), (len(slots), len(self.vars))
    self.optimizer.iterations.assign(count)
    for k, var in enumerate(self.vars):
      mom, vel = slots[2 * k], slots[2 * k + 1]
      assert mom.name.endswith("_momentum") and vel.name.endswith("_velocity")
      assert mom.shape == var.shape and vel.shape == var.shape
      for slot, value in ((mom, m[k]), (vel, v[k])):
        slot.assign(np.zeros(var.shape, np.float32) if value is None
                    else np.reshape(value, var.shape))


class OpRunner:
  """sagan_tf's TrainStep over a fixture's models, run one official op at a time.

  ``step_kwargs`` go to ``TrainStep`` (e.g. ``variable_reads="resource"`` shows
  the size of a missing mechanism).
  """

  def __init__(self, fixture: Fixture, **step_kwargs):
    self.fx = fx = fixture
    cfg, ref = fx.cfg, fx.ref
    g, d = convert.load_tf1_checkpoint(fx.prefix, "official")
    self.entries = (convert.generator_name_map(g, "official")
                    + convert.discriminator_name_map(d, "official"))
    self.names = [n for n, _, _ in self.entries]
    self.var_of = {n: v for n, v, _ in self.entries}
    self.name_of = {id(v): n for n, v, _ in self.entries}
    config = Config(
        image_size=g.image_size, num_classes=g.num_classes, z_dim=g.z_dim,
        gf_dim=g.gf_dim, df_dim=d.df_dim, g_attention=g.attention_resolutions,
        d_attention=d.attention_resolutions, variant="official",
        batch_size=int(cfg["batch_size"]), g_lr=cfg["g_lr"], d_lr=cfg["d_lr"],
        beta1=cfg["beta1"], beta2=cfg["beta2"], loss=LOSSES[cfg["loss_type"]],
        d_steps=1).validate()
    self.config = config
    g_opt, d_opt = state_lib.make_optimizers(config, g, d)
    self.opts = {"g": _Recording(g_opt, g.trainable_variables),
                 "d": _Recording(d_opt, d.trainable_variables)}
    z = tf.constant(np.stack([ref["z_d"], ref["z_g"]], axis=1))
    labels = tf.constant(np.stack([ref["y_gen_d"], ref["y_gen_g"]], axis=1))

    def noise_fn(batch, step_t, substep, replica_id):
      del batch, replica_id
      return z[step_t, substep], labels[step_t, substep]

    self.train = step_lib.TrainStep(
        config, tf.distribute.get_strategy(), g, d, self.opts["g"],
        self.opts["d"], state_lib.make_step_variable(), noise_fn=noise_fn,
        **step_kwargs)
    self.x = real_images(ref["x_real_u8"])
    # The passes in the order the step runs them (TrainStep.d_step).
    d_passes = (("d_fake", "d_real") if self.train.tf1_reads
                else ("d_real", "d_fake"))
    self.pass_order = ("g",) + d_passes + ("loss_real", "loss_fake")

  def run(self, op):
    """Runs ``op`` from the official state before it.

    Returns:
      dict: ``grads`` {name: ours}, ``after`` {name: ours after the op} for every
      model variable, ``losses`` {name: ours}, ``before`` {name: official
      before}, ``v_before`` {name: official Adam v before} (None: no earlier op).
    """
    tag, i = op
    fx = self.fx
    before = fx.state_before(self.names, op)
    for n in self.names:
      var = self.var_of[n]
      var.assign(np.reshape(before[n], var.shape).astype(np.float32))
    rec = self.opts[tag]
    rec_names = [self.name_of[id(v)] for v in rec.vars]
    m, v, count = fx.adam_before(rec_names, op)
    rec.set_slots([m[n] for n in rec_names], [v[n] for n in rec_names], count)
    step = tf.constant(i, tf.int64)
    # Traced anew for each op, with that op's official near-ties replayed.
    with tie_records.replaying(fx.ties(op, self.pass_order)):
      if tag == "d":
        out = tf.function(lambda im, y, t: self.train.d_step(im, y, t, 0),
                          autograph=False)(
                              tf.constant(self.x[i]),
                              tf.constant(fx.ref["y_real"][i]), step)
        losses = {k: float(out[k]) for k in OP_LOSSES["d"]}
      else:
        losses = {"g_loss": float(tf.function(self.train.g_step,
                                              autograph=False)(step))}
    return dict(
        grads={n: s.numpy() for n, s in zip(rec_names, rec.grads)},
        after={n: self.var_of[n].numpy() for n in self.names},
        losses=losses, before=before, v_before=v)


def adam_step(g, v, lr, beta2, t, eps=1e-8):
  """The step TF1's Adam (beta1 0) takes on an element: float64, elementwise."""
  g = np.asarray(g, np.float64)
  v_new = (0 if v is None else np.asarray(v, np.float64)) * beta2 + (1 - beta2) * g * g
  lr_t = lr * np.sqrt(1 - beta2 ** t)
  return lr_t * g / (np.sqrt(v_new) + eps)


def compare(fx: Fixture, runner: OpRunner, op, result):
  """Compares one op's result with the official op (see the module docstring).

  Returns:
    dict: ``grad_errors`` [(max |ours - official| / layer scale, name)],
    ``bad`` [(name, elements beyond ATOL among the decided, max |diff| there)],
    ``decided``/``undecidable`` element counts, ``losses`` {name: (ours,
    official)}.
  """
  tag, i = op
  official = fx.official_gradients(op, runner.names)
  scale = {}
  for n, g in official.items():
    scale[layer_of(n)] = max(scale.get(layer_of(n), 0.0), float(np.abs(g).max()))
  grad_errors = []
  for n, ours in result["grads"].items():
    theirs = np.reshape(official[n], ours.shape)
    s = scale[layer_of(n)]
    grad_errors.append((float(np.abs(ours - theirs).max()) / max(s, 1e-30), n))
  lr = fx.cfg[f"{tag}_lr"]
  b2 = float(fx.cfg["beta2"])
  bad, rounding_decided = [], 0
  for n in runner.names:
    want = fx.get("after", tag, i, n)
    if want is None:
      want = result["before"][n]
    diff = np.abs(np.reshape(result["after"][n], -1) - np.reshape(want, -1))
    allowed = np.full(diff.shape, ATOL)
    if n in official:  # updated by Adam in this op: rounding of g moves its step
      v = result["v_before"].get(n)
      v = None if v is None else np.reshape(v, -1)
      apart = np.abs(
          adam_step(np.reshape(result["grads"][n], -1), v, lr, b2, i + 1)
          - adam_step(np.reshape(official[n], -1), v, lr, b2, i + 1))
      allowed += apart
      rounding_decided += int(np.sum(apart > ATOL / 2))
    off = diff > allowed
    if off.any():
      k = int(np.argmax(diff - allowed))
      bad.append((n, int(off.sum()), float(diff[k]), float(allowed[k])))
  total = sum(int(np.size(result["before"][n])) for n in runner.names)
  ref_losses = {k: float(fx.ref[k][i]) for k in OP_LOSSES[tag]}
  return dict(grad_errors=sorted(grad_errors), bad=bad, total=total,
              rounding_decided=rounding_decided,
              losses={k: (result["losses"][k], ref_losses[k]) for k in ref_losses})
