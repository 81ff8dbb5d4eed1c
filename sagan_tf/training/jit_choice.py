"""Whether the train step is XLA-compiled: ``Config.jit_compile`` True, False or "auto".

``"auto"`` (the default) turns XLA on only where it is supported and was measured
faster, so that a run started without flags gets the fast path. The rule, from
``tools/speed_table.py`` (every preset, XLA off and on, in one run on the idle
2-core AMD EPYC development machine, tensorflow-cpu 2.21, 2026-11-23;
docs/speed.md has the table and the command):

* one replica (the default strategy), no op determinism, on the CPU, training,
  with gf_dim and df_dim >= 64 at any size: on. ``imagenet128`` batch 4: 5.06 s
  per D+G step with XLA against 6.22 s without; ``biggan_schedule128``: 7.37 against
  9.03 s; ``cifar10_32`` batch 16 (5 D steps): 11.5 against 12.9 s. 64 px was not
  measured (no preset); it lies between sizes where XLA was faster;
* at 32 px and below, from width 8: on. ``digits32`` (gf=df=8) batch 32: 181 against
  244 ms;
* narrower models: off. At 128 px with gf=df=8 (batch 2, 10 classes) XLA took 1.5 s
  per step against 0.49 s without (``tools/time_official.py --gf_dim=8 --df_dim=8
  --num_classes=10 --batch_size=2``, one loaded run); the ``tiny`` test preset
  (width 4, 6 steps) would pay XLA's compile time, once per process at the first
  step, for a handful of steps;
* several replicas of a Mirrored / MultiWorker strategy: off (XLA cannot compile
  their cross-replica merge calls: ``jit_compile=True`` is refused there);
* TPU: the step is compiled for the TPU whatever this says;
* op determinism (``--deterministic``): off (XLA has no deterministic kernel for
  the MaxPool gradient of the attention blocks);
* a GPU: off (not measured here; ``jit_compile=true`` to try it);
* generator inference (``launch.benchmark --mode=generate``): off (XLA was slower
  on the CPU: 726 against 612 ms for 4 images at 128 px).

``resolve`` is the one place that applies the rule; ``TrainStep`` logs its result.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from sagan_tf.config import JIT_AUTO as AUTO
from sagan_tf.config import parse_jit_compile as parse
from sagan_tf import tf_compat

AUTO_MIN_WIDTH = 64  # XLA measured faster at gf=df=64 (32 and 128 px) ...
AUTO_MIN_WIDTH_SMALL = 8  # ... and at gf=df=8 at 32 px; slower at 8 at 128 px
AUTO_SMALL_IMAGE_SIZE = 32  # "small": this size and below


@dataclasses.dataclass(frozen=True)
class JitChoice:
  enabled: bool  # XLA-compile the replica step
  reason: str  # one line saying why, for the log and the benchmark's output


def _op_determinism_enabled() -> bool:
  # tf.config.experimental has enable/disable but no public getter.
  return tf_compat.op_determinism_enabled()


def resolve(config, strategy=None, *, workload: str = "train",
            deterministic=None) -> JitChoice:
  """The XLA choice for ``config.jit_compile`` under ``strategy``.

  Args:
    config: a ``Config`` (reads ``jit_compile`` and ``image_size``).
    strategy: the ``tf.distribute`` strategy (default: the current one).
    workload: ``"train"`` (the train step) or ``"generate"`` (G inference).
    deterministic: whether op determinism is on; None reads TensorFlow's switch
      (``tf.config.experimental.enable_op_determinism``).

  Returns:
    ``JitChoice``. An explicit True/False is returned as given (``TrainStep``
    refuses True where XLA cannot run); only "auto" applies the rule above.
  """
  requested = parse(config.jit_compile)
  if requested != AUTO:
    return JitChoice(requested, f"jit_compile={requested} in the config")
  strategy = strategy or tf.distribute.get_strategy()
  if deterministic is None:
    deterministic = _op_determinism_enabled()
  replicas = strategy.num_replicas_in_sync
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return JitChoice(False, "auto: TPU (the step is compiled for the TPU anyway)")
  if replicas > 1:
    return JitChoice(False, f"auto: off with {replicas} replicas (XLA cannot "
                            "compile the cross-replica merge calls)")
  if deterministic:
    return JitChoice(False, "auto: off with op determinism (XLA has no "
                            "deterministic MaxPool gradient)")
  if workload != "train":
    return JitChoice(False, "auto: off for generator inference (XLA measured "
                            "slower on the CPU)")
  if tf.config.list_logical_devices("GPU"):
    return JitChoice(False, "auto: off on GPU (not measured; set "
                            "jit_compile=true to try XLA)")
  small = config.image_size <= AUTO_SMALL_IMAGE_SIZE
  min_width = AUTO_MIN_WIDTH_SMALL if small else AUTO_MIN_WIDTH
  if min(config.gf_dim, config.df_dim) < min_width:
    return JitChoice(False, f"auto: off with gf_dim={config.gf_dim}, "
                            f"df_dim={config.df_dim} at {config.image_size} px "
                            f"(XLA measured faster there only from width "
                            f"{min_width})")
  return JitChoice(True, f"auto: on at {config.image_size} px, width "
                         f">= {min_width}, one replica on the CPU (XLA "
                         "measured faster)")
