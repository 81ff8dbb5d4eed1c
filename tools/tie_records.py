r"""Near-ties of the official train ops' piecewise decisions, recorded and replayed.

A ReLU passes its gradient where its input is positive and a 2x2 max-pool to its
largest input: decisions, not sums. Where an input lies within rounding of the
decision boundary (a ReLU input next to 0, a max-pool window whose two largest
inputs are next to each other), the host's rounding picks the side, and the
gradient of everything behind it moves by that element's whole contribution:
on the AVX-512 host with ``TF_ENABLE_ONEDNN_OPTS=0``, one ReLU input of
``g_block4`` (``[2, 64, 64, 4]``) changed sign and every G gradient moved by
6.9e-3 of its layer's scale (about ``1 / sqrt(2 * 64 * 64)``, one term of the
layer's sum), twenty times ``train_parity.RHO``, although every forward value
agreed to 7e-6 of its tensor's scale. Rounding, not a missing mechanism: with
oneDNN on, the same code agreed with the official gradients to 1e-5.

So ``tools/make_official_train_reference.py`` records, for every op, the
official decision at every near-tie (``relu_ties``, ``maxpool_ties``), and
``tools/train_parity.py`` replays them: at an element that is a near-tie on both
sides, sagan_tf's ReLU or max-pool takes the official side. Elsewhere each side
decides for itself, so a real difference (a missing mechanism moves inputs far
more than rounding does) still shows.

``MARGIN``, relative to the largest ``|input|`` of the decision's tensor: a
forward value is a float32 result of reductions (convolutions over at most
``9 * 64`` terms, batch-norm statistics over at most ``2 * 128 * 128 = 32768``)
carried through about 30 sequential layers, so by the statistical estimate of
``train_parity``'s docstring its rounding error is below ``30 * sqrt(32768) *
2**-24 = 3.2e-4`` of the tensor's scale (measured: 7e-6). An input nearer than
that to its boundary is a near-tie; there are some hundreds per op in the
fixtures, of which rounding flipped one or two.

Records, in ``reference.npz``: ``tie_<d|g><i>__<k>__index`` (int32 flat indices:
of the input for a ReLU, of the output for a max-pool) and ``tie_<d|g><i>__<k>__side``
(a ReLU: 1 where the official input was > 0; a max-pool: the official window
position 0-3 of the maximum, row-major), for the k-th decision of that op in
``config.json``'s ``decisions[<d|g>]`` (``type`` Relu or MaxPool, ``pass`` g, d_real,
d_fake, loss_real or loss_fake, ``index`` within its pass, ``shape``).
"""
import contextlib

import numpy as np
import tensorflow as tf

MARGIN = 30 * np.sqrt(2 * 128 * 128) * 2.0 ** -24


def key(tag, i, k, field):
  return f"tie_{tag}{i}__{k}__{field}"


def windows(x):
  """``[N, H, W, C]`` -> ``[N * H/2 * W/2 * C, 4]``: the 2x2 VALID windows of a
  stride-2 max-pool, in the output's flat order, positions row-major."""
  n, h, w, c = x.shape
  p = np.reshape(x, (n, h // 2, 2, w // 2, 2, c)).transpose(0, 1, 3, 5, 2, 4)
  return np.reshape(p, (-1, 4))


def relu_ties(x):
  """(flat indices of the ReLU input within MARGIN of 0, 1 where it is > 0)."""
  x = np.reshape(np.asarray(x, np.float32), -1)
  scale = float(np.abs(x).max()) if x.size else 0.0
  idx = np.flatnonzero(np.abs(x) < MARGIN * scale).astype(np.int32)
  return idx, (x[idx] > 0).astype(np.int8)


def maxpool_ties(x):
  """(flat output indices of the windows whose two largest inputs are within
  MARGIN of each other, the position of the maximum in each)."""
  x = np.asarray(x, np.float32)
  scale = float(np.abs(x).max()) if x.size else 0.0
  win = windows(x)
  top2 = np.sort(win, axis=1)[:, -2:]
  idx = np.flatnonzero(top2[:, 1] - top2[:, 0] < MARGIN * scale).astype(np.int32)
  return idx, np.argmax(win[idx], axis=1).astype(np.int8)


def _reachable(op, neighbours):
  """``op`` and every op reached from it through ``neighbours(op)``."""
  seen, stack = set(), [op]
  while stack:
    o = stack.pop()
    if o not in seen:
      seen.add(o)
      stack.extend(neighbours(o))
  return seen


def decision_ops(graph, train_op, images):
  """[(op, pass)]: the forward Relu and MaxPool ops ``train_op`` runs, in creation
  order; pass is g, d_real, d_fake (model.py's two discriminator calls, told apart
  by whether they read the real images), loss_real or loss_fake (the hinge
  loss's ReLUs, on the logits)."""
  runs = _reachable(train_op, lambda o: [t.op for t in o.inputs]
                    + list(o.control_inputs))
  reads_images = _reachable(images.op, lambda o: [c for t in o.outputs
                                                  for c in t.consumers()])
  out = []
  for op in graph.get_operations():
    if op.type not in ("Relu", "MaxPool") or op not in runs:
      continue
    if op.name.startswith("gradients"):
      continue
    real = op in reads_images
    if op.inputs[0].shape.rank < 4:
      kind = "loss_real" if real else "loss_fake"
    elif op.name.split("/")[0] == "model":  # the generator's scope
      kind = "g"
    else:
      kind = "d_real" if real else "d_fake"
    out.append((op, kind))
  return out


def decision_records(decisions):
  """config.json's ``decisions``: decision_ops' result as data."""
  counts, records = {}, []
  for op, kind in decisions:
    records.append({"type": op.type, "name": op.name, "pass": kind,
                    "shape": op.inputs[0].shape.as_list(),
                    "index": counts.get(kind, 0)})
    counts[kind] = counts.get(kind, 0) + 1
  return records


_RELU, _MAX_POOL = tf.nn.relu, tf.nn.max_pool2d


def _near(distance, scale):
  """Whether a distance to a decision boundary is within MARGIN of ``scale``."""
  return distance < MARGIN * scale


def _replayed_relu(x, index, side):
  """ReLU whose gradient mask takes the official side at ``index`` where our
  input is a near-tie too (our own side elsewhere)."""
  flat = tf.reshape(x, [-1])
  at = tf.gather(flat, index)
  on = tf.where(_near(tf.abs(at), tf.reduce_max(tf.abs(flat))), side > 0, at > 0)
  mask = tf.tensor_scatter_nd_update(tf.cast(flat > 0, x.dtype), index[:, None],
                                     tf.cast(on, x.dtype))
  return x * tf.stop_gradient(tf.reshape(mask, tf.shape(x)))


def _replayed_max_pool(x, index, side):
  """2x2 stride-2 max-pool that takes the official window position at
  ``index`` where our window is a near-tie too."""
  y = _MAX_POOL(x, 2, 2, "VALID")
  n, h, w, c = x.shape
  win = tf.reshape(tf.transpose(tf.reshape(x, [n, h // 2, 2, w // 2, 2, c]),
                                [0, 1, 3, 5, 2, 4]), [-1, 4])
  at = tf.gather(win, index)
  top2 = tf.math.top_k(at, 2).values
  near = _near(top2[:, 0] - top2[:, 1], tf.reduce_max(tf.abs(x)))
  pos = tf.where(near, side, tf.argmax(at, axis=1, output_type=tf.int32))
  flat = tf.tensor_scatter_nd_update(tf.reshape(y, [-1]), index[:, None],
                                     tf.gather(at, pos, batch_dims=1))
  return tf.reshape(flat, tf.shape(y))


@contextlib.contextmanager
def replaying(ties):
  """While tracing inside it, ``tf.nn.relu`` and ``tf.nn.max_pool2d`` replay
  ``ties`` (``Fixture.ties``), one entry per call, in call order; raises if
  sagan_tf's calls do not match the official decisions one for one."""
  queue = list(ties)

  def take(kind, x):
    if not queue:
      raise AssertionError(f"sagan_tf ran a {kind} of shape {x.shape} beyond the "
                           f"official op's {len(ties)} decisions")
    want, shape, index, side = queue.pop(0)
    # The loss's ReLUs: official logits [B, 1], sagan_tf's [B]; the same elements.
    same = (tuple(x.shape) == shape if len(shape) == 4
            else int(np.prod(x.shape)) == int(np.prod(shape)))
    if want != kind or not same:
      raise AssertionError(
          f"decision {len(ties) - len(queue) - 1}: sagan_tf ran a {kind} of shape "
          f"{tuple(x.shape)} where the official op ran a {want} of shape {shape}")
    return tf.constant(index), tf.constant(side)

  def relu(features, name=None):
    del name
    return _replayed_relu(features, *take("Relu", features))

  def max_pool2d(value, ksize, strides, padding, *args, **kwargs):
    assert (ksize, strides, padding) == (2, 2, "VALID") and not args and not kwargs
    return _replayed_max_pool(value, *take("MaxPool", value))

  tf.nn.relu, tf.nn.max_pool2d = relu, max_pool2d
  try:
    yield
  finally:
    tf.nn.relu, tf.nn.max_pool2d = _RELU, _MAX_POOL
  if queue:
    raise AssertionError(f"sagan_tf ran {len(ties) - len(queue)} of the official "
                         f"op's {len(ties)} decisions")
