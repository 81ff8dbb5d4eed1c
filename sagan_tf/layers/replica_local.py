"""Layer state written in every forward pass, kept equal on all replicas without a
collective: the spectral-norm ``u`` and the batch-norm moving statistics.

Each replica computes the new value of such a variable from inputs that are the
same on every replica: ``u' = l2n(l2n(u W^T) W)`` from the stored ``u`` and the
mirrored kernel ``W`` (identical after every optimizer step, which applies the
all-reduced gradients); a moving statistic from its stored value and batch
moments that are already all-reduced (cross-replica BN) or all-gathered (the
tower BN group table, ``sagan_tf.layers.bn_moments``). Every replica runs the same ops on
the same values on the same kind of device, so the new values agree bit for bit,
and averaging them across replicas would only cost a reduction per write (one
per ``u`` and per BN statistic in every forward pass that writes them: the
generator's on each of its ``d_steps + 1`` training forwards, the
discriminator's on each D step). The variables are therefore ``tf.distribute`` sync-on-read with
aggregation ``ONLY_FIRST_REPLICA``:

* in replica context (``strategy.run``) a read or write touches the replica's own
  copy only: no cross-replica communication;
* in cross-replica context (eval, export, standing statistics, attention maps,
  the trainer's sample grid, ``.numpy()``) a read returns the first replica's copy,
  and a write assigns the value to every copy;
* a checkpoint saves the first replica's copy and a restore writes every copy, so
  checkpoints are those of one replica and move between replica counts (and from
  and to the former ``MEAN``-aggregated mirrored variables: same checkpoint keys).

Deliberate deviation: with several replicas the previous ``MEAN`` aggregation
averaged the replicas' values at every write, and MEAN of n identical floats is not
always the float itself (n = 3: ``(a + a + a) / 3``); ``ONLY_FIRST_REPLICA`` keeps
exactly the value one replica computes, which is the one-device value.
MultiWorkerMirroredStrategy: each worker reads its own first replica, equal on
every worker for the same reason. TPUStrategy supports sync-on-read variables
(``TPUSyncOnReadVariable``); not run here (no TPU).
"""
from __future__ import annotations

import keras


def replica_local_weight(layer: keras.layers.Layer, name: str, shape, initializer):
  """A non-trainable float weight of ``layer`` kept equal on all replicas without a
  collective (see the module docstring).

  Same path (``<layer>/<name>``), dtype and checkpoint key as
  ``layer.add_weight(name=..., trainable=False, autocast=False)``; Keras 3's
  ``add_weight`` has no ``synchronization`` argument, hence this function.
  Assign the result to an attribute of ``layer`` (that is what tracks it).

  Args:
    layer: the layer that owns the weight (call from its ``build``).
    name: the weight's name.
    shape: its shape.
    initializer: a Keras initializer or its name.
  """
  with keras.name_scope(layer.name, caller=layer):
    return keras.Variable(
        initializer=keras.initializers.get(initializer), shape=shape,
        dtype=layer.variable_dtype, trainable=False, autocast=False,
        aggregation="only_first_replica", synchronization="on_read", name=name)
