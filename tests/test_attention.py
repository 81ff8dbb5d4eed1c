"""sagan_tf.layers.attention.SelfAttention: gate, softmax rows, numbers, u updates."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers.attention import SelfAttention


def _layer(u_space="out", c=16, hw=4, seed=0):
  layer = SelfAttention(u_space=u_space)
  layer.build((None, hw, hw, c))
  x = tf.random.stateless_normal([2, hw, hw, c], seed=[seed, 1])
  return layer, x


def _w_bar(conv, u_space):
  """Kernel / sigma after one power iteration from the stored u (numpy)."""
  k = conv.kernel.numpy()
  w = k.reshape(-1, k.shape[-1]).astype(np.float64)
  u = conv.u.numpy().astype(np.float64)
  if u_space == "out":
    v = u @ w.T
    v /= np.linalg.norm(v) + 1e-12
    u2 = v @ w
    u2 /= np.linalg.norm(u2) + 1e-12
    sigma = (v @ w @ u2.T).item()
  else:
    v = w.T @ u
    v /= np.linalg.norm(v)
    u2 = w @ v
    u2 /= np.linalg.norm(u2)
    sigma = (u2.T @ w @ v).item()
  return w / sigma  # attention never clips sigma


def test_zero_gate_is_identity_and_rows_sum_to_one():
  layer, x = _layer()
  assert float(layer.sigma_ratio) == 0.0
  out, attn = layer(x, return_attention=True)
  np.testing.assert_array_equal(out.numpy(), x.numpy())
  assert attn.shape == (2, 16, 4)
  np.testing.assert_allclose(attn.numpy().sum(-1), 1.0, rtol=1e-6)
  assert (attn.numpy() >= 0).all()


@pytest.mark.parametrize("u_space", ["out", "in"])
def test_matches_numpy_reference(u_space):
  layer, x = _layer(u_space, c=16, hw=4, seed=3)
  layer.sigma_ratio.assign(0.7)
  xn = x.numpy().astype(np.float64)
  n, h, w, c = xn.shape
  conv = lambda t, layer_: t @ _w_bar(layer_, u_space)
  pool = lambda t: t.reshape(n, h // 2, 2, w // 2, 2, -1).max(axis=(2, 4))
  theta = conv(xn, layer.theta).reshape(n, h * w, c // 8)
  phi = pool(conv(xn, layer.phi)).reshape(n, -1, c // 8)
  g = pool(conv(xn, layer.g)).reshape(n, -1, c // 2)
  logits = theta @ phi.transpose(0, 2, 1)
  attn = np.exp(logits - logits.max(-1, keepdims=True))
  attn /= attn.sum(-1, keepdims=True)
  o = conv((attn @ g).reshape(n, h, w, c // 2), layer.attn_conv)
  out, got_attn = layer(x, update_u=False, return_attention=True)
  np.testing.assert_allclose(got_attn.numpy(), attn, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(out.numpy(), xn + 0.7 * o, rtol=1e-4, atol=1e-5)


def test_update_u_reaches_every_sub_convolution():
  layer, x = _layer()
  convs = (layer.theta, layer.phi, layer.g, layer.attn_conv)
  assert [c.name for c in convs] == ["sn_conv_theta", "sn_conv_phi", "sn_conv_g",
                                     "sn_conv_attn"]
  assert all(not c.use_bias and not c.clip_sigma for c in convs)
  before = [c.u.numpy() for c in convs]
  layer(x, update_u=False)
  assert all(np.array_equal(c.u.numpy(), b) for c, b in zip(convs, before))
  layer(x, update_u=True)
  assert all(not np.allclose(c.u.numpy(), b) for c, b in zip(convs, before))


def test_channels_must_be_divisible_by_8():
  with pytest.raises(ValueError, match="divisible by 8"):
    SelfAttention().build((None, 4, 4, 12))
