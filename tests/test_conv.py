"""sagan_tf.layers.conv: the im2col matmul equals the convolution, and when it is used."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers import conv
from sagan_tf.layers import spectral_norm


def _inputs(x_shape, k, out, seed=0):
  rs = np.random.RandomState(seed)
  x = tf.constant(rs.randn(*x_shape).astype(np.float32))
  w = tf.constant(0.1 * rs.randn(k, k, x_shape[-1], out).astype(np.float32))
  return x, w


@pytest.mark.parametrize("x_shape,k,out", [
    ((2, 4, 4, 8), 3, 16),
    ((1, 5, 3, 4), 3, 6),  # not square, odd sizes
    ((2, 6, 6, 3), 5, 7),
])
def test_im2col_equals_conv2d_values_and_gradients(x_shape, k, out):
  x, w = _inputs(x_shape, k, out)
  dy = tf.constant(np.random.RandomState(1).randn(
      *x_shape[:3], out).astype(np.float32))

  def run(fn):
    with tf.GradientTape() as tape:
      tape.watch([x, w])
      y = fn(x, w)
      loss = tf.reduce_sum(y * dy)
    return [y] + tape.gradient(loss, [x, w])

  got = run(conv.im2col_conv2d)
  want = run(lambda a, b: tf.nn.conv2d(a, b, 1, "SAME"))
  for g, e, name in zip(got, want, ("y", "dx", "dw")):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-5,
                               err_msg=name)


def test_rule():
  assert conv.use_matmul((4, 4, 4, 1024), (3, 3, 1024, 1024), 1)  # 64 rows
  assert conv.use_matmul((4, 16, 16, 1024), (3, 3, 1024, 1024), 1)  # 1024 rows
  assert not conv.use_matmul((4, 16, 16, 1024), (3, 3, 1024, 512), 1)
  assert not conv.use_matmul((4, 128, 128, 64), (3, 3, 64, 64), 1)
  assert not conv.use_matmul((4, 4, 4, 1024), (3, 3, 1024, 1024), 2)
  assert not conv.use_matmul((4, 4, 4, 1024), (1, 1, 1024, 1024), 1)
  assert not conv.use_matmul((None, 4, 4, 1024), (3, 3, 1024, 1024), 1)
  assert conv.use_matmul((1, 4, 4, 512), (3, 3, 512, 256), 1)  # 2**20 elements
  assert not conv.use_matmul((1, 4, 4, 256), (3, 3, 256, 256), 1)  # smaller
  with conv.as_convolutions():
    assert not conv.use_matmul((4, 4, 4, 1024), (3, 3, 1024, 1024), 1)
  assert conv.use_matmul((4, 4, 4, 1024), (3, 3, 1024, 1024), 1)


def test_rule_leaves_accelerators_alone(monkeypatch):
  monkeypatch.setattr(conv, "_accelerator_present", lambda: True)
  assert not conv.use_matmul((4, 4, 4, 1024), (3, 3, 1024, 1024), 1)


def _graph_op_types(layer, x):
  fn = tf.function(lambda t: layer(t, update_u=False))
  return [op.type for op in fn.get_concrete_function(x).graph.get_operations()]


def test_sn_conv_takes_the_matmul_for_a_wide_kernel_on_small_maps():
  x, _ = _inputs((2, 4, 4, 128), 3, 1024)  # kernel [3, 3, 128, 1024]: 2**20
  layer = spectral_norm.SNConv2D(1024)
  layer(x, update_u=False)
  types = _graph_op_types(layer, x)
  assert "Conv2D" not in types and "MatMul" in types
  with conv.as_convolutions():
    want = layer(x, update_u=False)
    assert "Conv2D" in _graph_op_types(spectral_norm.SNConv2D(1024), x)
  np.testing.assert_allclose(layer(x, update_u=False).numpy(), want.numpy(),
                             rtol=1e-5, atol=1e-5)
  # Large maps for the kernel: the convolution.
  big, _ = _inputs((2, 32, 32, 128), 3, 1024)
  narrow = spectral_norm.SNConv2D(1024)
  narrow(big, update_u=False)
  assert "Conv2D" in _graph_op_types(narrow, big)


def test_conv_rate_finds_convolutions_the_step_runs_as_matmuls():
  from sagan_tf import config as config_lib
  from sagan_tf.perf import conv_rate
  cfg = config_lib.override(config_lib.from_preset("tiny"),
                            {"gf_dim": "128", "df_dim": "128"})
  shapes = conv_rate.step_convs(cfg, batch=1)  # [1, 8, 8, 512] x 512: 64 rows
  rewritten = [s for s in shapes
               if conv.use_matmul(s.input_shape, (3, 3, s.input_shape[-1], s.filters), 1)]
  assert rewritten, "tiny should have a convolution the step runs as a matmul"
