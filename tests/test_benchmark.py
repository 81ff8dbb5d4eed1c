"""sagan_tf.benchmark and launch.benchmark: FLOP counting, figures, the JSON line."""
import json
import os
import subprocess
import sys

import tensorflow as tf

from sagan_tf import benchmark

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_count_flops_of_a_matmul():
  f = tf.function(lambda a, b: tf.matmul(a, b))
  cf = f.get_concrete_function(tf.TensorSpec([4, 8]), tf.TensorSpec([8, 16]))
  assert benchmark.count_flops(cf) == 2 * 4 * 8 * 16


def test_summarize_and_time_steps():
  calls = []
  times = benchmark.time_steps(lambda: calls.append(1) or tf.constant(1.0),
                               steps=3, warmup=2)
  assert len(calls) == 5 and len(times) == 3 and all(t >= 0 for t in times)
  out = benchmark.summarize([0.5, 0.25, 1.0], images_per_step=8, flops=10**9)
  assert out["ms_per_step_median"] == 500.0
  assert out["ms_per_step_min"] == 250.0 and out["ms_per_step_max"] == 1000.0
  assert out["images_per_s"] == 16.0 and out["achieved_gflops_per_s"] == 2.0
  assert out["peak_host_memory_mb"] > 0


def test_cli_prints_one_json_line():
  proc = subprocess.run(
      [sys.executable, "-m", "launch.benchmark", "--preset=tiny",
       "--mode=generate", "--steps=2", "--warmup=1"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  assert len(lines) == 1, proc.stdout
  result = json.loads(lines[0])
  assert result["mode"] == "generate" and result["batch_size"] == 4
  assert result["timed_steps"] == 2 and result["flops_per_step"] > 0
  assert 0 < result["ms_per_step_min"] <= result["ms_per_step_median"]
