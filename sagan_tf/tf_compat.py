"""The one place sagan_tf reaches into TensorFlow's private API.

Everything else in sagan_tf, eval and launch uses public TensorFlow. What is here has
no public equivalent in TF 2.21; each function names what it relies on, so a TF
upgrade that moves it breaks here, with one place to fix:

* ``trackable_children``: the children ``tf.train.Checkpoint`` saves under an
  object (``Trackable._trackable_children``), to compute checkpoint keys without
  writing a checkpoint (``sagan_tf.run.checkpoint.expected_variables``).
* ``float_ops``: the FLOP count of a graph from TF's profiler
  (``tensorflow.python.profiler.model_analyzer``; ``tf.profiler.experimental``
  profiles time, not FLOPs).
* ``op_determinism_enabled`` / ``disable_op_determinism``: TF has a public switch
  to turn op determinism on (``tf.config.experimental.enable_op_determinism``) but
  none to ask or to turn it off; tests turn it off after a deterministic run.
* ``sublayers``: every Keras layer under a layer, in tracking order
  (``Layer._flatten_layers``; ``Model.layers`` lists direct children only).
* ``fresh_collective_keys``: test-only; moves the collective-key base of every
  new MirroredStrategy out of the way of the previous ones in the same process.
"""
from __future__ import annotations

from typing import Dict

import tensorflow as tf


def trackable_children(obj) -> Dict[str, object]:
  """``{name: child}`` that ``tf.train.Checkpoint`` saves under ``obj``, in the
  saver's order."""
  return obj._trackable_children(save_type="checkpoint")  # pylint: disable=protected-access


def sublayers(layer) -> list:
  """Every Keras layer nested under ``layer`` (not itself), depth first."""
  return list(layer._flatten_layers(include_self=False, recursive=True))  # pylint: disable=protected-access


def float_ops(graph: tf.Graph) -> int:
  """Float operations of one run of ``graph`` (static shapes), by TF's profiler."""
  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler import model_analyzer, option_builder
  opts = option_builder.ProfileOptionBuilder.float_operation()
  opts["output"] = "none"
  return int(model_analyzer.profile(graph, options=opts).total_float_ops)


def op_determinism_enabled() -> bool:
  from tensorflow.python.framework import config as tf_config  # pylint: disable=g-import-not-at-top
  return bool(tf_config.is_op_determinism_enabled())


def disable_op_determinism() -> None:
  """Undoes ``tf.config.experimental.enable_op_determinism`` (process-wide)."""
  from tensorflow.python.framework import config as tf_config  # pylint: disable=g-import-not-at-top
  tf_config.disable_op_determinism()


def fresh_collective_keys(offset: int = 100000) -> None:
  """Test-only: moves the collective key base of new strategies by ``offset``.

  Each MirroredStrategy numbers its collective groups from the same start, and the
  process-wide collective executor remembers every group and instance it saw: two
  strategies in one process (several tests) then collide ("Shape mismatch in the
  collective instance 100"). TensorFlow's own strategy tests move the key base of
  every new strategy out of the way with the same class attribute; a real run has
  one strategy per process and needs nothing of this.
  """
  # pylint: disable=g-import-not-at-top,protected-access
  from tensorflow.python.distribute import collective_all_reduce_strategy as cars
  from tensorflow.python.distribute import mirrored_strategy
  for cls in (mirrored_strategy.MirroredStrategy,
              mirrored_strategy.MirroredStrategyV1,
              cars.CollectiveAllReduceStrategy):
    cls._collective_key_base += offset
