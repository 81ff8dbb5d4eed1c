"""Builds the ``tf.distribute`` strategy a run trains under.

``make_strategy(name)`` with name:

* ``"default"``: the default (no-op) strategy, one replica on the first device.
* ``"mirrored"``: ``MirroredStrategy`` over all local GPUs (or the CPU). With
  ``cpu_replicas=N`` the CPU is split into N logical devices first and the strategy
  mirrors over them: a way to run the multi-replica code path (cross-replica batch
  norm, gradient all-reduce) on a laptop.
* ``"multiworker"``: ``MultiWorkerMirroredStrategy``; the cluster comes from the
  ``TF_CONFIG`` environment variable, which must be set on every worker.
* ``"tpu"``: ``TPUStrategy`` on the TPU named by ``tpu`` (a name, a ``grpc://``
  address or ``"local"`` on a TPU VM): resolve, connect, initialise the TPU system.

The official code trained with TF1 towers (``num_towers`` GPUs, gradients averaged
by hand) or between-graph replication with parameter servers; this module replaces
both with ``tf.distribute``.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def _cpu_devices(n: int):
  """Names of n logical CPU devices, splitting the physical CPU if still possible."""
  cpu = tf.config.list_physical_devices("CPU")[0]
  try:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
  except RuntimeError:
    # TF has initialised its devices already: use the existing split if it fits.
    pass
  logical = tf.config.list_logical_devices("CPU")
  if len(logical) < n:
    raise RuntimeError(
        f"cpu_replicas={n} needs {n} logical CPU devices, but TensorFlow has "
        f"already initialised its devices with {len(logical)}. Call make_strategy "
        f"before any other TensorFlow op runs (or configure the logical devices "
        f"with tf.config.set_logical_device_configuration at start-up).")
  return [d.name for d in logical[:n]]


def make_strategy(name: str = "default", tpu: Optional[str] = None,
                  cpu_replicas: int = 0) -> tf.distribute.Strategy:
  """Returns the strategy called ``name`` (see module doc).

  Args:
    name: "default", "mirrored", "multiworker" or "tpu".
    tpu: TPU name or address for ``name="tpu"`` (None: the resolver's default,
      e.g. the ``TPU_NAME`` environment variable).
    cpu_replicas: for ``name="mirrored"``, mirror over this many logical CPU
      devices instead of the GPUs (0: all GPUs, or the CPU if there are none).

  Raises:
    ValueError: unknown name, or options that do not go with the strategy.
    RuntimeError: cpu_replicas asked for after TF initialised fewer devices.
  """
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}.")
  if cpu_replicas < 0:
    raise ValueError(f"cpu_replicas must be >= 0, got {cpu_replicas}.")
  if cpu_replicas and name != "mirrored":
    raise ValueError(f"cpu_replicas={cpu_replicas} needs strategy 'mirrored', "
                     f"got {name!r}.")
  if tpu and name != "tpu":
    raise ValueError(f"tpu={tpu!r} needs strategy 'tpu', got {name!r}.")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    if cpu_replicas:
      return tf.distribute.MirroredStrategy(devices=_cpu_devices(cpu_replicas))
    return tf.distribute.MirroredStrategy()
  if name == "multiworker":
    if not os.environ.get("TF_CONFIG"):
      raise ValueError(
          "strategy 'multiworker' needs the TF_CONFIG environment variable on every "
          "worker, e.g. TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", "
          "\"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}'.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def preemption_handler(strategy: tf.distribute.Strategy, save_fn, exit_fn,
                       scratch_dir: str):
  """TensorFlow's coordinated preemption handling for a multi-worker strategy.

  SIGTERM to any worker makes every worker, at one agreed step (in
  ``handler.save_checkpoint_if_preempted()``, called once per step), run
  ``save_fn`` and then ``exit_fn``. The handler counts those calls in a
  checkpoint of its own, restored when it is created; it gets an empty one in
  ``scratch_dir`` (a fresh local directory), so every worker of every (re)start
  counts from 0 and they agree, whatever the run's own checkpoints hold.
  """
  return tf.distribute.experimental.PreemptionCheckpointHandler(
      strategy.cluster_resolver, tf.train.Checkpoint(),
      checkpoint_dir=os.path.join(scratch_dir, "handler"),
      termination_config=tf.distribute.experimental.TerminationConfig(
          exit_fn=exit_fn, save_fn=save_fn))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's files (checkpoints, summaries, PNGs).

  True except on the non-chief workers of a multi-worker strategy: there the chief
  is task "chief", or "worker" 0 when the cluster has no "chief" task.
  """
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(
      strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  if task_type in (None, "chief"):
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return task_type == "worker" and task_id == 0 and not has_chief


def worker_id(strategy: tf.distribute.Strategy) -> str:
  """A name for this worker's private scratch directory (non-chief saving)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None:
    return "worker_0"
  return f"{resolver.task_type}_{resolver.task_id}"


class BatchSizeError(ValueError):
  """The global batch does not split evenly over the replicas."""


def mean_if_replicas_differ(strategy: tf.distribute.Strategy,
                            value: float) -> Optional[float]:
  """Multi-worker: the mean of this worker's ``value`` over all replicas if they
  do not all hold the same value, else None (also under any other strategy)."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return None
  s = tf.constant(float(value), tf.float64)

  @tf.function
  def sums():
    ctx_sum = lambda: tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.stack([s, s * s, tf.ones_like(s)]))
    return strategy.experimental_local_results(strategy.run(ctx_sum))[0]
  total, squares, n = (float(v) for v in sums().numpy())
  return total / n if squares * n != total * total else None


def replica_batch_size(strategy: tf.distribute.Strategy, global_batch: int) -> int:
  """The per-replica batch; raises BatchSizeError if replicas do not divide it."""
  n = strategy.num_replicas_in_sync
  if global_batch % n:
    lower = global_batch // n * n
    hint = f"{lower} or {lower + n}" if lower else f"{n}"
    raise BatchSizeError(
        f"batch_size={global_batch} (global) is not divisible by the {n} replicas "
        f"of {type(strategy).__name__}; pass --set=batch_size={hint} (a multiple "
        f"of {n}) or change the number of replicas.")
  return global_batch // n


def describe(strategy: tf.distribute.Strategy) -> str:
  """One line naming the strategy and its replicas, for the console."""
  try:
    devices = strategy.extended.worker_devices
  except (AttributeError, RuntimeError):  # the default strategy has none
    devices = ()
  return (f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} "
          f"replica(s) {json.dumps([str(d) for d in devices])}")
