"""The SAGAN train step, replicated with ``strategy.run`` inside one ``tf.function``.

One call of ``TrainStep`` is one global step of the official schedule: ``d_steps``
discriminator steps, each on its own real batch, then one generator step::

    D step k (k = 0 .. d_steps-1):
      fake        = G(z_k, c_k, training=True)           # writes G's u and BN stats
      logits_fake = D(fake, c_k, training=True, update_u=False)   # reads D's u ...
      logits_real = D(x_k, y_k, training=True, update_u=True)     # ... then writes
      apply d_loss gradients to D's trainable variables
    G step:
      fake        = G(z_g, c_g, training=True)           # writes G's u and BN stats
      logits_fake = D(fake, c_g, training=True, update_u=False)
      apply g_loss gradients to G's trainable variables
      ema.update(G, step + 1)                           # if an EMA is kept

(shown for the official variant; the TF-GAN variant's D writes ``u`` on its fake
pass too and runs the real pass first). With ``config.diffaug`` every image D takes
(real and fake, both steps) is first augmented (``sagan_tf.training.diffaug``), and
with ``config.lecam_weight`` the D loss gains LeCam's term (``sagan_tf.models.lecam``);
with ``config.cond_transition_end`` every G and D call takes the step's condition
weight (``sagan_tf.training.cond_transition``); with ``config.ms_weight`` the G
step pairs its examples by class and its loss gains the mode-seeking term
(``sagan_tf.training.mode_seeking``).
z ~ N(0, 1) and fake labels c uniform over the classes. Losses are per example, averaged over the *global* batch
(``tf.nn.compute_average_loss``); the optimizers sum the replicas' gradients, so
the update is that of the global batch mean.

How the step reads ``u`` (``variable_reads``; default: the variant's
``tf1_variable_reads``, True for ``official``). The official code ran under TF 1.x
with RefVariables, where an op that takes a variable reads it when the op runs.
Each official D or G op is one ``session.run`` in which the spectral-norm ``u`` is
read and, by ``u.assign(u')``, written. Two consequences, both reproduced by
``"tf1"`` (checked against the unmodified official graph, tests/test_train_parity.py):

1. In the D op, the fake pass (``update_collection='NO_OPS'``) read the stored
   ``u`` before the real pass's ``u.assign`` landed (TF scheduled that read first,
   identically over repeated runs), so both D passes normalise with the same ``u``
   and ``sigma``. Here the fake pass runs first, with ``update_u=False``; the
   automatic control dependencies of ``tf.function`` keep its read before the real
   pass's write.
2. The gradient op of ``v = l2n(matmul(u, W^T))`` took the variable ``u`` as input
   and read it during the backward pass, after the forward's assign: the
   W-gradient through ``u W^T`` was taken at ``u'`` in every layer whose ``u`` the
   same run wrote: both D passes in the D op, every G layer in the G op (G writes
   ``u`` on each forward), not D's layers in the G op (nothing writes them there).
   Here: ``late_u_grad=True`` on exactly those passes (``sagan_tf.layers.spectral_norm``).

Both matter while ``u`` is far from the top singular vector, e.g. from an official
initialisation (``u`` not even unit-norm): on tests/data/official_train_kl the
first D loss is 0.2561 with resource reads and 0.2386 (official: 0.2386) with
TF1 reads, and only 76% of the variable elements end the first iteration within
1e-5 of the official ones (100% with TF1 reads). They fade as ``u`` converges. ``"resource"`` keeps the semantics of resource
variables (each pass reads the latest ``u``; the gradient is that of the forward
computation): the real pass first, its written ``u`` read by the fake pass. It
is what sagan_tf did before and what the TF-GAN variant uses.

What remains is float rounding. From the official state before each op, the
gradients here match the official op's own (``tools/compare_train_gradients.py``;
gf=df=8, kernels, BN parameters and gates: D within 4e-7 relative, G within a
median 1e-6 to 3e-6, 3e-5 at worst; without the ``u'`` gradient G's worst is 1e-2).
Adam (beta1 0) turns rounding into whole steps where the true gradient is ~0 (e.g.
biases in front of a batch norm: each moves by ``lr`` in the direction rounding
picks), and training amplifies small differences: a one-ulp change of the starting
weights moves sagan_tf's own trajectory further (96.7% of the elements within 1e-5
after 4 iterations) than it is from the official one (99.25%).

Noise (z, c and DiffAugment's draws) is a function of ``(config.seed, global
step, substep, replica id)``: ``sagan_tf.training.noise``.

Deliberate deviations from the official code:

* Order: D steps then the G step (the official ``tfgan.gan_train`` with
  ``get_sequential_train_hooks`` ran the G op, then the D op, in each iteration).
* Noise is drawn with stateless ops (official: ``tf.random_normal`` and
  ``tf.multinomial`` on zero logits, stateful).
* ``apply_gradients`` of Keras 3 Adam after the batch-norm and ``u`` updates of the
  forward pass (official: ``tf.control_dependencies(UPDATE_OPS)``): same values,
  as the updates do not feed the gradients. Keras 3 computes ``beta^t`` with
  ``pow`` (TF1 Adam kept running products): equal to float32 rounding.
* Sparse gradients (the CBN gamma/beta, gathered by label) are made dense before
  Adam, which sums the slices of a class drawn twice, as TF1's Adam did; Keras 3's
  Adam alone would square each slice separately (see ``_dense``).
"""
from __future__ import annotations

import functools
from typing import Callable, Dict, Optional

from absl import logging
import tensorflow as tf

from sagan_tf.training import jit_choice
from sagan_tf import strategy as strategy_lib
from sagan_tf.config import Config
from sagan_tf.config import parse_diffaug
from sagan_tf.training import cond_transition
from sagan_tf.training import diffaug
from sagan_tf.training import mode_seeking
from sagan_tf.training import noise
from sagan_tf.training.losses import get_loss

# How the step reads the spectral-norm u: see the module docstring.
VARIABLE_READS = ("tf1", "resource")

# Metric names returned by every step (global means over the batch, float32).
METRICS = ("d_loss", "d_loss_real", "d_loss_fake", "g_loss", "real_logits",
           "fake_logits")


class TrainStep:
  """The replicated train step over built models and optimizers.

  Build the models, the optimizers (``opt.build(vars)``), the step variable and the
  EMA inside ``strategy.scope()`` before constructing this.

  Args:
    config: the run's Config (loss, d_steps, batch_size, seed, jit_compile, ...).
    strategy: the ``tf.distribute`` strategy the variables were created under.
    generator, discriminator: built models.
    g_optimizer, d_optimizer: built Keras optimizers.
    step: int64 scalar variable, the global step; incremented once per call.
    ema: optional ``sagan_tf.models.ema.EMA`` updated after each G step.
    lecam: optional ``sagan_tf.models.lecam.LeCam`` (its term joins the D loss).
    noise_fn: optional ``noise_fn(batch, step, substep, replica_id) -> (z
      [batch, z_dim] float32, labels [batch] int32)``, the noise of each
      substep (``substep == config.d_steps`` is the G step; ``step`` is the
      global step as an int64 tensor, ``replica_id`` the replica's index (int
      or int32 tensor), ``batch`` the per-replica batch as a Python int). It runs inside the step's
      ``tf.function`` (and ``strategy.run``), once per substep. None draws
      ``noise.sample_noise(config, ...)``. Tests feed recorded noise through it.
    variable_reads: ``"tf1"`` (the official graph's read timing of ``u``, see
      the module docstring), ``"resource"``, or None: ``"tf1"`` if the variant's
      ``tf1_variable_reads`` is set (the official variant), else ``"resource"``.

  Call: ``step_fn(iterator)`` with an iterator over the distributed dataset
  (per-replica ``(images [B/R, S, S, 3], labels [B/R])``); consumes ``d_steps``
  batches and returns a dict of scalar float32 tensors named ``METRICS``
  (``d_*`` averaged over the D substeps).
  """

  def __init__(self, config: Config, strategy, generator, discriminator,
               g_optimizer, d_optimizer, step: tf.Variable, ema=None, lecam=None,
               noise_fn: Optional[Callable] = None,
               variable_reads: Optional[str] = None):
    self.config = config
    self.strategy = strategy
    self.generator = generator
    self.discriminator = discriminator
    self.g_optimizer = g_optimizer
    self.d_optimizer = d_optimizer
    self.step = step
    self.ema = ema
    self.lecam = lecam
    self.diffaug = parse_diffaug(config.diffaug)
    self.noise_fn = noise_fn or functools.partial(noise.sample_noise, config)
    self.loss = get_loss(config.loss)
    self.global_batch = config.batch_size
    self.replica_batch = strategy_lib.replica_batch_size(strategy,
                                                         config.batch_size)
    if config.ms_weight:
      mode_seeking.check_replica_batch(config.batch_size, self.replica_batch)
    self.update_u_on_fake = bool(discriminator.variant.d_update_u_on_fake)
    self.tf1_reads = _tf1_reads(variable_reads, generator, discriminator)
    choice = jit_choice.resolve(config, strategy)  # "auto" -> True/False
    logging.info("XLA for the train step: %s (%s).", choice.enabled, choice.reason)
    jit = choice.enabled
    is_tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    if jit and strategy.num_replicas_in_sync > 1 and not is_tpu:
      # XLA cannot compile the cross-replica merge calls of MirroredStrategy
      # (optimizer all-reduce, mirrored u/BN writes); TPUs compile anyway.
      raise ValueError(
          "jit_compile=True is supported with the default strategy (one device) "
          "and on TPU (always compiled), not with a multi-replica "
          f"{type(strategy).__name__}.")
    # The iterator's GetNext has no XLA kernel: only the replica step is compiled.
    self._compiled = jit and not is_tpu
    self._replica_fn = (tf.function(self._replica_step, jit_compile=True)
                        if self._compiled else self._replica_step)
    self._fn = tf.function(self._step, autograph=False)

  def _average(self, per_example):
    return tf.nn.compute_average_loss(per_example,
                                      global_batch_size=self.global_batch)

  def _replica_id(self):
    return tf.distribute.get_replica_context().replica_id_in_sync_group

  def _noise(self, step, substep):
    """(z, labels) of one substep from ``noise_fn``, shape- and dtype-checked."""
    b = self.replica_batch
    z, labels = self.noise_fn(b, step, substep, self._replica_id())
    z, labels = tf.convert_to_tensor(z), tf.convert_to_tensor(labels)
    if (z.dtype != tf.float32 or labels.dtype != tf.int32
        or not z.shape.is_compatible_with([b, self.config.z_dim])
        or not labels.shape.is_compatible_with([b])):
      raise ValueError(
          f"noise_fn must return (z float32 [{b}, {self.config.z_dim}], labels "
          f"int32 [{b}]); got z {z.dtype.name} {z.shape}, labels "
          f"{labels.dtype.name} {labels.shape}.")
    return z, labels

  def _augment(self, images, step, substep, stream):
    """``images`` after ``config.diffaug``; stream 0 the real, 1 the fake images."""
    if not self.diffaug:
      return images
    seed = noise.noise_seed(self.config.seed, step, substep, self._replica_id())
    seed = tf.random.experimental.stateless_fold_in(seed, 2 + stream)
    return diffaug.augment(images, self.diffaug, seed)

  def d_step(self, images, labels, step, substep):
    """One D update on a real batch; returns the replica's metric contributions."""
    g, d = self.generator, self.discriminator
    cond = cond_transition.call_kwargs(self.config, step)
    z, fake_labels = self._noise(step, substep)
    fake = self._augment(g(z, fake_labels, training=True, **cond), step, substep, 1)
    images = self._augment(images, step, substep, 0)
    with tf.GradientTape() as tape:
      if self.tf1_reads:
        # Fake pass first, so that it reads the u the real pass is about to
        # overwrite (the official D op's schedule); both backward passes take u'.
        fake_logits = d(fake, fake_labels, training=True, update_u=False,
                        late_u_grad=True, **cond)
        real_logits = d(images, labels, training=True, update_u=True,
                        late_u_grad=True, **cond)
      else:
        real_logits = d(images, labels, training=True, update_u=True, **cond)
        fake_logits = d(fake, fake_labels, training=True,
                        update_u=self.update_u_on_fake, **cond)
      per_example, parts = self.loss.d(real_logits, fake_logits)
      if self.lecam is not None:
        per_example += self.lecam.term(real_logits, fake_logits, step,
                                       self.global_batch)
      d_loss = self._average(per_example)
    grads = _dense(tape.gradient(d_loss, d.trainable_variables))
    self.d_optimizer.apply_gradients(zip(grads, d.trainable_variables))
    return {"d_loss": d_loss,
            "d_loss_real": self._average(parts["d_loss_real"]),
            "d_loss_fake": self._average(parts["d_loss_fake"]),
            "real_logits": self._average(real_logits),
            "fake_logits": self._average(fake_logits)}

  def g_step(self, step):
    """One G update on fresh noise; returns the replica's g_loss contribution."""
    g, d = self.generator, self.discriminator
    cond = cond_transition.call_kwargs(self.config, step)
    z, fake_labels = self._noise(step, self.config.d_steps)
    ms_weight = self.config.ms_weight
    if ms_weight:  # pairs (i, i + P) of one class (sagan_tf.training.mode_seeking)
      fake_labels = mode_seeking.pair_labels(fake_labels)
    with tf.GradientTape() as tape:
      # G writes its u on this forward; under TF 1.x reads its backward took u'.
      # D's u is not written in the G step, so D's layers need nothing.
      fake = g(z, fake_labels, training=True, late_u_grad=self.tf1_reads, **cond)
      raw_fake = fake
      fake = self._augment(fake, step, self.config.d_steps, 1)
      fake_logits = d(fake, fake_labels, training=True,
                      update_u=self.update_u_on_fake, **cond)
      g_loss = self._average(self.loss.g(fake_logits))
      if ms_weight:
        replicas = self.strategy.num_replicas_in_sync
        g_loss += ms_weight * mode_seeking.term(raw_fake, z) / replicas
    grads = _dense(tape.gradient(g_loss, g.trainable_variables))
    self.g_optimizer.apply_gradients(zip(grads, g.trainable_variables))
    if self.ema is not None:
      self.ema.update(g, step + 1)
    return g_loss

  def _replica_step(self, batches, step):
    totals = None
    for k, (images, labels) in enumerate(batches):
      m = self.d_step(images, labels, step, k)
      totals = m if totals is None else {n: totals[n] + m[n] for n in m}
    out = {n: v / len(batches) for n, v in totals.items()}
    out["g_loss"] = self.g_step(step)
    return out

  def _step(self, iterator, replica_fn=None):
    batches = tuple(next(iterator) for _ in range(self.config.d_steps))
    step = self.step.read_value()
    per_replica = self.strategy.run(replica_fn or self._replica_fn,
                                    args=(batches, step))
    metrics = {n: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
               for n, v in per_replica.items()}
    self.step.assign_add(1)
    return metrics

  def __call__(self, iterator) -> Dict[str, tf.Tensor]:
    return self._fn(iterator)

  def trace(self, iterator):
    """One global step on ``iterator`` traced, not run: a ``ConcreteFunction``.

    Its ``.graph`` holds the whole replicated step as ``__call__`` runs it
    (``d_steps`` batches from ``iterator``, ``strategy.run`` of the replica step,
    the cross-replica reductions and the step increment), with the replica step
    inlined and never XLA-compiled even when ``config.jit_compile`` is set, so graph
    tools (e.g. the FLOP profiler of ``sagan_tf.perf.benchmark``) see every op of every
    replica. Works under any strategy, from outside ``strategy.scope()``; tracing
    consumes no batch and changes no variable.
    """
    if not self._compiled:  # the very function __call__ runs (its trace is reused)
      return self._fn.get_concrete_function(iterator)
    fn = tf.function(functools.partial(self._step, replica_fn=self._replica_step),
                     autograph=False)
    return fn.get_concrete_function(iterator)


def _dense(grads):
  """Gradients with every ``tf.IndexedSlices`` made dense (repeats summed).

  The conditional batch norms gather gamma and beta by label, so their gradients
  are IndexedSlices, with one slice per example: a class drawn twice in a batch
  repeats an index. TF1's Adam summed repeated slices first
  (``_deduplicate_indexed_slices``) and then updated like dense Adam; Keras 3's
  Adam squares each slice on its own (``v += (1 - beta2) * sum(g_k^2)`` instead of
  ``(sum g_k)^2``), a different step for every repeated class.
  """
  return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
          for g in grads]


def _tf1_reads(variable_reads, generator, discriminator) -> bool:
  """Resolves TrainStep's ``variable_reads`` to "use the TF 1.x read timing"."""
  if variable_reads is None:
    return bool(discriminator.variant.tf1_variable_reads)
  if variable_reads not in VARIABLE_READS:
    raise ValueError(f"variable_reads must be one of {VARIABLE_READS} or None, "
                     f"got {variable_reads!r}.")
  if variable_reads == "tf1" and (discriminator.variant.d_update_u_on_fake
                                  or not generator.variant.g_update_u_at_inference):
    raise ValueError(
        f"variable_reads='tf1' is the official graph's timing (D writes u on its "
        f"real pass only, G on every forward); variant "
        f"{discriminator.variant.name!r} differs: use 'resource'.")
  return variable_reads == "tf1"
