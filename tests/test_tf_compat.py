"""sagan_tf.tf_compat: the private TensorFlow API sagan_tf relies on still works."""
import tensorflow as tf

from sagan_tf import tf_compat


def test_float_ops_counts_a_matmul():
  fn = tf.function(lambda a, b: tf.matmul(a, b)).get_concrete_function(
      tf.TensorSpec([3, 5]), tf.TensorSpec([5, 7]))
  assert tf_compat.float_ops(fn.graph) == 2 * 3 * 5 * 7


def test_op_determinism_toggles():
  assert not tf_compat.op_determinism_enabled()
  tf.config.experimental.enable_op_determinism()
  assert tf_compat.op_determinism_enabled()
  tf_compat.disable_op_determinism()
  assert not tf_compat.op_determinism_enabled()


def test_trackable_children_are_what_the_checkpoint_saves():
  v = tf.Variable(1.0)
  module = tf.Module()
  module.weight = v
  assert tf_compat.trackable_children(module) == {"weight": v}
