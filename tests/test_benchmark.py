"""sagan_tf.perf.benchmark and launch.benchmark: FLOP counting, figures, the JSON line."""

import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import app

from launch import benchmark as launch_benchmark
from launch import train as launch_train
from launch.overrides import parse_sets
from sagan_tf.perf import benchmark
from sagan_tf import config as config_lib
from sagan_tf.training import loop as train_lib
from sagan_tf.inference.bn_stats import bn_layers
from sagan_tf.models.builder import build_models
from tests.benchmark_cli import REPO, json_line, run_cli
from sagan_tf.perf import host_cpu
from tests.test_replica_sync import expected_collectives


def test_count_flops_of_a_matmul():
  f = tf.function(lambda a, b: tf.matmul(a, b))
  cf = f.get_concrete_function(tf.TensorSpec([4, 8]), tf.TensorSpec([8, 16]))
  assert benchmark.count_flops(cf) == 2 * 4 * 8 * 16


def test_summarize_and_time_steps():
  calls = []
  times = benchmark.time_steps(lambda: calls.append(1) or tf.constant(1.0),
                               steps=3, warmup=2)
  assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)
  faults = []
  benchmark.time_steps(lambda: tf.constant(1.0), steps=2, warmup=1, faults=faults)
  assert len(faults) == 2 and all(f >= 0 for f in faults)
  out = benchmark.summarize([0.5, 0.25, 1.0], images_per_step=8, flops=10**9,
                            faults=[30, 10, 20])
  assert out["minor_page_faults_per_step"] == 20
  assert out["ms_per_step_median"] == 500.0
  assert out["ms_per_step_min"] == 250.0 and out["ms_per_step_max"] == 1000.0
  assert out["images_per_s"] == 16.0 and out["achieved_gflops_per_s"] == 2.0
  assert out["peak_host_memory_mb"] > 0


def test_cli_prints_one_json_line():
  result = json_line(run_cli("--preset=tiny", "--mode=generate", "--steps=2",
                             "--warmup=1", "--noconv_rate", timeout=300))
  assert result["mode"] == "generate" and result["batch_size"] == 4
  assert result["timed_steps"] == 2 and result["flops_per_step"] > 0
  assert 0 < result["ms_per_step_min"] <= result["ms_per_step_median"]
  assert result["host_allocator"] == "bfc"  # launch's default (launch/__init__.py)
  assert result["minor_page_faults_per_step"] >= 0
  assert result["host_cpu"] == host_cpu.describe()  # the figures name their host


def test_cli_train_under_two_mirrored_replicas(tmp_path):
  """docs/speed.md's `--strategy=mirrored --cpu_replicas=2` command: the FLOPs of the
  replicated step are those of one replica at the same global batch (plus each
  replica's own power iterations and Adam updates, well under 1% here)."""
  config = config_lib.from_preset("tiny")
  workload = benchmark.train_workload(config, tf.distribute.get_strategy(),
                                      str(tmp_path))
  workload.close()
  one_replica = workload.flops
  result = json_line(run_cli("--preset=tiny", "--strategy=mirrored",
                               "--cpu_replicas=2", "--steps=2", "--warmup=1",
                               "--noconv_rate"))
  assert result["replicas"] == 2 and result["strategy"] == "mirrored"
  assert result["mode"] == "train" and result["batch_size"] == config.batch_size
  assert result["images_per_s"] > 0 and result["timed_steps"] == 2
  assert one_replica > 10**8  # the tiny step: about 0.6 GFLOP
  assert abs(result["flops_per_step"] - one_replica) <= 0.01 * one_replica
  # Gradients, BN moments and metrics only (tests/test_replica_sync.py).
  n_bn = len(bn_layers(build_models(config)[0]))
  assert result["collectives_per_step"] == expected_collectives(config, n_bn)
  assert workload.collectives == 0


def test_trace_runs_nothing(tmp_path):
  """TrainStep.trace only traces: the step counter and the weights stay put."""
  config = config_lib.from_preset("tiny")
  trainer = train_lib.Trainer(config, str(tmp_path), tf.distribute.get_strategy(),
                              dataset_fn=benchmark.synthetic_dataset_fn)
  before = [w.numpy() for w in trainer.discriminator.weights]
  graph = trainer.train_step.trace(trainer.iterator).graph
  trainer.close()
  assert int(trainer.step.numpy()) == 0
  assert all((w.numpy() == b).all()
             for w, b in zip(trainer.discriminator.weights, before))
  assert any(op.type == "Conv2D" for op in graph.get_operations())


def test_generate_workload_splits_the_batch_over_replicas():
  config = config_lib.from_preset("tiny")
  single = benchmark.generate_workload(config, tf.distribute.get_strategy())
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  workload = benchmark.generate_workload(config, mirrored)
  images = workload.step()
  assert [tuple(x.shape) for x in images] == [(config.batch_size // 2, 32, 32, 3)] * 2
  assert workload.images_per_step == single.images_per_step == config.batch_size
  assert abs(workload.flops - single.flops) <= 0.01 * single.flops
  assert workload.collectives == single.collectives == 0  # nothing written
  with pytest.raises(ValueError, match="one replica"):
    benchmark.generate_workload(config.replace(jit_compile=True), mirrored)


def test_cli_rejects_a_set_without_equals_before_building_anything():
  proc = run_cli("--preset=tiny", "--set=batch_size")
  assert proc.returncode != 0
  assert "--set expects field=value, got 'batch_size'" in proc.stderr


def test_parse_sets_is_shared_with_train():
  assert parse_sets(["g_lr=2e-4", "g_attention=16,32", "tfrecord_pattern=a=b",
                     " batch_size = 8 "]) == {
                         "g_lr": "2e-4", "g_attention": "16,32",
                         "tfrecord_pattern": "a=b", "batch_size": "8"}
  for bad in ("batch_size", "=3"):
    with pytest.raises(app.UsageError, match="field=value"):
      parse_sets([bad])
  with pytest.raises(app.UsageError, match="field=value"):
    launch_train.build_config("/nonexistent", preset="tiny", sets=["g_lr"])


def test_train_and_benchmark_launchers_import_into_one_process():
  """Both define --preset, --set, --strategy, --steps (other defaults and
  choices): their flags are defined when a launcher runs (define_flags), not at
  import, so this module imports both; their config builders agree."""
  bench = launch_benchmark.build_config("tiny", batch_size=8, sets=["g_lr=2e-4"])
  train = launch_train.build_config("/nonexistent", preset="tiny",
                                    sets=["g_lr=2e-4", "batch_size=8"])
  assert bench.g_lr == train.g_lr == 2e-4 and bench.batch_size == train.batch_size == 8
  with pytest.raises(app.UsageError, match="pass --set=bn_group_size=0"):
    launch_benchmark.build_config("imagenet128", batch_size=4)
  # Importing them defines none of their flags (in a fresh process).
  code = ("from absl import flags; import launch.train, launch.benchmark; "
          "print(sorted(f.name for m, fs in flags.FLAGS.flags_by_module_dict()"
          ".items() if m.startswith('launch') for f in fs))")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                        text=True, timeout=300,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout
