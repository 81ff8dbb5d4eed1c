r"""Times the train step (D steps + G step) or generator inference; prints one JSON line.

  python -m launch.benchmark --preset=imagenet128 --batch_size=4 \
      --set=bn_group_size=0 --jit_compile
  python -m launch.benchmark --preset=cifar10_32 --mode=generate --mixed_precision
  python -m launch.benchmark --preset=tiny --strategy=mirrored --cpu_replicas=2

The train step is the real one (``sagan_tf.train_step.TrainStep`` built by
``sagan_tf.train.Trainer`` in a throw-away workdir) fed with synthetic images kept
in memory, so the input pipeline is not timed; generation splits the batch over
the replicas too. ``--batch_size`` is global, as in training. Warm-up steps
(tracing, XLA compilation) are excluded. Output keys: ms_per_step_{median,min,max},
images_per_s (real images per second for train, generated for generate),
flops_per_step (graph profiler count of the step over all replicas, forward and
backward), achieved_gflops_per_s, collectives_per_step (cross-replica reductions
in the step graph, ``sagan_tf.benchmark.count_collectives``; 0 on one replica),
peak_host_memory_mb, and the settings.
``--jit_compile`` needs one replica (``--strategy=default``).
"""
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from launch.overrides import parse_sets  # noqa: E402
from sagan_tf import config as config_lib  # noqa: E402

_PRESET = flags.DEFINE_enum("preset", "tiny", sorted(config_lib.PRESETS), "Preset.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "generate"],
                          "What to time: one D+G train step, or G inference.")
_BATCH = flags.DEFINE_integer("batch_size", None, "Global batch (default: preset's).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, XLA).")
_JIT = flags.DEFINE_bool("jit_compile", False, "XLA-compile the step.")
_MIXED = flags.DEFINE_bool("mixed_precision", False, "mixed_bfloat16 policy.")
_STRATEGY = flags.DEFINE_enum("strategy", "default", ["default", "mirrored"],
                              "tf.distribute strategy.")
_CPU_REPLICAS = flags.DEFINE_integer(
    "cpu_replicas", 0, "With --strategy=mirrored: mirror over this many logical "
    "CPU devices (0: the GPUs, or the CPU).")
_SET = flags.DEFINE_multi_string("set", [], "field=value override of any Config "
                                 "field (repeatable).")


def build_config(preset, batch_size=None, jit_compile=False,
                 mixed_precision=False, sets=()):
  """The preset, then --set overrides, then the dedicated flags."""
  overrides = parse_sets(sets)
  overrides.update(jit_compile=jit_compile, mixed_precision=mixed_precision)
  if batch_size:
    overrides["batch_size"] = batch_size
  try:
    return config_lib.override(config_lib.from_preset(preset), overrides)
  except ValueError as e:
    raise app.UsageError(str(e)) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = build_config(_PRESET.value, _BATCH.value, _JIT.value, _MIXED.value,
                        _SET.value)
  # Before anything initialises TensorFlow's devices (cpu_replicas splits the CPU).
  import logging as py_logging  # pylint: disable=g-import-not-at-top
  from sagan_tf import strategy as strategy_lib  # pylint: disable=g-import-not-at-top
  py_logging.getLogger("tensorflow").setLevel(py_logging.WARNING)
  try:
    strategy = strategy_lib.make_strategy(_STRATEGY.value,
                                          cpu_replicas=_CPU_REPLICAS.value)
    strategy_lib.replica_batch_size(strategy, config.batch_size)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  if config.jit_compile and strategy.num_replicas_in_sync > 1:
    raise app.UsageError("--jit_compile works with one replica only "
                         "(--strategy=default), not with "
                         f"{strategy.num_replicas_in_sync} mirrored replicas.")
  from sagan_tf import benchmark  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory(prefix="sagan_bench_") as workdir:
    if _MODE.value == "train":
      workload = benchmark.train_workload(config, strategy, workdir)
    else:
      workload = benchmark.generate_workload(config, strategy)
    try:
      times = benchmark.time_steps(workload.step, _STEPS.value, _WARMUP.value)
    finally:
      workload.close()
  result = dict(preset=_PRESET.value, mode=_MODE.value,
                batch_size=config.batch_size, image_size=config.image_size,
                gf_dim=config.gf_dim, df_dim=config.df_dim,
                num_classes=config.num_classes, d_steps=config.d_steps,
                jit_compile=config.jit_compile,
                mixed_precision=config.mixed_precision,
                strategy=_STRATEGY.value,
                replicas=strategy.num_replicas_in_sync)
  result.update(benchmark.summarize(times, workload.images_per_step,
                                    workload.flops, workload.collectives))
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  app.run(main)
