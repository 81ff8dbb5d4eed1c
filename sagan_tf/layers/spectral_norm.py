"""Spectrally normalised Conv2D, Dense and Embedding layers.

Official semantics (``ops.spectral_normed_weight`` in brain-research/self-attention-gan):

* ``W`` is reshaped to ``[-1, out]``; a persistent, non-trainable ``u`` of shape
  ``[1, out]`` (truncated-normal init, *not* unit norm) lives in the output space.
* One power iteration per forward pass, starting from the stored ``u``::

      v  = l2n(u W^T)            # [1, in]
      u' = l2n(v W)              # [1, out]
      sigma = v W u'^T
      W_bar = W / sigma          # gradients flow through sigma, v and u'

  with ``l2n(x) = x / (||x|| + 1e-12)``.
* Whether ``u'`` is written back into ``u`` is decided by the caller (``update_u``).

How TF 1.x trained through this (RefVariables, as the official code ran): an op
that takes a RefVariable reads it when the op runs, not when the graph was built.
``v = l2n(matmul(u, W^T))`` takes the *variable* ``u``, so the gradient op of that
matmul (``dW += g_x^T u``) reads ``u`` during the backward pass, after the forward
pass's ``u.assign(u')`` has landed in the same ``session.run``: the backward of
every layer whose ``u`` is written in that run uses ``u'`` where the forward used
``u``. Everything else in the backward reuses forward values. ``late_u_grad=True``
reproduces that: same forward values, the W-gradient through ``u W^T`` taken at
``u'``. It matters while ``u`` is far from converged (the first steps after
initialisation, where ``u`` is not even unit-norm, and after large weight
changes); once ``u' ~ u`` the two gradients agree. Which passes need it is the
train step's business (``sagan_tf.training.step``).
* The embedding normalises the *transposed* map ``[emb, classes]``, so its ``u`` has
  shape ``[1, num_classes]`` (TF-GAN: ``[embedding_dim, 1]``).

The TF-GAN estimator port (``tfgan_estimator`` variant) differs and is supported
with its own semantics through two constructor arguments:

* ``u_space="in"``: ``u`` of shape ``[K, 1]`` lives in the input space (K = product
  of all but the last kernel dimension): ``v = l2n(W^T u)``, ``u' = l2n(W v)``,
  ``sigma = u'^T W v``, with ``tf.nn.l2_normalize`` (``x * rsqrt(max(sum x^2, 1e-12))``),
  and ``u'``, ``v`` held constant for the gradient (``tf.stop_gradient``, as TF-GAN),
  so the gradient reaches sigma only through the explicit ``W`` in ``u'^T W v``.
* ``clip_sigma=True``: ``W / max(1, sigma)``.

Deliberate deviations from the official code:

* The power iteration and the division by sigma always run in float32, also under a
  mixed-precision policy (the kernel and ``u`` are stored and read in float32); only
  the normalised kernel is cast to the compute dtype.
* Variables are Keras layer weights (``kernel``, ``bias``, ``u``) instead of TF1
  ``get_variable`` entries named ``w``/``Matrix``/``biases``; ``sagan_tf.interop.convert`` holds
  the name map.
* Under a multi-replica strategy ``u`` is a sync-on-read variable that each replica
  writes on its own, with no cross-replica reduction: ``u'`` is the same on every
  replica by construction (``sagan_tf.layers.replica_local``).
* On the CPU, a 3x3 convolution whose kernel outweighs its activations runs as
  im2col and one matmul (``sagan_tf.layers.conv``): the same sums in another order.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from sagan_tf.layers import conv
from sagan_tf.layers.replica_local import replica_local_weight

_OFFICIAL_EPS = 1e-12


def _l2n_official(x):
  return x / (tf.sqrt(tf.reduce_sum(tf.square(x))) + _OFFICIAL_EPS)


def power_iteration(w_mat, u, u_space="out", late_u_grad=False):
  """One power iteration on a 2-D weight matrix.

  Args:
    w_mat: float32 `[in, out]` matrix.
    u: the stored vector: `[1, out]` for ``u_space="out"`` (official), `[in, 1]`
      for ``u_space="in"`` (TF-GAN).
    late_u_grad: (``u_space="out"``) take the gradient of ``v = l2n(u W^T)``
      w.r.t. ``W`` at the post-iteration ``u'`` instead of ``u``, as TF 1.x did
      when ``u`` was written in the same ``session.run`` (see the module
      docstring). The returned values are unchanged (bit for bit). No effect for
      ``u_space="in"``, whose ``v`` and ``u'`` are constants for the gradient.

  Returns:
    (sigma, u_new): scalar estimate of the largest singular value, and the updated
    vector of the same shape as ``u``. Both are differentiable w.r.t. ``w_mat``
    (for ``u_space="in"`` sigma only through its explicit ``w_mat`` factor).
  """
  if u_space == "out":
    v = _l2n_official(tf.matmul(u, w_mat, transpose_b=True))  # [1, in]
    u_new = _l2n_official(tf.matmul(v, w_mat))  # [1, out]
    if late_u_grad:
      # Value u W^T, W-gradient (u')^T g: x + (y - y) is x exactly, and only
      # y = u' W^T carries the gradient to W. Everything downstream of v keeps
      # its forward values, as TF1's backward did (it reused them).
      late = tf.stop_gradient(u_new)
      y = tf.matmul(late, w_mat, transpose_b=True)
      x = tf.matmul(u, tf.stop_gradient(w_mat), transpose_b=True)
      v = _l2n_official(x + (y - tf.stop_gradient(y)))
      u_new = _l2n_official(tf.matmul(v, w_mat))
    sigma = tf.squeeze(tf.matmul(tf.matmul(v, w_mat), u_new, transpose_b=True))
  elif u_space == "in":
    v = tf.math.l2_normalize(tf.matmul(w_mat, u, transpose_a=True))  # [out, 1]
    u_new = tf.math.l2_normalize(tf.matmul(w_mat, v))  # [in, 1]
    u_new, v = tf.stop_gradient(u_new), tf.stop_gradient(v)  # as TF-GAN
    sigma = tf.squeeze(tf.matmul(tf.matmul(u_new, w_mat, transpose_a=True), v))
  else:
    raise ValueError(f"u_space must be 'out' or 'in', got {u_space!r}.")
  return sigma, u_new


class _SpectralNormMixin:
  """Shared spectral-norm state for the SN layers (``u`` and the normalisation)."""

  def _init_sn(self, u_space, clip_sigma):
    if u_space not in ("out", "in"):
      raise ValueError(f"u_space must be 'out' or 'in', got {u_space!r}.")
    self.u_space = u_space
    self.clip_sigma = bool(clip_sigma)

  def _add_u(self, rows, cols):
    """Creates ``u`` for a `[rows, cols]` matrix view of the kernel."""
    shape = (1, cols) if self.u_space == "out" else (rows, 1)
    # Equal on every replica by construction: written with no collective.
    self.u = replica_local_weight(
        self, "u", shape,
        keras.initializers.TruncatedNormal(mean=0.0, stddev=1.0))

  def normalized(self, w, update_u, late_u_grad=False):
    """Returns ``w / sigma`` (float32) after one power iteration.

    Args:
      w: float32 kernel viewed as the matrix the SN acts on (any shape whose last
        dimension is the SN "out" dimension).
      update_u: write the post-iteration vector back into ``u``.
      late_u_grad: the backward of ``l2n(u W^T)`` takes ``u'`` (TF 1.x
        RefVariable semantics; see the module docstring).
    """
    w_shape = tf.shape(w)
    w_mat = tf.reshape(w, [-1, w.shape[-1]])
    sigma, u_new = power_iteration(w_mat, tf.convert_to_tensor(self.u),
                                   self.u_space, late_u_grad)
    if self.clip_sigma:
      sigma = tf.maximum(1.0, sigma)
    if update_u:
      self.u.assign(u_new)
    return tf.reshape(w_mat / sigma, w_shape)

  def sigma(self):
    """The sigma the next forward pass would use (no update of ``u``)."""
    w = tf.convert_to_tensor(self._sn_weight())
    sigma, _ = power_iteration(tf.reshape(w, [-1, w.shape[-1]]),
                               tf.convert_to_tensor(self.u), self.u_space)
    return sigma


class SNConv2D(_SpectralNormMixin, keras.layers.Layer):
  """Spectrally normalised 2-D convolution, stride and padding 'SAME' as official.

  Call: ``layer(x, update_u=True, late_u_grad=False)``; x `[N, H, W, C_in]` ->
  `[N, H/s, W/s, filters]`.
  """

  def __init__(self, filters, kernel_size=3, strides=1, use_bias=True,
               u_space="out", clip_sigma=False, **kwargs):
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.kernel_size = int(kernel_size)
    self.strides = int(strides)
    self.use_bias = bool(use_bias)
    self._init_sn(u_space, clip_sigma)

  def build(self, input_shape):
    c_in = int(input_shape[-1])
    k = self.kernel_size
    self.kernel = self.add_weight(
        name="kernel", shape=(k, k, c_in, self.filters), autocast=False,
        initializer=keras.initializers.GlorotUniform())
    self._add_u(k * k * c_in, self.filters)
    if self.use_bias:
      self.bias = self.add_weight(name="bias", shape=(self.filters,),
                                  initializer="zeros", autocast=False)

  def _sn_weight(self):
    return self.kernel

  def call(self, x, update_u=True, late_u_grad=False):
    w = self.normalized(tf.convert_to_tensor(self.kernel), update_u, late_u_grad)
    y = conv.conv2d(x, tf.cast(w, x.dtype), self.strides)
    if self.use_bias:
      y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
    return y


class SNDense(_SpectralNormMixin, keras.layers.Layer):
  """Spectrally normalised dense layer: `[N, in]` -> `[N, units]`."""

  def __init__(self, units, use_bias=True, u_space="out", clip_sigma=False,
               **kwargs):
    super().__init__(**kwargs)
    self.units = int(units)
    self.use_bias = bool(use_bias)
    self._init_sn(u_space, clip_sigma)

  def build(self, input_shape):
    d_in = int(input_shape[-1])
    self.kernel = self.add_weight(
        name="kernel", shape=(d_in, self.units), autocast=False,
        initializer=keras.initializers.GlorotUniform())
    self._add_u(d_in, self.units)
    if self.use_bias:
      self.bias = self.add_weight(name="bias", shape=(self.units,),
                                  initializer="zeros", autocast=False)

  def _sn_weight(self):
    return self.kernel

  def call(self, x, update_u=True, late_u_grad=False):
    w = self.normalized(tf.convert_to_tensor(self.kernel), update_u, late_u_grad)
    y = tf.matmul(x, tf.cast(w, x.dtype))
    if self.use_bias:
      y = y + tf.cast(self.bias, y.dtype)
    return y


class SNEmbedding(_SpectralNormMixin, keras.layers.Layer):
  """Spectrally normalised class embedding: labels `[N]` -> `[N, embedding_dim]`.

  Both the official code and TF-GAN normalise the transposed map
  `[embedding_dim, num_classes]`, so ``u`` is `[1, num_classes]` (official,
  ``u_space="out"``) or `[embedding_dim, 1]` (TF-GAN, ``u_space="in"``).
  """

  def __init__(self, num_classes, embedding_dim, u_space="out", clip_sigma=False,
               **kwargs):
    super().__init__(**kwargs)
    self.num_classes = int(num_classes)
    self.embedding_dim = int(embedding_dim)
    self._init_sn(u_space, clip_sigma)

  def build(self, input_shape=None):
    self.embeddings = self.add_weight(
        name="embeddings", shape=(self.num_classes, self.embedding_dim),
        autocast=False, initializer=keras.initializers.GlorotUniform())
    # Both variants normalise the transposed map [embedding_dim, num_classes].
    self._add_u(self.embedding_dim, self.num_classes)

  def _sn_weight(self):
    return tf.transpose(tf.convert_to_tensor(self.embeddings))

  def call(self, labels, update_u=True, late_u_grad=False):
    m_t = tf.transpose(tf.convert_to_tensor(self.embeddings))
    m_bar = tf.transpose(self.normalized(m_t, update_u, late_u_grad))
    return tf.gather(m_bar, tf.cast(labels, tf.int32))
