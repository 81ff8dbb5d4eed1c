"""Batch-norm moments of the generator's batch norms (``sagan_tf.layers.normalization``):
over the whole global batch (all-reduced across replicas), or per group of
consecutive examples (tower BN), and the moving-average update per group.

Tower batch norm (``group_size``, ``Config.bn_group_size``). The official ImageNet
run (train_imagenet.py, model.py) built 4 towers of 64 examples: each tower's CBNs
and ``g_bn`` normalised over that tower's 64 examples only, and each tower added its
own moving-statistics updates to ``UPDATE_OPS`` (4 per variable per step). With
``group_size=N > 0`` the batch is cut into groups of N consecutive examples (on one
device, in batch order; across replicas, replica after replica, as the towers were
fed consecutive slices of one stream) and each group is normalised with its own
moments, with the official arithmetic per group (two-pass ``tf.nn.moments``, biased
variance, g_bn's Bessel factor from the group's N*H*W count). This works the same on
one device, under MirroredStrategy and on TPU:

* N divides the per-replica batch: moments of local groups (a reshape to
  `[G_local, N*H*W, C]`); the normalisation needs no cross-replica communication,
  but with several replicas the moving statistics need every group's moments: the
  table of all groups' moments is all-reduced as below (no gradient flows through
  it).
* N is a multiple k of the per-replica batch (e.g. TPU 8 cores x 32, N 64): each
  replica's two-pass moments are combined over its k-replica group by the parallel
  variance formula, var = mean_r(var_r + (mean_r - mean)^2). The per-replica
  moments reach the other replicas through one all-reduce SUM of a `[R, 2, U, C]`
  table in which each replica fills only its own row (an all-reduce over a subgroup
  of replicas is not available on every strategy; a full all-reduce is).
* Anything else raises ValueError at trace time (``check_group_size``), naming the
  per-replica and global batch; ``Config.validate`` already checks that N divides
  the global batch. One exception: outside a multi-replica step (one device, or
  the trainer's cross-replica sample grid) a batch N does not divide ends with a
  smaller group, so a sample grid of 80 images works with N = 64.

Moving statistics with groups: the official towers' update ops ran in one
``session.run`` with no order among them, so the outcome depends on the scheduler.
tools/check_official_towers.py builds the unmodified official generator in two
towers on two CPU devices and classifies each moving statistic after one run: CBN's
``assign(v, v * d + m_t * (1 - d))`` often lost one tower's update (both read ``v``
before either wrote: 8 to 20 of the 20 CBN statistics per run over 24 runs, the
surviving tower varying from run to run), the rest composed both; g_bn's
``assign_sub`` always composed both. sagan_tf applies one update per group,
sequentially in group order g = 0..G-1, v <- v * d + m_g * (1 - d), with the
official per-update expression.
Why: it is deterministic (the official result is not), it counts every tower's
statistics (what adding one update op per tower meant to do, and what g_bn got),
it equals a serial execution of the official update ops in tower order, and the
group table is the same on every replica, so the moving statistics stay identical
across replicas. (With decay d, a lost update instead leaves a d-per-step average
of one random tower's moments.) The G per-group updates are computed in a tensor
and written with one assign, on each replica to its own copy (no cross-replica
reduction: the copies are equal by construction, ``sagan_tf.layers.replica_local``).

Verification: the same tool shows the normalisation itself matches the official
towers (largest generator-output difference 7.1e-6 and 8.3e-6 in two runs of the
tool with ``group_size`` = the tower batch; 1.73 with ``group_size=0``), and each official moving statistic equals, within
1e-5, either sagan_tf's sequential rule or a single tower's update.
tests/test_tower_norm.py checks grouped moments, gradients and the update order
against an independent numpy computation on one device and on 2 replicas.

Deliberate deviations from the official code:

* With ``group_size=0`` (the default) and more than one replica of a
  ``tf.distribute`` strategy, the batch moments are all-reduced across replicas (as
  TF-GAN's TPU batch norm does), so the normalisation and the moving statistics are
  those of the global batch. With one replica the moments are exactly
  ``tf.nn.moments``.
* With ``group_size > 0`` every group's moving-statistics update is applied, in
  group order; the official CBN updates raced and often kept one tower's (above).

These all-reduces (one per batch-norm layer per training forward pass, and their
gradients in the G step) are the only cross-replica communication of the batch
norms: the moving statistics, computed on every replica from the same all-reduced
moments, are written without one (``sagan_tf.layers.replica_local``).
"""
from __future__ import annotations

import tensorflow as tf


def batch_moments(x, bessel=False):
  """Mean and variance over N, H, W (global across replicas under a strategy).

  Args:
    x: `[N, H, W, C]` tensor (cast to float32).
    bessel: also return the Bessel-corrected variance.

  Returns:
    (mean, variance[, unbiased_variance]), each `[C]` float32; variance is biased.
  """
  x = tf.cast(x, tf.float32)
  ctx = tf.distribute.get_replica_context()
  n_local = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
  if ctx is not None and ctx.num_replicas_in_sync > 1:
    s, sq, n = ctx.all_reduce(
        tf.distribute.ReduceOp.SUM,
        [tf.reduce_sum(x, [0, 1, 2]), tf.reduce_sum(tf.square(x), [0, 1, 2]), n_local])
    mean = s / n
    var = tf.maximum(sq / n - tf.square(mean), 0.0)
  else:
    n = n_local
    mean, var = tf.nn.moments(x, [0, 1, 2])
  if bessel:
    return mean, var, var * n / tf.maximum(n - 1.0, 1.0)
  return mean, var


def check_group_size(group_size, per_replica_batch, num_replicas=1):
  """Raises ValueError unless ``group_size`` fits the batch layout.

  Args:
    group_size: examples per normalisation group (0 = the whole global batch).
    per_replica_batch: examples each replica sees per call.
    num_replicas: replicas in sync.
  """
  n, r = int(per_replica_batch), int(num_replicas)
  if group_size < 0:
    raise ValueError(f"bn_group_size={group_size} must be >= 0 (0 = normalise over "
                     "the whole global batch).")
  if group_size == 0 or n % group_size == 0:
    return
  if group_size % n == 0 and (n * r) % group_size == 0:
    return
  raise ValueError(
      f"bn_group_size={group_size} does not fit a per-replica batch of {n} on {r} "
      f"replica(s) (global batch {n * r}): it must divide the per-replica batch, or "
      "be a multiple of it that divides the global batch. Change "
      "Config.bn_group_size (0 = whole batch) or the batch size / replica count.")


def grouped_moments(x, group_size):
  """Moments of each group of ``group_size`` consecutive examples (tower BN).

  Groups are numbered over the global batch: replica by replica (replica id order),
  then by position in the replica's batch.

  Args:
    x: `[n, H, W, C]` per-replica tensor with a static n (cast to float32).
    group_size: N > 0; see ``check_group_size``.

  Returns:
    (mean, var): `[n, 1, 1, C]` float32, each example's group moments (biased
      variance), differentiable, for the normalisation;
    (group_mean, group_var, count): `[G, C]`, `[G, C]` float32 for all G groups
      of the global batch (identical on every replica; no gradient) and the
      float32 element count N*H*W of a group, scalar or `[G, 1]` (for a Bessel
      correction).

  Outside a multi-replica step (one device, or a cross-replica call such as the
  trainer's sample grid) a batch that N does not divide ends with a smaller group:
  training batches cannot hit this (``Config.validate`` makes N divide the batch),
  but a sample grid of e.g. 80 images must not fail for N = 64.
  """
  x = tf.cast(x, tf.float32)
  n, c = x.shape[0], x.shape[-1]
  if n is None:
    raise ValueError("bn_group_size > 0 needs a static per-replica batch size; "
                     "batch with drop_remainder=True.")
  ctx = tf.distribute.get_replica_context()
  replicas = ctx.num_replicas_in_sync if ctx is not None else 1
  if replicas == 1 and group_size > 0 and n % group_size:
    return _ragged_moments(x, group_size)
  check_group_size(group_size, n, replicas)
  unit = min(group_size, n)  # examples per local unit of moments
  units = n // unit
  k = max(1, group_size // n)  # replicas per group
  mean_u, var_u = tf.nn.moments(tf.reshape(x, [units, -1, c]), [1])  # [U, C]
  hw = tf.cast(tf.reduce_prod(tf.shape(x)[1:3]), tf.float32)
  count = hw * float(group_size)
  if replicas > 1:
    # Each replica fills its own row; a SUM all-reduce gives every replica the
    # whole table (adding zeros leaves the values exact).
    rid = ctx.replica_id_in_sync_group
    row = tf.one_hot(rid, replicas, dtype=tf.float32)[:, None, None, None]
    table = ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                           row * tf.stack([mean_u, var_u])[None])  # [R, 2, U, C]
    all_mean = tf.reshape(table[:, 0], [replicas * units, c])
    all_var = tf.reshape(table[:, 1], [replicas * units, c])
  else:
    rid, all_mean, all_var = 0, mean_u, var_u
  if k == 1:
    mean = tf.repeat(mean_u, unit, axis=0)
    var = tf.repeat(var_u, unit, axis=0)
    group_mean, group_var = all_mean, all_var
  else:
    parts_mean = tf.reshape(all_mean, [-1, k, c])
    group_mean = tf.reduce_mean(parts_mean, 1)
    group_var = tf.reduce_mean(tf.reshape(all_var, [-1, k, c])
                               + tf.square(parts_mean - group_mean[:, None]), 1)
    own = rid // k
    mean = tf.tile(tf.gather(group_mean, own)[None], [n, 1])
    var = tf.tile(tf.gather(group_var, own)[None], [n, 1])
  return ((mean[:, None, None, :], var[:, None, None, :]),
          (tf.stop_gradient(group_mean), tf.stop_gradient(group_var), count))


def _ragged_moments(x, group_size):
  """``grouped_moments`` on one replica with a smaller last group."""
  n, c = x.shape[0], x.shape[-1]
  sizes = [group_size] * (n // group_size) + [n % group_size]
  moments = [tf.nn.moments(part, [0, 1])
             for part in tf.split(tf.reshape(x, [n, -1, c]), sizes)]
  group_mean = tf.stack([m for m, _ in moments])
  group_var = tf.stack([v for _, v in moments])
  mean = tf.repeat(group_mean, sizes, axis=0)
  var = tf.repeat(group_var, sizes, axis=0)
  hw = tf.cast(tf.reduce_prod(tf.shape(x)[1:3]), tf.float32)
  count = hw * tf.constant(sizes, tf.float32)[:, None]
  return ((mean[:, None, None, :], var[:, None, None, :]),
          (tf.stop_gradient(group_mean), tf.stop_gradient(group_var), count))


def sequential_moving_average(value, group_stats, decay):
  """value <- value * d + s_g * (1 - d) for g = 0..G-1, in order.

  Args:
    value: current moving statistic (any shape S, float32).
    group_stats: `[G, C]` per-group statistics, C = the size of S.
    decay: moving-average decay d.

  Returns:
    The value after G sequential updates (shape S).
  """
  for g in range(group_stats.shape[0]):
    stat = tf.reshape(group_stats[g], tf.shape(value))
    value = value * decay + stat * (1.0 - decay)
  return value
