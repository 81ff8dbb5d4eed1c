r"""Times the train step (D steps + G step) or generator inference; prints one JSON line.

  python -m launch.benchmark --preset=imagenet128 --batch_size=4 \
      --set=bn_group_size=0 --jit_compile=false
  python -m launch.benchmark --preset=cifar10_32 --mode=generate --mixed_precision
  python -m launch.benchmark --preset=tiny --strategy=mirrored --cpu_replicas=2

The train step is the real one (``sagan_tf.training.step.TrainStep`` built by
``sagan_tf.training.loop.Trainer`` in a throw-away workdir) fed with synthetic images kept
in memory, so the input pipeline is not timed; generation splits the batch over
the replicas too. ``--batch_size`` is global, as in training. Warm-up steps
(tracing, XLA compilation) are excluded. Output keys: ms_per_step_{median,min,max},
images_per_s (real images per second for train, generated for generate),
flops_per_step (graph profiler count of the step over all replicas, forward and
backward), achieved_gflops_per_s, collectives_per_step (cross-replica reductions
in the step graph, ``sagan_tf.perf.benchmark.count_collectives``; 0 on one replica),
peak_host_memory_mb, minor_page_faults_per_step (median over the timed steps),
host_allocator (the one TensorFlow uses, observed: bfc unless TF_CPU_ALLOCATOR_USE_BFC
says otherwise: ``launch``; then onednn or default, ``host_allocator``), host_cpu (the CPU model and its vector ISA,
``sagan_tf.perf.host_cpu``: figures differ per host), and the settings;
jit_compile (as asked: true, false or auto), xla (what ran) and xla_reason
(``sagan_tf.training.jit_choice``); conv_gflops_per_s, the best rate TensorFlow reaches on
the config's own 3x3 convolution shapes in this process with the step's compile
mode (``sagan_tf.perf.conv_rate``; conv_shape names it), and fraction_of_peak =
achieved_gflops_per_s / conv_gflops_per_s (``--noconv_rate`` skips both).
``--jit_compile`` (true) needs one replica (``--strategy=default``); the default,
auto, picks XLA where it was measured faster.
"""
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from launch.jit_flag import jit_compile_flag  # noqa: E402
from launch.overrides import config_usage_error  # noqa: E402
from launch.overrides import parse_sets  # noqa: E402
from sagan_tf import config as config_lib  # noqa: E402
from sagan_tf.perf import host_cpu  # noqa: E402

_DEFINED = False


def define_flags():
  """Defines this launcher's flags in absl's FLAGS (once); ``python -m
  launch.benchmark`` calls it before parsing. Not at import: the launchers share flag
  names (--preset, --set, --strategy, ...) with other defaults and choices, so
  importing two of them in one process (the tests do) would clash."""
  global _DEFINED, _PRESET, _MODE, _BATCH, _STEPS, _WARMUP, _JIT
  global _CONV_RATE, _MIXED, _STRATEGY, _CPU_REPLICAS, _SET
  if _DEFINED:
    return
  _DEFINED = True
  _PRESET = flags.DEFINE_enum("preset", "tiny", sorted(config_lib.PRESETS), "Preset.")
  _MODE = flags.DEFINE_enum("mode", "train", ["train", "generate"],
                            "What to time: one D+G train step, or G inference.")
  _BATCH = flags.DEFINE_integer("batch_size", None, "Global batch (default: preset's).")
  _STEPS = flags.DEFINE_integer("steps", 5, "Timed steps.")
  _WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first (tracing, XLA).")
  _JIT = flags.DEFINE_flag(jit_compile_flag(
      "XLA-compile the step: true, false or auto (default: the config's, auto: on "
      "where measured faster)."))
  _CONV_RATE = flags.DEFINE_bool(
      "conv_rate", True, "Also time the config's 3x3 convolutions alone and print "
      "conv_gflops_per_s and fraction_of_peak.")
  _MIXED = flags.DEFINE_bool("mixed_precision", False, "mixed_bfloat16 policy.")
  _STRATEGY = flags.DEFINE_enum("strategy", "default", ["default", "mirrored"],
                                "tf.distribute strategy.")
  _CPU_REPLICAS = flags.DEFINE_integer(
      "cpu_replicas", 0, "With --strategy=mirrored: mirror over this many logical "
      "CPU devices (0: the GPUs, or the CPU).")
  _SET = flags.DEFINE_multi_string("set", [], "field=value override of any Config "
                                   "field (repeatable).")


def build_config(preset, batch_size=None, jit_compile=None,
                 mixed_precision=False, sets=()):
  """The preset, then --set overrides, then the dedicated flags."""
  overrides = parse_sets(sets)
  overrides.update(mixed_precision=mixed_precision)
  if jit_compile is not None:
    overrides["jit_compile"] = jit_compile
  if batch_size:
    overrides["batch_size"] = batch_size
  try:
    return config_lib.override(config_lib.from_preset(preset), overrides)
  except ValueError as e:
    raise config_usage_error(e) from None


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
  if config.jit_compile is True and strategy.num_replicas_in_sync > 1:
    raise app.UsageError("--jit_compile works with one replica only "
                         "(--strategy=default), not with "
                         f"{strategy.num_replicas_in_sync} mirrored replicas.")
  from sagan_tf.perf import benchmark  # pylint: disable=g-import-not-at-top
  from sagan_tf.training import jit_choice  # pylint: disable=g-import-not-at-top
  choice = jit_choice.resolve(config, strategy, workload=_MODE.value)
  asked, config = config.jit_compile, config.replace(jit_compile=choice.enabled)

  with tempfile.TemporaryDirectory(prefix="sagan_bench_") as workdir:
    if _MODE.value == "train":
      workload = benchmark.train_workload(config, strategy, workdir)
    else:
      workload = benchmark.generate_workload(config, strategy)
    try:
      faults = []
      times = benchmark.time_steps(workload.step, _STEPS.value, _WARMUP.value,
                                   faults)
    finally:
      workload.close()
  result = dict(preset=_PRESET.value, mode=_MODE.value,
                batch_size=config.batch_size, image_size=config.image_size,
                gf_dim=config.gf_dim, df_dim=config.df_dim,
                num_classes=config.num_classes, d_steps=config.d_steps,
                jit_compile=asked, xla=choice.enabled, xla_reason=choice.reason,
                mixed_precision=config.mixed_precision,
                strategy=_STRATEGY.value,
                replicas=strategy.num_replicas_in_sync,
                host_allocator=host_allocator(), host_cpu=host_cpu.describe())
  result.update(benchmark.summarize(times, workload.images_per_step,
                                    workload.flops, workload.collectives, faults))
  if _CONV_RATE.value:
    result.update(peak_figures(config, strategy, result["achieved_gflops_per_s"]))
  print(json.dumps(result), flush=True)


def host_allocator():
  """The host allocator TensorFlow uses in this process, as observed: "bfc",
  "onednn" or "default" (``launch`` asks for BFC with ``TF_CPU_ALLOCATOR_USE_BFC``
  unless the environment says otherwise; TensorFlow reads it once, when it starts).

  * "bfc": TensorFlow's BFC allocator serves every host allocation. It keeps
    statistics (``get_memory_info('CPU:0')`` answers) and counts a small tensor
    in them, rounded up to its 256-byte chunks.
  * "onednn": without BFC, where oneDNN's ops are on, TensorFlow's host
    allocator is oneDNN's, which sends large allocations to a BFC allocator and
    small ones to plain malloc: statistics answer, but a small tensor adds
    nothing to them. (Seen on the AVX-512 AMD EPYC with oneDNN on, its default;
    without this case the probe read "bfc" there whatever the variable said.)
  * "default": TensorFlow's plain host allocator, which keeps no statistics
    (``get_memory_info`` raises ValueError).

  Call after the process has run an op (the allocator exists then).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  def in_use():
    return tf.config.experimental.get_memory_info("CPU:0")["current"]
  try:
    before = in_use()
  except ValueError:
    return "default"
  small = [tf.fill([25], float(i)) + 0.0 for i in range(8)]  # 100 bytes each
  grown = in_use() - before
  del small
  return "bfc" if grown >= 8 * 100 else "onednn"


def peak_figures(config, strategy, achieved_gflops_per_s):
  """conv_gflops_per_s, conv_shape, fraction_of_peak (``sagan_tf.perf.conv_rate``).

  The convolutions are those of G and D (train) or G (generate) at the
  per-replica batch, timed with the step's compile mode and dtype.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from sagan_tf.perf import conv_rate  # pylint: disable=g-import-not-at-top
  batch = config.batch_size // strategy.num_replicas_in_sync
  shapes = conv_rate.step_convs(config, batch,
                                ("g", "d") if _MODE.value == "train" else ("g",))
  rate = conv_rate.measure(
      shapes, jit_compile=config.jit_compile is True,
      dtype=tf.bfloat16 if config.mixed_precision else tf.float32)
  return dict(conv_gflops_per_s=round(rate.gflops_per_s, 3),
              conv_shape=str(rate.best_shape),
              conv_weighted_gflops_per_s=round(rate.weighted_gflops_per_s, 3),
              fraction_of_peak=round(conv_rate.fraction_of_peak(
                  achieved_gflops_per_s, rate.gflops_per_s), 3))


def run():
  """Console-script entry point (``sagan-benchmark``, see pyproject.toml)."""
  define_flags()
  app.run(main)


if __name__ == "__main__":
  run()
