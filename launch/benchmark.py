r"""Times the train step (D steps + G step) or generator inference; prints one JSON line.

  python -m launch.benchmark --preset=imagenet128 --batch_size=4 --mode=train
  python -m launch.benchmark --preset=imagenet128 --batch_size=4 --jit_compile
  python -m launch.benchmark --preset=cifar10_32 --mode=generate --mixed_precision
  python -m launch.benchmark --preset=tiny --strategy=mirrored --cpu_replicas=2

The train step is the real one (``sagan_tf.train_step.TrainStep`` built by
``sagan_tf.train.Trainer`` in a throw-away workdir) fed with synthetic images kept
in memory, so the input pipeline is not timed. Warm-up steps (tracing, XLA
compilation) are excluded. Output keys: ms_per_step_{median,min,max},
images_per_s (real images per second for train, generated for generate),
flops_per_step (graph profiler count of the step, forward and backward),
achieved_gflops_per_s, peak_host_memory_mb, and the settings.
"""
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

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
_CPU_REPLICAS = flags.DEFINE_integer("cpu_replicas", 0,
                                     "Mirror over this many logical CPUs.")
_SET = flags.DEFINE_multi_string("set", [], "field=value Config override.")


def main(argv):
  del argv
  from sagan_tf import strategy as strategy_lib  # pylint: disable=g-import-not-at-top
  strategy = strategy_lib.make_strategy(_STRATEGY.value,
                                        cpu_replicas=_CPU_REPLICAS.value)
  # pylint: disable=g-import-not-at-top
  import keras
  import tensorflow as tf
  from sagan_tf import benchmark
  from sagan_tf import train as train_lib
  from sagan_tf.models import build_models
  # pylint: enable=g-import-not-at-top
  overrides = dict(item.split("=", 1) for item in _SET.value)
  overrides.update(jit_compile=_JIT.value, mixed_precision=_MIXED.value)
  if _BATCH.value:
    overrides["batch_size"] = _BATCH.value
  config = config_lib.override(config_lib.from_preset(_PRESET.value), overrides)
  b, s = config.batch_size, config.image_size

  if _MODE.value == "train":
    def synthetic(strategy, config, skip_batches):
      del skip_batches
      images = tf.random.uniform([b, s, s, 3], -1.0, 1.0, seed=1)
      labels = tf.random.uniform([b], 0, config.num_classes, tf.int32, seed=2)
      ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
      return strategy.experimental_distribute_dataset(ds)
    trainer = train_lib.Trainer(config, tempfile.mkdtemp(prefix="sagan_bench_"),
                                strategy, dataset_fn=synthetic)
    step = lambda: trainer.train_step(trainer.iterator)
    # Model FLOPs from an un-jitted trace of the same replica step.
    plain = tf.function(trainer.train_step._replica_step)  # pylint: disable=protected-access
    batches = tuple((tf.TensorSpec([b // strategy.num_replicas_in_sync, s, s, 3]),
                     tf.TensorSpec([b // strategy.num_replicas_in_sync], tf.int32))
                    for _ in range(config.d_steps))
    with strategy.scope():
      flops = benchmark.count_flops(plain.get_concrete_function(
          batches, tf.TensorSpec([], tf.int64))) * strategy.num_replicas_in_sync
    images_per_step = b * config.d_steps
  else:
    if config.mixed_precision:
      keras.mixed_precision.set_global_policy("mixed_bfloat16")
    with strategy.scope():
      generator, _ = build_models(config)
    z = tf.random.normal([b, config.z_dim], seed=3)
    labels = tf.random.uniform([b], 0, config.num_classes, tf.int32, seed=4)
    fn = lambda z, y: generator(z, y, training=False, update_u=False)
    jitted = tf.function(fn, jit_compile=config.jit_compile)
    step = lambda: jitted(z, labels)
    flops = benchmark.count_flops(tf.function(fn).get_concrete_function(z, labels))
    images_per_step = b

  times = benchmark.time_steps(step, _STEPS.value, _WARMUP.value)
  result = dict(preset=_PRESET.value, mode=_MODE.value, batch_size=b,
                image_size=s, gf_dim=config.gf_dim, df_dim=config.df_dim,
                num_classes=config.num_classes, d_steps=config.d_steps,
                jit_compile=config.jit_compile,
                mixed_precision=config.mixed_precision,
                strategy=_STRATEGY.value,
                replicas=strategy.num_replicas_in_sync)
  result.update(benchmark.summarize(times, images_per_step, flops))
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  app.run(main)
