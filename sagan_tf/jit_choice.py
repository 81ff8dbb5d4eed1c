"""Whether the train step is XLA-compiled: ``Config.jit_compile`` True, False or "auto".

``"auto"`` (the default) turns XLA on only where it is supported and was measured
faster, so that a run started without flags gets the fast path. The rule, from
side-by-side ``launch.benchmark`` runs on a 2-core AMD EPYC CPU (tensorflow-cpu
2.21; README "Speed"):

* one replica (the default strategy), no op determinism, on the CPU, at 128 px
  with the official widths (gf_dim and df_dim >= 64): on. ``imagenet128`` at
  batch 4: 5.51 s per D+G step with XLA against 7.83 s without
  (``tools/time_official.py --jit_compile=auto,false``, idle 2-core AMD EPYC,
  2026-11-23; README "Speed"; XLA's compile time, paid once per process at the first
  step, was not measured separately at 128 px);
* 128 px with narrow models: off. With gf=df=8 (batch 2, 10 classes) XLA took
  1.5 s per step against 0.49 s without (``tools/time_official.py
  --gf_dim=8 --df_dim=8 --num_classes=10 --batch_size=2``, one loaded run);
  widths between 8 and 64 were not measured;
* 32 px: off. plain ``tf.function`` was faster (``cifar10_32`` batch 16: 7.5 s
  against 11.8 s; ``digits32`` batch 32: 0.43 s against 0.59 s), and at the
  ``tiny`` preset of the tests XLA only adds its compile time;
* 64 px: off (not measured; there is no 64 px preset);
* several replicas of a Mirrored / MultiWorker strategy: off (XLA cannot compile
  their cross-replica merge calls: ``jit_compile=True`` is refused there);
* TPU: the step is compiled for the TPU whatever this says;
* op determinism (``--deterministic``): off (XLA has no deterministic kernel for
  the MaxPool gradient of the attention blocks);
* a GPU: off (not measured here; ``jit_compile=true`` to try it);
* generator inference (``launch.benchmark --mode=generate``): off (XLA gained
  nothing on the CPU: 425 against 430 ms for 4 images at 128 px).

``resolve`` is the one place that applies the rule; ``TrainStep`` logs its result.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf

from sagan_tf.config import JIT_AUTO as AUTO
from sagan_tf.config import parse_jit_compile as parse

AUTO_MIN_IMAGE_SIZE = 128  # XLA measured faster at 128 px, slower at 32 px
AUTO_MIN_WIDTH = 64  # ... at gf=df=64; slower at gf=df=8


@dataclasses.dataclass(frozen=True)
class JitChoice:
  enabled: bool  # XLA-compile the replica step
  reason: str  # one line saying why, for the log and the benchmark's output


def _op_determinism_enabled() -> bool:
  # tf.config.experimental has enable/disable but no public getter.
  from sagan_tf import tf_compat  # pylint: disable=g-import-not-at-top
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
                            "no faster on the CPU)")
  if tf.config.list_logical_devices("GPU"):
    return JitChoice(False, "auto: off on GPU (not measured; set "
                            "jit_compile=true to try XLA)")
  if config.image_size < AUTO_MIN_IMAGE_SIZE:
    return JitChoice(False, f"auto: off at {config.image_size} px (plain "
                            "tf.function measured faster on the CPU below "
                            f"{AUTO_MIN_IMAGE_SIZE} px)")
  if min(config.gf_dim, config.df_dim) < AUTO_MIN_WIDTH:
    return JitChoice(False, f"auto: off with gf_dim={config.gf_dim}, "
                            f"df_dim={config.df_dim} (XLA measured faster only "
                            f"from width {AUTO_MIN_WIDTH})")
  return JitChoice(True, f"auto: on at {config.image_size} px, width "
                         f">= {AUTO_MIN_WIDTH}, one replica on the CPU (XLA "
                         "measured faster)")
