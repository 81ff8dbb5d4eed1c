"""Timing and FLOP counting for the benchmark command line (launch/benchmark.py).

Two workloads, each under any ``tf.distribute`` strategy:

* ``train_workload``: the real replicated train step (``d_steps`` D updates, one G
  update) of a ``sagan_tf.training.loop.Trainer``, fed from one synthetic in-memory batch
  so that the input pipeline is not timed;
* ``generate_workload``: generator inference (``training=False``), the global batch
  split over the replicas with ``strategy.run``.

FLOPs are counted by TensorFlow's graph profiler on the traced, un-compiled step
(float operations of every op with a registered FLOP statistic: convolutions,
matmuls and elementwise ops, forward and backward) with every replica's ops in the
graph, so the count is that of the global batch; "achieved FLOP/s" is FLOPs per
step divided by the measured time per step. With several replicas the count also
holds each replica's own copy of the batch-independent work (power iterations,
optimizer updates): under 1% of the total on the tiny preset.

Cross-replica communication is counted on the same traced step
(``count_collectives``): every all-reduce the step launches, whichever way the
strategy implements it. MirroredStrategy emits a ``CollectiveReduceV2`` per
replica for ``ReplicaContext.all_reduce`` and for the optimizers' gradient
all-reduce (all of an optimizer's gradients packed into one), but reduces values
bound for a CPU destination (a ``MEAN``-aggregated variable written in replica
context, ``strategy.reduce`` of the metrics) with ``ReductionToOneDevice``: an
``AddN`` on one device over copies from the others, then copies back. Both are
counted, once per reduction; the copies of a reduction are part of it. What a
multi-replica step needs: one all-reduce per optimizer step (the gradients), one
per batch-norm layer per training forward of G (the moments) plus, in the G
step, one per batch-norm layer for the moments' gradient, and the reduction of
the step's metrics.
"""
from __future__ import annotations

import collections
import dataclasses
import resource
import statistics
import time
from typing import Callable, Dict, Optional, Sequence

import tensorflow as tf
from sagan_tf import tf_compat
from sagan_tf.training import loop as train_lib
from sagan_tf.training import jit_choice
from sagan_tf import strategy as strategy_lib
from sagan_tf.models import builder as models
from sagan_tf.models.builder import build_models


def count_flops(concrete_function) -> int:
  """Float operations of one call of a traced ``tf.function`` (static shapes)."""
  return tf_compat.float_ops(concrete_function.graph)


# Ops that exchange data between replicas, each launched once per replica (TPU's
# CrossReplicaSum once per replicated computation).
COLLECTIVE_OPS = frozenset({
    "CollectiveReduce", "CollectiveReduceV2", "CollectiveReduceV3",
    "CollectiveReduceScatterV2", "CollectiveGather", "CollectiveGatherV2",
    "CollectiveBcastSend", "CollectiveBcastSendV2", "CollectiveAllToAllV2",
    "CollectiveAllToAllV3", "NcclAllReduce", "NcclReduce", "NcclBroadcast",
    "CrossReplicaSum", "AllToAll", "CollectivePermute"})


def count_collectives(concrete_function) -> int:
  """Cross-replica reductions in one call of a traced step (see module doc).

  Counts (a) collective ops (``COLLECTIVE_OPS``) on the device that holds the
  most of them, i.e. one per all-reduce whatever the number of replicas, and
  (b) ``AddN`` ops whose inputs come from more than one device: the reductions
  ``ReductionToOneDevice`` builds. Ops in the graph's function library count
  under the device they name (none: one group). 0 for a one-device step.
  """
  graph_def = concrete_function.graph.as_graph_def()
  nodes = list(graph_def.node)
  for function in graph_def.library.function:
    nodes.extend(function.node_def)
  per_device = collections.Counter(n.device for n in nodes
                                   if n.op in COLLECTIVE_OPS)
  device_of = {n.name: n.device for n in graph_def.node}
  to_one_device = 0
  for n in graph_def.node:
    if n.op == "AddN":
      devices = {device_of.get(i.split(":")[0]) for i in n.input
                 if not i.startswith("^")}
      to_one_device += len(devices) > 1
  return max(per_device.values(), default=0) + to_one_device


def peak_host_memory_mb() -> float:
  """Peak resident set size of this process so far, in MiB (Linux ru_maxrss)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def minor_page_faults() -> int:
  """Minor page faults of this process so far (Linux ru_minflt)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_steps(step: Callable[[], object], steps: int, warmup: int,
               faults: Optional[list] = None) -> Sequence[float]:
  """Runs ``step`` warmup times untimed, then ``steps`` times; seconds per call.

  ``step`` must return something whose ``.numpy()`` (or nest of them) forces the
  computation to finish, so asynchronous execution is not mistaken for speed.
  ``faults``, if a list, gets the minor page faults of each timed call (memory
  the allocator took from the OS again: see ``launch/__init__.py``).
  """
  def run():
    out = step()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
  for _ in range(warmup):
    run()
  times = []
  for _ in range(steps):
    f0, t0 = minor_page_faults(), time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
    if faults is not None:
      faults.append(minor_page_faults() - f0)
  return times


def summarize(times: Sequence[float], images_per_step: int, flops: int,
              collectives: Optional[int] = None,
              faults: Optional[Sequence[int]] = None) -> Dict:
  """The benchmark's figures from per-step times (and the collective count and
  per-step page faults)."""
  med = statistics.median(times)
  out = {
      "ms_per_step_median": round(med * 1e3, 2),
      "ms_per_step_min": round(min(times) * 1e3, 2),
      "ms_per_step_max": round(max(times) * 1e3, 2),
      "images_per_s": round(images_per_step / med, 3),
      "flops_per_step": flops,
      "achieved_gflops_per_s": round(flops / med / 1e9, 3),
      "peak_host_memory_mb": round(peak_host_memory_mb(), 1),
      "timed_steps": len(times),
  }
  if faults:
    out["minor_page_faults_per_step"] = int(statistics.median(faults))
  if collectives is not None:
    out["collectives_per_step"] = collectives
  return out


@dataclasses.dataclass
class Workload:
  """What ``time_steps`` times and ``summarize`` reports."""
  step: Callable[[], object]  # runs one step; returns tensors to wait for
  flops: int  # per step, all replicas
  images_per_step: int  # real images (train) or generated images (generate)
  close: Callable[[], None] = lambda: None
  collectives: int = 0  # cross-replica reductions per step (count_collectives)


def synthetic_dataset_fn(strategy, config, skip_batches: int):
  """A ``Trainer`` ``dataset_fn``: one seeded random batch (images in [-1, 1],
  labels uniform), repeated and split over the replicas like the real pipeline."""
  del skip_batches
  b, s = config.batch_size, config.image_size
  # Stateless: the same batch in every process and every call, whatever the
  # global seed (the trainer no longer sets one; launchers do).
  images = tf.random.stateless_uniform([b, s, s, 3], [1, 0], -1.0, 1.0)
  labels = tf.random.stateless_uniform([b], [2, 0], 0, config.num_classes, tf.int32)
  ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
  return strategy.experimental_distribute_dataset(ds)


def train_workload(config, strategy, workdir: str) -> Workload:
  """The train step of a fresh ``Trainer`` in ``workdir`` (which it writes to).

  ``config.jit_compile`` and ``config.mixed_precision`` apply as in training.
  """
  trainer = train_lib.Trainer(config, workdir, strategy,
                              dataset_fn=synthetic_dataset_fn)
  traced = trainer.train_step.trace(trainer.iterator)
  return Workload(step=lambda: trainer.train_step(trainer.iterator),
                  flops=count_flops(traced),
                  images_per_step=config.batch_size * config.d_steps,
                  close=trainer.close, collectives=count_collectives(traced))


def generate_workload(config, strategy) -> Workload:
  """``config.batch_size`` images per step from a fresh generator (``training=
  False``, ``u`` not written), split evenly over the replicas of ``strategy``.

  Builds the generator under the mixed_bfloat16 policy if
  ``config.mixed_precision`` (the global policy is restored after). Raises ValueError for ``jit_compile`` with several
  replicas or a batch the replicas do not divide.
  """
  per_replica = strategy_lib.replica_batch_size(strategy, config.batch_size)
  jit = jit_choice.resolve(config, strategy, workload="generate").enabled
  if jit and strategy.num_replicas_in_sync > 1:
    # One compiled function called on every replica would read replica 0's
    # variables from the other devices (XLA forbids it).
    raise ValueError("jit_compile=True is supported with one replica only, not "
                     f"with {strategy.num_replicas_in_sync} replicas.")
  with strategy.scope(), models.dtype_policy(config.mixed_precision):
    generator, _ = build_models(config)
  # Every replica draws the same per-replica inputs: the work is that of the
  # global batch, the images are not the point.
  z = tf.random.normal([per_replica, config.z_dim], seed=3)
  labels = tf.random.uniform([per_replica], 0, config.num_classes, tf.int32, seed=4)

  def generate(z, y):
    return generator(z, y, training=False, update_u=False)

  def replicated(replica_fn):
    def fn(z, y):
      return strategy.experimental_local_results(
          strategy.run(replica_fn, args=(z, y)))
    return tf.function(fn)

  compiled = tf.function(generate, jit_compile=True) if jit else generate
  step_fn = replicated(compiled)
  traced = replicated(generate).get_concrete_function(z, labels)
  return Workload(step=lambda: step_fn(z, labels), flops=count_flops(traced),
                  images_per_step=config.batch_size,
                  collectives=count_collectives(traced))
