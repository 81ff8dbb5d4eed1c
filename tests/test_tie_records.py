"""tools/tie_records.py: near-ties found, and replayed where both sides are near.

Inputs are built here: a ReLU input or max-pool window put 1e-7 of the tensor's
scale from its boundary (a near-tie: MARGIN is 3.2e-4) and others 1e-2 away (not).
"""
import numpy as np
import pytest
import tensorflow as tf

from tests.tools_import import load_tool

tr = load_tool("tie_records")


def test_relu_ties_are_the_inputs_within_the_margin_with_their_side():
  x = np.array([1.0, 1e-7, -1e-7, 1e-2, -1e-2, -1.0], np.float32)
  idx, side = tr.relu_ties(x)
  assert idx.tolist() == [1, 2] and side.tolist() == [1, 0]


def test_replayed_relu_takes_the_official_side_only_where_ours_is_near_too():
  x = tf.constant([[1.0, -1e-7, 1e-7, -1e-2]])
  # Official sides: on at 1 (ours off), off at 2 (ours on), on at 3 (ours far).
  index = tf.constant([1, 2, 3], tf.int32)
  side = tf.constant([1, 0, 1], tf.int32)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = tr._replayed_relu(x, index, side)
  grad = tape.gradient(y, x).numpy()
  assert grad.tolist() == [[1.0, 1.0, 0.0, 0.0]]
  np.testing.assert_array_equal(y.numpy(), np.float32([[1.0, -1e-7, 0.0, 0.0]]))


def test_replayed_max_pool_routes_the_gradient_to_the_official_maximum():
  x = np.zeros([1, 2, 4, 1], np.float32)
  x[0, :, :2, 0] = [[1.0, 1.0 - 1e-7], [0.0, 0.0]]   # window 0: a near-tie
  x[0, :, 2:, 0] = [[0.5, 0.9], [0.0, 0.0]]          # window 1: not
  idx, side = tr.maxpool_ties(x)
  assert idx.tolist() == [0] and side.tolist() == [0]
  x = tf.constant(x)
  for official, want in ((0, [1.0, 0.0]), (1, [0.0, 1.0])):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = tr._replayed_max_pool(x, tf.constant([0, 1]), tf.constant([official, 0]))
    grad = tape.gradient(y, x).numpy()[0, :, :, 0]
    assert grad[0, :2].tolist() == want  # the near-tie: the official position
    assert grad[0, 2:].tolist() == [0.0, 1.0]  # not near: its own maximum


def test_replaying_matches_calls_one_for_one_and_restores_tf():
  ties = [("Relu", (2,), np.zeros([0], np.int32), np.zeros([0], np.int32))]
  with tr.replaying(ties):
    tf.nn.relu(tf.constant([1.0, -1.0]))
  assert tf.nn.relu is tr._RELU
  with pytest.raises(AssertionError, match=r"Relu of shape \(1, 3\)"):
    with tr.replaying(ties):
      tf.nn.relu(tf.constant([[1.0, -1.0, 2.0]]))
  assert tf.nn.relu is tr._RELU
