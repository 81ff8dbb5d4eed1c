"""sagan_tf.layers.spectral_norm: sigma, u updates, gradients, both u spaces, clipping."""
import numpy as np
import pytest
import tensorflow as tf

from sagan_tf.layers.spectral_norm import SNConv2D, SNDense, SNEmbedding, power_iteration

SPACES = ("out", "in")


def _conv(u_space, clip=False):
  layer = SNConv2D(6, 3, u_space=u_space, clip_sigma=clip)
  layer.build((None, 5, 5, 4))
  return layer, tf.random.stateless_normal([2, 5, 5, 4], seed=[1, 2])


def _dense(u_space, clip=False):
  layer = SNDense(7, u_space=u_space, clip_sigma=clip)
  layer.build((None, 11))
  return layer, tf.random.stateless_normal([3, 11], seed=[3, 4])


def _embedding(u_space, clip=False):
  layer = SNEmbedding(9, 5, u_space=u_space, clip_sigma=clip)
  layer.build()
  return layer, tf.constant([0, 3, 8, 3])


def _seeded(maker):
  """Deterministic weights and u (Keras' initialisers are unseeded here)."""
  def make(u_space, clip=False):
    layer, x = maker(u_space, clip)
    rs = np.random.RandomState(0)
    for var in layer.weights:
      var.assign(rs.randn(*var.shape).astype(np.float32))
    return layer, x
  return make


MAKERS = {"conv": _seeded(_conv), "dense": _seeded(_dense),
          "embedding": _seeded(_embedding)}


def _matrix(layer):
  """The [in, out] matrix whose sigma the layer estimates."""
  if isinstance(layer, SNEmbedding):
    return layer.embeddings.numpy().T
  k = layer.kernel.numpy()
  return k.reshape(-1, k.shape[-1])


def _hand_sigma(w, u, u_space):
  """One power iteration from u, written independently of the library (float64)."""
  w, u = np.float64(w), np.float64(u)
  if u_space == "out":
    v = u @ w.T
    v /= np.linalg.norm(v) + 1e-12
    u2 = v @ w
    u2 /= np.linalg.norm(u2) + 1e-12
    return float((v @ w @ u2.T).item()), u2
  v = w.T @ u
  v /= np.linalg.norm(v)
  u2 = w @ v
  u2 /= np.linalg.norm(u2)
  return float((u2.T @ w @ v).item()), u2


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("u_space", SPACES)
def test_sigma_converges_to_largest_singular_value(kind, u_space):
  layer, x = MAKERS[kind](u_space)
  expected_u_shape = {"out": (1, _matrix(layer).shape[1]),
                      "in": (_matrix(layer).shape[0], 1)}[u_space]
  assert tuple(layer.u.shape) == expected_u_shape
  for _ in range(200):
    layer(x, update_u=True)
  top = np.linalg.svd(_matrix(layer), compute_uv=False)[0]
  np.testing.assert_allclose(float(layer.sigma()), top, rtol=1e-4)


@pytest.mark.parametrize("kind", sorted(MAKERS))
@pytest.mark.parametrize("u_space", SPACES)
def test_one_iteration_matches_hand_computation_and_update_u(kind, u_space):
  layer, x = MAKERS[kind](u_space)
  u0 = layer.u.numpy()
  sigma, u_new = _hand_sigma(_matrix(layer), u0, u_space)
  np.testing.assert_allclose(float(layer.sigma()), sigma, rtol=1e-5)
  # The stored u is not unit-norm (truncated normal), and sigma is not top s.v.
  assert abs(np.linalg.norm(u0) - 1.0) > 1e-3
  layer(x, update_u=False)
  np.testing.assert_array_equal(layer.u.numpy(), u0)
  layer(x, update_u=True)
  np.testing.assert_allclose(layer.u.numpy(), u_new, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("u_space", SPACES)
def test_forward_uses_w_over_sigma(u_space):
  layer, x = MAKERS["dense"](u_space)
  layer.bias.assign(np.linspace(-1, 1, 7).astype(np.float32))
  w = _matrix(layer)
  sigma, _ = _hand_sigma(w, layer.u.numpy(), u_space)
  expected = x.numpy() @ (w / sigma) + layer.bias.numpy()
  np.testing.assert_allclose(layer(x, update_u=False).numpy(), expected,
                             rtol=1e-5, atol=1e-5)
  conv, xc = MAKERS["conv"](u_space)
  k = conv.kernel.numpy()
  sigma, _ = _hand_sigma(k.reshape(-1, 6), conv.u.numpy(), u_space)
  expected = tf.nn.conv2d(xc, k / sigma, 1, "SAME") + conv.bias
  np.testing.assert_allclose(conv(xc, update_u=False).numpy(), expected.numpy(),
                             rtol=1e-5, atol=1e-5)


def test_clip_sigma_only_divides_when_sigma_exceeds_one():
  layer, x = MAKERS["dense"]("in", clip=True)
  layer.kernel.assign(layer.kernel * 0.01)  # sigma < 1: W used as is
  assert float(layer.sigma()) < 1.0
  np.testing.assert_allclose(layer(x, update_u=False).numpy(),
                             (x @ layer.kernel + layer.bias).numpy(), rtol=1e-6)
  layer.kernel.assign(layer.kernel * 1000.0)  # sigma > 1: W / sigma
  sigma = float(layer.sigma())
  assert sigma > 1.0
  np.testing.assert_allclose(layer(x, update_u=False).numpy(),
                             (x @ (layer.kernel / sigma) + layer.bias).numpy(),
                             rtol=1e-5)


@pytest.mark.parametrize("u_space", SPACES)
def test_gradient_flows_through_sigma(u_space):
  """dL/dW equals the gradient of a hand-written W / sigma(W), not of W / const."""
  layer, x = MAKERS["conv"](u_space)
  u = tf.constant(layer.u.numpy())
  r = tf.random.stateless_normal([2, 5, 5, 6], seed=[7, 8])
  l2n = lambda t: t / (tf.norm(t) + 1e-12)

  def hand(w, stop_sigma=False):
    m = tf.reshape(w, [-1, 6])
    if u_space == "out":
      v = l2n(tf.matmul(u, m, transpose_b=True))
      u2 = l2n(tf.matmul(v, m))
      sigma = tf.reduce_sum(tf.matmul(v, m) * u2)
    else:  # TF-GAN: u' and v are constants for the gradient
      v = tf.stop_gradient(tf.math.l2_normalize(tf.matmul(m, u, transpose_a=True)))
      u2 = tf.stop_gradient(tf.math.l2_normalize(tf.matmul(m, v)))
      sigma = tf.reduce_sum(tf.matmul(u2, m, transpose_a=True) * tf.transpose(v))
    if stop_sigma:
      sigma = tf.stop_gradient(sigma)
    return tf.reduce_sum((tf.nn.conv2d(x, w / sigma, 1, "SAME")) * r)

  with tf.GradientTape() as tape:
    loss = tf.reduce_sum((layer(x, update_u=False) - layer.bias) * r)
  grad = tape.gradient(loss, layer.kernel).numpy()
  w = tf.constant(layer.kernel.numpy())
  results = {}
  for stop in (False, True):
    with tf.GradientTape() as tape:
      tape.watch(w)
      value = hand(w, stop)
    results[stop] = tape.gradient(value, w).numpy()
  np.testing.assert_allclose(grad, results[False], rtol=1e-4, atol=1e-5)
  assert np.abs(results[False] - results[True]).max() > 1e-3


def test_official_gradient_matches_finite_difference():
  """Float64 check of the official power iteration's derivative of sigma."""
  rng = np.random.RandomState(0)
  w = rng.randn(6, 4)
  u = tf.constant(rng.randn(1, 4))
  wt = tf.constant(w)
  with tf.GradientTape() as tape:
    tape.watch(wt)
    sigma, _ = power_iteration(wt, u, "out")
  grad = tape.gradient(sigma, wt).numpy()
  eps, fd = 1e-6, np.zeros_like(w)
  for i in range(w.shape[0]):
    for j in range(w.shape[1]):
      d = np.zeros_like(w)
      d[i, j] = eps
      plus, _ = power_iteration(tf.constant(w + d), u, "out")
      minus, _ = power_iteration(tf.constant(w - d), u, "out")
      fd[i, j] = (float(plus) - float(minus)) / (2 * eps)
  np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-8)


def test_bad_u_space():
  with pytest.raises(ValueError, match="u_space"):
    SNDense(3, u_space="sideways")


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_late_u_grad_keeps_values_and_takes_the_w_gradient_at_u_new(kind):
  """TF 1.x RefVariable semantics: the backward of v = l2n(u W^T) read u after
  the forward wrote u'. Forward values must not change at all; the W-gradient
  must be the resource one with its factor u (in dW += g_x^T u) replaced by u'."""
  outs, grads, u_after = {}, {}, {}
  for late in (False, True):
    layer, x = MAKERS[kind]("out")
    u = layer.u.numpy()
    w_var = layer.embeddings if kind == "embedding" else layer.kernel
    with tf.GradientTape() as tape:
      out = tf.cast(layer(x, update_u=True, late_u_grad=late), tf.float32)
      r = tf.random.stateless_normal(tf.shape(out), seed=[5, 6])
      loss = tf.reduce_sum(out * r)
    outs[late], u_after[late] = out.numpy(), layer.u.numpy()
    grads[late] = tape.gradient(loss, w_var).numpy()
  np.testing.assert_array_equal(outs[True], outs[False])
  np.testing.assert_array_equal(u_after[True], u_after[False])
  u_new = u_after[True]

  # Independent chain rule: g_x = dloss/dx at x = u W^T (as forward), then the
  # two gradients differ exactly by g_x^T (u' - u) in the [in, out] matrix view.
  layer, x = MAKERS[kind]("out")
  m = tf.constant(_matrix(layer))
  x_val = tf.matmul(tf.constant(u), m, transpose_b=True)
  l2n = lambda t: t / (tf.sqrt(tf.reduce_sum(tf.square(t))) + 1e-12)
  with tf.GradientTape() as tape:
    tape.watch(x_val)
    v = l2n(x_val)
    u2 = l2n(tf.matmul(v, m))
    sigma = tf.squeeze(tf.matmul(tf.matmul(v, m), u2, transpose_b=True))
    if kind == "embedding":
      out = tf.gather(tf.transpose(m / sigma), x)
    elif kind == "dense":
      out = tf.matmul(x, m / sigma) + layer.bias
    else:
      out = tf.nn.conv2d(x, tf.reshape(m / sigma, layer.kernel.shape), 1,
                         "SAME") + layer.bias
    r = tf.random.stateless_normal(tf.shape(out), seed=[5, 6])
    loss = tf.reduce_sum(out * r)
  g_x = tape.gradient(loss, x_val).numpy()  # [1, in]
  correction = g_x.T @ (u_new - u)  # [in, out]
  if kind == "embedding":
    correction = correction.T  # the embedding normalises its transpose
  else:
    correction = correction.reshape(grads[False].shape)
  np.testing.assert_allclose(grads[True] - grads[False], correction,
                             rtol=1e-3, atol=1e-6)
  assert np.abs(correction).max() > 1e-3  # u' - u is large from a random u


def test_late_u_grad_has_no_effect_in_the_tfgan_u_space():
  grads = {}
  for late in (False, True):
    layer, x = MAKERS["dense"]("in")
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(layer(x, update_u=True, late_u_grad=late))
    grads[late] = tape.gradient(loss, layer.kernel).numpy()
  np.testing.assert_array_equal(grads[True], grads[False])
