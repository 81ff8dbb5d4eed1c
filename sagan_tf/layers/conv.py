"""The SN layers' convolution ('SAME' padding), and when it runs as one matmul.

``conv2d`` is ``tf.nn.conv2d(x, w, strides, "SAME")`` except where the kernel is
large next to the activations it slides over: then it is written as im2col and
one matmul, which computes the same products and sums in another order (the
results agree to float32 rounding; tests/test_conv.py).

Why: on the CPU, the input gradient of a convolution needs the kernel
transposed and reversed (``[k, k, out, in]``), and XLA and TensorFlow copy it
into that layout at every backward pass. For the 1024-wide blocks of the 128 px
models at 4x4 and 8x8, at a small per-replica batch, those copies cost many times
the convolutions themselves (profile of the ``imagenet128`` batch-4 XLA step on
the 2-core development CPU: 8 copies of ``[3, 3, 1024, 1024]`` took 0.49 of the
2.7 thread-seconds outside the convolutions). As a matmul, patches
``[N*H*W, k*k*in]`` times the kernel viewed as ``[k*k*in, out]`` (a free reshape
of ``[k, k, in, out]``: the patches are concatenated in the kernel's (row,
column, channel) order), both gradients are matmuls that read the kernel where it
lies. The patch matrix is ``k*k`` times the input, so the rewrite pays only where
it is no larger than the kernel.

The rule (``use_matmul``): a kernel of at least 2**20 elements (``[3, 3, 512,
256]`` and larger: smaller ones are cheap to transpose, and keep the summation
order of TensorFlow's convolution, which the official code used), square and
larger than 1, stride 1, static shapes, ``N * H * W <= out`` channels, and no GPU
or TPU in the process (it was measured only on the CPU; elsewhere the
convolution is left to cuDNN / the TPU compiler).
``docs/speed.md`` has the step times with and without it.
"""
from __future__ import annotations

import contextlib
import threading

import tensorflow as tf

# Smaller kernels are cheap to transpose; a convolution keeps TensorFlow's own
# kernel (and so the official code's summation order) there.
MIN_KERNEL_SIZE = 1 << 20  # elements: [3, 3, 512, 256] and larger

_STATE = threading.local()


@contextlib.contextmanager
def as_convolutions():
  """Within it, ``conv2d`` always emits ``tf.nn.conv2d`` (models traced here show
  every convolution as a ``Conv2D`` op: ``sagan_tf.perf.conv_rate`` finds them so)."""
  before = getattr(_STATE, "off", False)
  _STATE.off = True
  try:
    yield
  finally:
    _STATE.off = before


def _accelerator_present() -> bool:
  return bool(tf.config.list_logical_devices("GPU")
              or tf.config.list_logical_devices("TPU"))


def use_matmul(x_shape, kernel_shape, strides: int) -> bool:
  """Whether ``conv2d`` takes the im2col matmul for these static shapes."""
  n, h, w = (x_shape[0], x_shape[1], x_shape[2])
  k, k2, c_in, out = (int(d) for d in kernel_shape)
  if getattr(_STATE, "off", False):
    return False
  if strides != 1 or k != k2 or k < 2 or k % 2 == 0:
    return False
  if k * k * c_in * out < MIN_KERNEL_SIZE:
    return False
  if n is None or h is None or w is None:
    return False
  return n * h * w <= out and not _accelerator_present()


def im2col_conv2d(x, w):
  """'SAME', stride-1 convolution with an odd square kernel as one matmul."""
  k, _, c_in, out = w.shape
  _, h, wd, _ = x.shape
  p = k // 2
  padded = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
  cols = [padded[:, i:i + h, j:j + wd, :] for i in range(k) for j in range(k)]
  patches = tf.reshape(tf.concat(cols, axis=-1), [-1, k * k * c_in])
  y = tf.matmul(patches, tf.reshape(w, [k * k * c_in, out]))
  return tf.reshape(y, [-1, h, wd, out])


def conv2d(x, w, strides: int = 1):
  """``tf.nn.conv2d(x, w, strides, "SAME")``, as a matmul where ``use_matmul``."""
  if use_matmul(x.shape, w.shape, strides):
    return im2col_conv2d(x, w)
  return tf.nn.conv2d(x, w, strides=strides, padding="SAME")
